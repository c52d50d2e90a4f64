import { byPriority, hookSteps, isPresent, memberName, planAdds, type EnvEvent, type EnvMember, type EnvRecord, type RoleSpec } from '../../../core/env.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpRun } from '../../../ops/runner.js';
import { envArg, envRepo } from './flow.js';

/**
 * What an environment operation would do, as notes under --dry-run: the members it would make or take away, in
 * order, and each hook that would run (as the environment stands now; a hook that denies would stop it there).
 */

const hooksLine = (env: EnvRecord, subject: EnvMember, own: EnvEvent, others: EnvEvent): string[] =>
  hookSteps(env, subject, own, others).map(
    (s) => `  ${s.event} of ${s.member.name}${s.other ? ` (about ${s.other.name})` : ''}: ${env.roles[s.member.role]?.hooks[s.event] ? 'hook' : 'built in'}`,
  );

function what(role: RoleSpec, name: string): string {
  if (role.kind === 'balancer') return `serve balancer ${name} on the environment's home host (its agent listens; the service points there)`;
  if (role.kind === 'node') return `make node ${name} (image ${role.node?.image ?? 'base'})`;
  return `run job ${name} (image ${role.job?.image ?? '?'}) on the host the scheduler picks`;
}

/** The adds of groups into env, each member's hooks and making, as notes. */
function planGroups(r: OpRun, env: EnvRecord, groups: readonly { role: string; count: number }[]): void {
  let cur = env;
  for (const g of groups) {
    for (const a of planAdds(cur, g.role, g.count)) {
      const name = memberName(cur.name, a.role, a.index);
      const m: EnvMember = { name, role: a.role, kind: cur.roles[a.role]!.kind, host: null, address: null, state: 'adding', op: 'op-planned', index: a.index };
      const lines = [`add ${name} (role ${a.role}):`, ...hooksLine(cur, m, 'beforeItIsAdded', 'beforeOtherIsAdded'), `  ${what(cur.roles[a.role]!, name)}`];
      cur = { ...cur, members: [...cur.members, { ...m, state: 'running' }], next: { ...cur.next, [a.role]: a.index + 1 } };
      lines.push(...hooksLine(cur, { ...m, state: 'running' }, 'afterItIsAdded', 'afterOtherIsAdded'));
      r.ctx.runner.note(lines.join('\n'));
    }
  }
}

export async function planCreate(r: OpRun): Promise<void> {
  const roles = (r.op.args.roles ?? []) as RoleSpec[];
  const env: EnvRecord = {
    name: envArg(r),
    home: r.op.host,
    createdAt: '',
    createdBy: 'op-planned',
    roles: Object.fromEntries(roles.map((x) => [x.name, x])),
    members: [],
    next: {},
    state: 'running',
  };
  r.ctx.runner.note(`write environment ${env.name} to etcd (roles ${roles.map((x) => x.name).join(', ')})`);
  planGroups(r, env, (r.op.args.members ?? []) as { role: string; count: number }[]);
}

export async function planAdd(r: OpRun): Promise<void> {
  const env = await envRepo(r).get(envArg(r));
  if (!env) return;
  const a = new OpArgs(r.op);
  const role = r.op.args.roleSpec as RoleSpec | undefined;
  const withRole = role && !env.roles[role.name] ? { ...env, roles: { ...env.roles, [role.name]: role } } : env;
  if (withRole !== env) r.ctx.runner.note(`add role ${role!.name} to environment ${env.name}`);
  planGroups(r, withRole, [{ role: a.string('role'), count: a.integer('count') }]);
}

export async function planRemove(r: OpRun): Promise<void> {
  const env = await envRepo(r).get(envArg(r));
  const m = env?.members.find((x) => x.name === new OpArgs(r.op).string('member'));
  if (!env || !m) return;
  const rest = { ...env, members: env.members.filter((x) => x.name !== m.name) };
  r.ctx.runner.note(
    [
      `remove ${m.name} (role ${m.role}):`,
      ...hooksLine(env, m, 'beforeItIsRemoved', 'beforeOtherIsRemoved'),
      `  take ${m.name} away from ${m.host ?? 'its host'}${m.kind === 'job' ? ' (job rm)' : ''}`,
      ...hooksLine({ ...rest, members: [...rest.members] }, m, 'afterItIsRemoved', 'afterOtherIsRemoved'),
    ].join('\n'),
  );
}

export async function planEach(r: OpRun, verb: string, reverse: boolean): Promise<void> {
  const env = await envRepo(r).get(envArg(r));
  if (!env) return;
  const present = byPriority(
    env,
    env.members.filter((m) => (verb === 'destroy' ? true : isPresent(m) && m.state !== 'down')),
  );
  for (const m of reverse ? present.reverse() : present) r.ctx.runner.note(`${verb} ${m.name} (${m.kind} on ${m.host ?? '-'}, now ${m.state})`);
  r.ctx.runner.note(verb === 'destroy' ? `remove environment ${env.name} and its history from etcd` : `set environment ${env.name}'s state in etcd`);
}
