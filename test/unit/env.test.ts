import { describe, expect, it } from 'vitest';
import {
  backendServices,
  BALANCER_ROLE,
  builtinHook,
  byPriority,
  checkNewRole,
  hookEnv,
  hookSteps,
  isPresent,
  MAX_MEMBERS,
  memberName,
  parseEnvFile,
  parseMemberName,
  parseRole,
  planAdds,
  validateEnvName,
  validateRoleName,
  type EnvMember,
  type EnvRecord,
  type MemberState,
  type RoleSpec,
} from '../../src/core/env.js';
import { ValidationError } from '../../src/core/errors.js';

/** The problems a parse reports, each "path: message" (one problem is the error's own message). */
function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    const detail = (e as ValidationError).detail as { problems?: string[] } | undefined;
    return detail?.problems ?? [(e as Error).message];
  }
  throw new Error('expected a ValidationError');
}

const noFiles = (path: string): unknown => {
  throw new Error(`no role file ${path} in this test`);
};

const role = (name: string, fields: Partial<RoleSpec> = {}): RoleSpec => ({
  name,
  priority: 50,
  port: null,
  kind: 'job',
  requires: [],
  hooks: {},
  ...fields,
});
const balancer = role(BALANCER_ROLE, { kind: 'balancer', priority: 10 });
const hook = { run: ['true'], on: 'member' as const, timeout: 60 };

function member(env: string, r: string, index: number, state: MemberState = 'running', fields: Partial<EnvMember> = {}): EnvMember {
  return { name: memberName(env, r, index), role: r, kind: 'job', host: 'h1', address: null, state, op: 'op-1', index, ...fields };
}

const envOf = (roles: RoleSpec[], members: EnvMember[] = [], next: Record<string, number> = {}): Pick<EnvRecord, 'roles' | 'members' | 'next'> => ({
  roles: Object.fromEntries(roles.map((r) => [r.name, r])),
  members,
  next,
});

