import { describe, expect, it } from 'vitest';
import { backendServices, hookSteps, parseRole, type EnvMember, type EnvRecord } from '../../src/core/env.js';

const web = parseRole({ name: 'web', priority: 20, port: 80, job: { image: 'busybox', ports: ['0:80'] }, hooks: { isDown: 'true', isUp: 'true' } });
const balancer = parseRole({ name: 'balancer', builtin: 'balancer' });
const member = (name: string, role: string, state: EnvMember['state'], host = 'h1'): EnvMember => ({
  name,
  role,
  kind: role === 'balancer' ? 'balancer' : 'job',
  host,
  address: null,
  state,
  op: 'op-000001',
  index: Number(name.split('-').pop()),
});
const env = (members: EnvMember[]): Pick<EnvRecord, 'roles' | 'members'> => ({ roles: { web, balancer }, members });

describe('isDown and isUp hooks', () => {
  it('the others hear of a member down in priority order; a member down itself, or lost, hears nothing', () => {
    const members = [
      member('e-balancer-1', 'balancer', 'lost', 'ha'),
      member('e-balancer-2', 'balancer', 'running', 'hb'),
      member('e-web-1', 'web', 'running', 'hb'),
      member('e-web-2', 'web', 'down', 'ha'),
      member('e-web-3', 'web', 'running', 'hc'),
    ];
    const steps = hookSteps(env(members), members[3]!, 'isDown', 'isDown', false);
    expect(steps.map((s) => `${s.event} ${s.member.name} ${s.other?.name}`)).toEqual([
      'isDown e-balancer-2 e-web-2',
      'isDown e-web-1 e-web-2',
      'isDown e-web-3 e-web-2',
    ]);
    // The balancer's backends leave the member out while it is down.
    expect(backendServices(env(members))).toEqual(['e-web-1-80', 'e-web-3-80']);
  });

  it('a member up again runs its own isUp first, then the others', () => {
    const members = [member('e-balancer-1', 'balancer', 'running'), member('e-web-1', 'web', 'running'), member('e-web-2', 'web', 'running')];
    expect(hookSteps(env(members), members[1]!, 'isUp', 'isUp').map((s) => `${s.member.name} ${s.other?.name ?? '-'}`)).toEqual([
      'e-web-1 -',
      'e-balancer-1 e-web-1',
      'e-web-2 e-web-1',
    ]);
  });
});