describe('parseRole', () => {
  it('a job role: its spec without a name, hooks as sh -c or argv, where they run by default', () => {
    const r = parseRole({
      name: 'web',
      priority: 20,
      port: 80,
      job: { image: 'busybox', command: ['httpd', '-f'], ports: ['0:80'] },
      requires: [{ role: 'balancer', from: 2 }, 'db'],
      hooks: {
        beforeItIsAdded: 'test -e /srv/ready',
        afterOtherIsAdded: { run: ['sh', '-c', 'echo $KNARR_OTHER'], timeout: 5 },
        isDown: { run: 'logger down', on: 'host' },
      },
    });
    expect(r).toMatchObject({ name: 'web', priority: 20, port: 80, kind: 'job' });
    expect(r.job).not.toHaveProperty('name');
    expect(r.job).toMatchObject({ image: 'busybox', command: ['httpd', '-f'], ports: [{ host: 0, container: 80, protocol: 'tcp' }] });
    expect(r.node).toBeUndefined();
    expect(r.requires).toEqual([
      { role: 'balancer', from: 2 },
      { role: 'db', from: 1 },
    ]);
    expect(r.hooks).toEqual({
      // A member that does not exist yet runs its hook on a host.
      beforeItIsAdded: { run: ['sh', '-c', 'test -e /srv/ready'], on: 'host', timeout: 60 },
      afterOtherIsAdded: { run: ['sh', '-c', 'echo $KNARR_OTHER'], on: 'member', timeout: 5 },
      isDown: { run: ['sh', '-c', 'logger down'], on: 'host', timeout: 60 },
    });
  });

  it('a node role: image (base by default), memory and cpus as cluster create reads them', () => {
    const r = parseRole({ name: 'db', port: 5432, node: { image: 'alpine', memory: '64M', cpus: 0.5 } });
    expect(r).toMatchObject({ name: 'db', priority: 50, port: 5432, kind: 'node', node: { image: 'alpine', memory: 64 * 1024 * 1024, cpu: 500 } });
    expect(r.job).toBeUndefined();
    expect(parseRole({ name: 'db', node: {} }).node).toEqual({ image: 'base', memory: 0, cpu: 0 });
    expect(parseRole({ name: 'db', node: { cpus: '250m', memory: '1G' } }).node).toEqual({ image: 'base', memory: 1024 ** 3, cpu: 250 });
  });

  it('the built-in balancer: priority 10 unless given, no image, host hooks only', () => {
    expect(parseRole({ name: 'balancer', builtin: 'balancer' })).toEqual({
      name: 'balancer',
      priority: 10,
      port: null,
      kind: 'balancer',
      requires: [],
      hooks: {},
    });
    expect(parseRole({ name: 'lb', builtin: 'balancer', priority: 5 })).toMatchObject({ name: 'lb', priority: 5, kind: 'balancer' });
    expect(problems(() => parseRole({ name: 'lb', builtin: 'balancer', hooks: { isUp: 'true' } }))).toEqual([
      'role.hooks: a balancer has no container to run a hook in; write on: host',
    ]);
    expect(problems(() => parseRole({ name: 'lb', builtin: 'haproxy' }))).toEqual(['role.builtin: "haproxy" is no built-in role; knarr ships: balancer']);
  });

  it('names every problem with its field path, under the path it is given', () => {
    const found = problems(() =>
      parseRole(
        {
          name: 'Web',
          priority: 'high',
          port: 0,
          colour: 'red',
          job: { image: 'busybox', name: 'x' },
          requires: [{ role: 'db', from: 0 }, 7, { role: 'db', why: 1 }],
          hooks: {
            onTuesday: 'x',
            afterItIsAdded: { run: '', on: 'moon', timeout: 0 },
            beforeItIsAdded: { run: 'x', on: 'member' },
            isDown: { cmd: 'x' },
            isUp: 3,
          },
        },
        'roles[2]',
      ),
    );
    expect(found).toEqual(
      expect.arrayContaining([
        'roles[2].colour: unknown field; known fields are name, priority, port, job, node, builtin, requires, hooks',
        'roles[2].name: "Web" must start with a letter, then lower-case letters or digits, at most 24',
        'roles[2].priority: must be a whole number from 0 to 1000 (lowest runs first)',
        'roles[2].port: must be the port the member serves on, from 1 to 65535',
        'roles[2].job.name: is given by knarr (ENV-ROLE-N); leave it out',
        'roles[2].requires[0].from: must be a member count from 1 to 64',
        'roles[2].requires[1]: must be {role: ROLE, from: N} (from: the member count that needs it, default 1)',
        'roles[2].requires[2].why: unknown field; use role, from',
        expect.stringMatching(/^roles\[2\]\.hooks\.onTuesday: is no event; the events are beforeItIsAdded, /),
        'roles[2].hooks.afterItIsAdded.run: is empty',
        'roles[2].hooks.afterItIsAdded.on: must be member or host',
        'roles[2].hooks.afterItIsAdded.timeout: must be whole seconds from 1 to 3600',
        expect.stringMatching(/^roles\[2\]\.hooks\.beforeItIsAdded\.on: beforeItIsAdded runs while the member does not exist; write on: host/),
        'roles[2].hooks.isDown.cmd: unknown field; use run, on, timeout',
        'roles[2].hooks.isDown.run: is required: a shell command line, or a list of words (argv)',
        'roles[2].hooks.isUp: must be a command, or {run, on, timeout}',
      ]),
    );
    expect(found).toHaveLength(16);
    // Several problems make one message that counts them.
    expect(() => parseRole({ priority: -1 })).toThrow(/^role: 3 problems: role\.name: is required/);
  });

  it('what a member is: exactly one of job, node, builtin', () => {
    expect(problems(() => parseRole({ name: 'web' }))).toEqual([
      'role: says what a member is: job (a job spec), node (image, memory, cpus) or builtin: balancer',
    ]);
    expect(problems(() => parseRole({ name: 'web', job: { image: 'busybox' }, node: {} }))).toEqual([
      'role: has job and node: a member is one of job, node or builtin',
    ]);
    expect(problems(() => parseRole('web'))).toEqual(['role: must be a mapping: name, priority, job or node or builtin, port, requires, hooks']);
    expect(problems(() => parseRole({ name: 'web', job: 'busybox' }))).toEqual(['role.job: must be a job spec (image, command, ports, ...)']);
  });

  it("a job's own problems come under role.job; a port must be a published tcp container port; no host networking", () => {
    expect(problems(() => parseRole({ name: 'web', job: { command: ['x'] } }))[0]).toMatch(/^role\.job: /);
    expect(problems(() => parseRole({ name: 'web', port: 80, job: { image: 'busybox', ports: ['0:81'] } }))).toEqual([
      'role.port: 80 is not a tcp container port of the job; add ports: ["0:80"] to publish it on any free host port',
    ]);
    expect(problems(() => parseRole({ name: 'web', job: { image: 'busybox', network: 'host' } }))).toEqual([
      'role.job.network: host networking cannot give each member its own port; leave network out',
    ]);
  });

  it("a node's problems come under role.node", () => {
    expect(problems(() => parseRole({ name: 'db', node: 'base' }))).toEqual(['role.node: must be {image, memory, cpus}']);
    const found = problems(() => parseRole({ name: 'db', node: { image: 'no/slash', memory: 'lots', cpus: 'many', disk: '1G' } }));
    expect(found).toEqual([
      'role.node.disk: unknown field; use image, memory, cpus',
      'role.node.image: must be a base image name (knarr image list)',
      expect.stringMatching(/^role\.node\.memory: /),
      expect.stringMatching(/^role\.node\.cpus: "many" is not a cpu amount/),
    ]);
    expect(problems(() => parseRole({ name: 'db', node: { cpus: 0 } }))).toEqual([expect.stringMatching(/^role\.node\.cpus: /)]);
  });

  it('requires: a role name, never itself', () => {
    expect(problems(() => parseRole({ name: 'web', job: { image: 'busybox' }, requires: [{ role: 'web' }] }))).toEqual([
      'role.requires[0].role: a role cannot require itself',
    ]);
    expect(problems(() => parseRole({ name: 'web', job: { image: 'busybox' }, requires: 'db' }))).toEqual(['role.requires: must be a list of {role, from}']);
    expect(problems(() => parseRole({ name: 'web', job: { image: 'busybox' }, requires: [{ role: 'Db' }] }))).toEqual([
      'role.requires[0].role: must be a role name',
    ]);
    expect(problems(() => parseRole({ name: 'web', job: { image: 'busybox' }, requires: [{ role: 'db', from: MAX_MEMBERS + 1 }] }))).toEqual([
      `role.requires[0].from: must be a member count from 1 to ${MAX_MEMBERS}`,
    ]);
  });

  it('hooks must be a mapping', () => {
    expect(problems(() => parseRole({ name: 'web', job: { image: 'busybox' }, hooks: ['x'] }))).toEqual([
      expect.stringMatching(/^role\.hooks: must be a mapping of events \(beforeItIsAdded, /),
    ]);
  });
});

describe('parseEnvFile', () => {
  const web = { name: 'web', priority: 20, port: 80, job: { image: 'busybox', ports: ['0:80'] }, requires: [{ role: 'balancer', from: 2 }] };
  const db = { name: 'db', priority: 5, node: { image: 'base' } };

  it('an empty file: the balancer role only, no members', () => {
    for (const raw of [null, undefined, {}])
      expect(parseEnvFile(raw, noFiles)).toEqual({ roles: [parseRole({ name: 'balancer', builtin: 'balancer' })], members: [] });
  });

  it('roles inline or by path (read by the loader, named by the entry), the balancer always there, members lowest priority first', () => {
    const asked: [string, string][] = [];
    const f = parseEnvFile(
      { roles: ['roles/web.yaml', db, { name: 'app', job: { image: 'busybox' } }], members: { web: 2, balancer: 1, db: 1, app: 0 } },
      (path, at) => {
        asked.push([path, at]);
        return web;
      },
    );
    expect(asked).toEqual([['roles/web.yaml', 'roles[0]']]);
    expect(f.roles.map((r) => [r.name, r.kind, r.priority])).toEqual([
      ['web', 'job', 20],
      ['db', 'node', 5],
      ['app', 'job', 50],
      ['balancer', 'balancer', 10],
    ]);
    // Zero counts are left out; db (5), balancer (10), web (20).
    expect(f.members).toEqual([
      { role: 'db', count: 1 },
      { role: 'balancer', count: 1 },
      { role: 'web', count: 2 },
    ]);
  });

  it('a balancer listed changes its priority; equal priorities go by role name', () => {
    const f = parseEnvFile(
      {
        roles: [
          { name: 'balancer', builtin: 'balancer', priority: 90 },
          { ...web, priority: 90 },
          { ...db, priority: 90 },
        ],
        members: { web: 1, balancer: 1, db: 1 },
      },
      noFiles,
    );
    expect(f.roles.filter((r) => r.name === 'balancer')).toHaveLength(1);
    expect(f.roles.find((r) => r.name === 'balancer')!.priority).toBe(90);
    expect(f.members.map((m) => m.role)).toEqual(['balancer', 'db', 'web']);
  });

  it("a role file's problems are named after its entry: one it cannot read, and the fields in it", () => {
    const found = problems(() =>
      parseEnvFile({ roles: ['missing.yaml', 'bad.yaml'] }, (path, at) => {
        if (path === 'missing.yaml') throw new ValidationError(at, 'cannot read role file /x/missing.yaml: ENOENT');
        return { name: 'bad', priority: 'x', job: { image: 'busybox' } };
      }),
    );
    expect(found).toEqual([
      'roles[0]: cannot read role file /x/missing.yaml: ENOENT',
      'roles[1].priority: must be a whole number from 0 to 1000 (lowest runs first)',
    ]);
  });

  it('names every problem of the file: its fields, roles twice, member counts, requirements', () => {
    const found = problems(() =>
      parseEnvFile(
        {
          roles: [web, { ...web, priority: 1 }, { name: 'app', job: { image: 'busybox' }, requires: [{ role: 'cache' }] }],
          members: { web: -1, app: 1.5, db: 1, balancer: MAX_MEMBERS + 1 },
          extra: 1,
        },
        noFiles,
      ),
    );
    expect(found).toEqual([
      'extra: unknown field; use roles, members',
      'roles[1].name: role web is listed twice',
      `members.web: must be a count from 0 to ${MAX_MEMBERS}`,
      `members.app: must be a count from 0 to ${MAX_MEMBERS}`,
      'members.db: is no role of the file; its roles are web, app, balancer',
      `members.balancer: must be a count from 0 to ${MAX_MEMBERS}`,
      'roles.app.requires[0].role: cache is no role of the environment',
    ]);
    expect(problems(() => parseEnvFile({ roles: { web } }, noFiles))).toEqual(['roles: must be a list of roles (mappings, or role file paths)']);
    expect(problems(() => parseEnvFile({ members: [1] }, noFiles))).toEqual(['members: must be a mapping of role to count, e.g. {web: 2, db: 1}']);
    expect(problems(() => parseEnvFile('roles: x', noFiles))).toEqual(['--file: must be a mapping: roles (a list) and members (role: count)']);
  });

  it('at most MAX_MEMBERS members in all', () => {
    const found = problems(() => parseEnvFile({ roles: [web, db], members: { web: 40, db: 30 } }, noFiles));
    expect(found).toEqual([`members: 70 members; an environment has at most ${MAX_MEMBERS}`]);
    expect(parseEnvFile({ roles: [web, db], members: { web: 40, db: 24 } }, noFiles).members).toHaveLength(2);
  });

  it('checkNewRole: a role added later requires roles the environment has', () => {
    const roles = { balancer, web: role('web') };
    expect(() => checkNewRole(role('app', { requires: [{ role: 'web', from: 1 }] }), roles)).not.toThrow();
    expect(problems(() => checkNewRole(role('app', { requires: [{ role: 'cache', from: 1 }] }), roles))).toEqual([
      'roles.app.requires[0].role: cache is no role of the environment',
    ]);
  });
});

describe('planAdds', () => {
  const web = role('web', { priority: 20, port: 80, requires: [{ role: BALANCER_ROLE, from: 2 }] });

  it("the seed's example: the first web alone, the second brings the balancer first", () => {
    expect(planAdds(envOf([web, balancer]), 'web', 1)).toEqual([{ role: 'web', index: 1 }]);
    expect(planAdds(envOf([web, balancer], [member('s', 'web', 1)], { web: 2 }), 'web', 1)).toEqual([
      { role: BALANCER_ROLE, index: 1 },
      { role: 'web', index: 2 },
    ]);
    // Two at once into an empty environment: the balancer goes between them.
    expect(planAdds(envOf([web, balancer]), 'web', 3)).toEqual([
      { role: 'web', index: 1 },
      { role: BALANCER_ROLE, index: 1 },
      { role: 'web', index: 2 },
      { role: 'web', index: 3 },
    ]);
    // A balancer there already is not added again.
    const full = envOf([web, balancer], [member('s', 'web', 1), member('s', BALANCER_ROLE, 1)], { web: 2, balancer: 2 });
    expect(planAdds(full, 'web', 1)).toEqual([{ role: 'web', index: 2 }]);
  });

  it('from: the requirement starts at that member count, the one being added counted', () => {
    const app = role('app', { requires: [{ role: 'db', from: 3 }] });
    const db = role('db');
    const two = envOf([app, db], [member('s', 'app', 1), member('s', 'app', 2)], { app: 3 });
    expect(planAdds(two, 'app', 1)).toEqual([
      { role: 'db', index: 1 },
      { role: 'app', index: 3 },
    ]);
    expect(planAdds(envOf([app, db], [member('s', 'app', 1)], { app: 2 }), 'app', 1)).toEqual([{ role: 'app', index: 2 }]);
    // What a required role requires comes before it.
    const chain = envOf([role('a', { requires: [{ role: 'b', from: 1 }] }), role('b', { requires: [{ role: 'c', from: 1 }] }), role('c')]);
    expect(planAdds(chain, 'a', 1).map((x) => x.role)).toEqual(['c', 'b', 'a']);
  });

  it('lost and removing members do not count; adding, down, stopped and suspended ones do', () => {
    const lostBalancer = envOf([web, balancer], [member('s', 'web', 1), member('s', BALANCER_ROLE, 1, 'lost')], { web: 2, balancer: 2 });
    expect(planAdds(lostBalancer, 'web', 1)).toEqual([
      { role: BALANCER_ROLE, index: 2 },
      { role: 'web', index: 2 },
    ]);
    const removingWeb = envOf([web, balancer], [member('s', 'web', 1, 'removing')], { web: 2 });
    expect(planAdds(removingWeb, 'web', 1)).toEqual([{ role: 'web', index: 2 }]);
    for (const state of ['adding', 'down', 'stopped', 'suspended'] as const) {
      const counted = envOf([web, balancer], [member('s', 'web', 1, state)], { web: 2 });
      expect(planAdds(counted, 'web', 1).map((x) => x.role)).toEqual([BALANCER_ROLE, 'web']);
    }
  });

  it("indices come from next: a removed member's number is never given again", () => {
    const e = envOf([web, balancer], [member('s', 'web', 4)], { web: 7, balancer: 3 });
    expect(planAdds(e, 'web', 2)).toEqual([
      { role: BALANCER_ROLE, index: 3 },
      { role: 'web', index: 7 },
      { role: 'web', index: 8 },
    ]);
    // planAdds does not change the record it is given.
    expect(e.next).toEqual({ web: 7, balancer: 3 });
  });

  it('an unknown role and requirements in a circle are refused', () => {
    expect(() => planAdds(envOf([web, balancer]), 'db', 1)).toThrow(ValidationError);
    expect(() => planAdds(envOf([web, balancer]), 'db', 1)).toThrow(/ROLE: db is no role of the environment/);
    const circle = envOf([role('a', { requires: [{ role: 'b', from: 1 }] }), role('b', { requires: [{ role: 'a', from: 1 }] })]);
    expect(() => planAdds(circle, 'a', 1)).toThrow(/go round in a circle/);
  });
});

describe('hook order', () => {
  const roles = [
    role('web', { priority: 20, hooks: { beforeOtherIsAdded: hook, afterOtherIsAdded: hook, afterItIsAdded: hook } }),
    role('api', { priority: 20, hooks: { beforeOtherIsAdded: hook, afterOtherIsAdded: hook } }),
    role('db', { priority: 5, hooks: { afterOtherIsAdded: hook } }),
    role('cache', { priority: 30, hooks: { beforeOtherIsAdded: hook, beforeItIsAdded: { ...hook, on: 'host' as const } } }),
    { ...balancer, priority: 10 },
  ];
  const members = [
    member('s', 'web', 2),
    member('s', 'cache', 1),
    member('s', 'web', 10),
    member('s', 'api', 1),
    member('s', 'db', 1),
    member('s', BALANCER_ROLE, 1, 'running', { kind: 'balancer' }),
    member('s', 'web', 3, 'adding'),
    member('s', 'db', 2, 'lost'),
    member('s', 'api', 2, 'removing'),
    member('s', 'web', 4, 'down'),
  ];
  const env = envOf(roles, members);
  const steps = (subject: EnvMember, own: Parameters<typeof hookSteps>[2], others: Parameters<typeof hookSteps>[3], ownToo?: boolean) =>
    hookSteps(env, subject, own, others, ownToo).map((s) => `${s.event} ${s.member.name}${s.other ? ` <${s.other.name}>` : ''}`);

  it('byPriority: lowest priority first, then role name, then member number (not its name)', () => {
    expect(byPriority(env, members).map((m) => m.name)).toEqual([
      's-db-1',
      's-db-2',
      's-balancer-1',
      's-api-1',
      's-api-2',
      's-web-2',
      's-web-3',
      's-web-4',
      's-web-10',
      's-cache-1',
    ]);
    // A member of a role the record does not have goes as priority 50.
    expect(byPriority(envOf([role('a', { priority: 60 })]), [member('s', 'a', 1), member('s', 'zz', 1)]).map((m) => m.role)).toEqual(['zz', 'a']);
  });

  it("the subject's own event first, then the other present members' in priority order; only hooks a role has", () => {
    const subject = member('s', 'web', 3, 'adding');
    expect(steps(subject, 'afterItIsAdded', 'afterOtherIsAdded')).toEqual([
      'afterItIsAdded s-web-3',
      'afterOtherIsAdded s-db-1 <s-web-3>',
      // The balancer's reaction is built in: no file spells it.
      'afterOtherIsAdded s-balancer-1 <s-web-3>',
      'afterOtherIsAdded s-api-1 <s-web-3>',
      'afterOtherIsAdded s-web-2 <s-web-3>',
      // A member whose host is down hears nothing (s-web-4): its hooks could not run until it is up again.
      'afterOtherIsAdded s-web-10 <s-web-3>',
    ]);
    expect(steps(subject, 'beforeItIsAdded', 'beforeOtherIsAdded')).toEqual([
      'beforeOtherIsAdded s-api-1 <s-web-3>',
      'beforeOtherIsAdded s-web-2 <s-web-3>',
      'beforeOtherIsAdded s-web-10 <s-web-3>',
      'beforeOtherIsAdded s-cache-1 <s-web-3>',
    ]);
    expect(steps(member('s', 'cache', 2, 'adding'), 'beforeItIsAdded', 'beforeOtherIsAdded')[0]).toBe('beforeItIsAdded s-cache-2');
    expect(steps(subject, 'afterItIsAdded', 'afterOtherIsAdded', false)[0]).toBe('afterOtherIsAdded s-db-1 <s-web-3>');
  });

  it('the subject is never among the others; the built-in balancer reactions are the after-add, after-remove, isDown and isUp ones', () => {
    const subject = members[0]!;
    expect(steps(subject, 'afterItIsAdded', 'afterOtherIsAdded').filter((s) => s.includes('afterOtherIsAdded s-web-2'))).toEqual([]);
    expect(steps(subject, 'beforeItIsRemoved', 'afterOtherIsRemoved')).toEqual(['afterOtherIsRemoved s-balancer-1 <s-web-2>']);
    const b = { ...balancer };
    expect(['afterItIsAdded', 'afterOtherIsAdded', 'afterOtherIsRemoved', 'isDown', 'isUp'].every((e) => builtinHook(b, e as never))).toBe(true);
    expect(
      ['beforeItIsAdded', 'beforeOtherIsAdded', 'beforeOtherIsRemoved', 'afterItIsRemoved', 'afterCcStart', 'beforeCcStop'].some((e) =>
        builtinHook(b, e as never),
      ),
    ).toBe(false);
    expect(builtinHook(role('web'), 'afterOtherIsAdded')).toBe(false);
  });

  it('isPresent: made, and not lost or on its way out', () => {
    expect(members.filter(isPresent).map((m) => m.state)).toEqual(['running', 'running', 'running', 'running', 'running', 'running', 'down']);
  });

  it("hookEnv: the event's context, empty for what it has not", () => {
    const other = member('s', 'db', 1, 'running', { address: '10.1.2.3:5432' });
    expect(hookEnv('s', { event: 'afterOtherIsAdded', member: members[0]!, other })).toEqual({
      KNARR_ENV: 's',
      KNARR_EVENT: 'afterOtherIsAdded',
      KNARR_MEMBER: 's-web-2',
      KNARR_ROLE: 'web',
      KNARR_OTHER: 's-db-1',
      KNARR_OTHER_ADDR: '10.1.2.3:5432',
      KNARR_OTHER_ROLE: 'db',
    });
    expect(hookEnv('s', { event: 'afterItIsAdded', member: members[0]!, other: null })).toMatchObject({
      KNARR_OTHER: '',
      KNARR_OTHER_ADDR: '',
      KNARR_OTHER_ROLE: '',
    });
  });
});

describe('names', () => {
  it("validateEnvName: lower-case, digits and single dashes; never a job service's ending", () => {
    for (const ok of ['shop', 'a', 'web-eu', 'shop2', 'a-b-c', 'x'.repeat(24), 'web-80x', 'udp']) expect(validateEnvName('NAME', ok)).toBe(ok);
    const refused: [string, RegExp][] = [
      ['web-80', /ends like a job's service/],
      ['shop-web-1', /ends like a job's service/],
      ['dns-udp', /ends like a job's service/],
      ['Shop', /must start with a letter/],
      ['1shop', /must start with a letter/],
      ['', /must start with a letter/],
      ['x'.repeat(25), /at most 24 characters/],
      ['shop_eu', /must start with a letter/],
      ['shop-', /must not end with "-" or hold "--"/],
      ['a--b', /must not end with "-" or hold "--"/],
    ];
    for (const [name, why] of refused) {
      expect(() => validateEnvName('NAME', name)).toThrow(ValidationError);
      expect(() => validateEnvName('NAME', name)).toThrow(why);
    }
  });

  it('validateRoleName: no dashes, so a member name splits one way', () => {
    expect(validateRoleName('ROLE', 'web2')).toBe('web2');
    for (const bad of ['web-eu', 'Web', '2web', 'a'.repeat(25)]) expect(() => validateRoleName('ROLE', bad)).toThrow(ValidationError);
  });

  it('memberName and parseMemberName', () => {
    expect(memberName('shop-eu', 'web', 12)).toBe('shop-eu-web-12');
    expect(parseMemberName('shop-eu', 'shop-eu-web-12')).toEqual({ role: 'web', index: 12 });
    expect(parseMemberName('shop', 'shop-eu-web-12')).toBeNull();
    expect(parseMemberName('shop', 'shop-web')).toBeNull();
    expect(parseMemberName('shop', 'other-web-1')).toBeNull();
  });
});

describe('backendServices', () => {
  const web = role('web', { priority: 20, port: 80 });
  const db = role('db', { priority: 5, port: 5432, kind: 'node', node: { image: 'base', memory: 0, cpu: 0 } });
  const worker = role('worker');
  const members = [
    member('s', 'web', 2),
    member('s', 'web', 1),
    member('s', 'db', 1, 'running', { kind: 'node', address: '10.7.1.2:5432' }),
    member('s', 'db', 2, 'adding', { kind: 'node' }),
    member('s', BALANCER_ROLE, 1, 'running', { kind: 'balancer', address: '127.0.0.1:4000' }),
    member('s', 'worker', 1),
    member('s', 'web', 3, 'down'),
    member('s', 'web', 4, 'lost'),
    member('s', 'web', 5, 'removing'),
    member('s', 'web', 6, 'stopped'),
  ];
  const env = envOf([web, db, worker, balancer], members);

  it("present members of roles with a port, in priority order: a job's service, a node's IP:PORT", () => {
    expect(backendServices(env)).toEqual(['10.7.1.2:5432', 's-web-1-80', 's-web-2-80', 's-web-6-80']);
  });

  it('leaves out the members named, and a node whose address is not known yet', () => {
    expect(backendServices(env, ['s-web-1', 's-db-1'])).toEqual(['s-web-2-80', 's-web-6-80']);
    expect(backendServices(envOf([db], [member('s', 'db', 1, 'running', { kind: 'node', address: null })]))).toEqual([]);
  });
});
