import { FailureError, NotFoundError } from '../../../core/errors.js';
import type { EnvEvent, EnvMember } from '../../../core/env.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpHandler } from '../../../ops/runner.js';
import { dropMember, makeBalancer, makeJobMember, runHookHere } from '../members.js';
import { makeNodeMember } from '../nodes.js';
import { envArg, loadEnv } from './flow.js';

const memberOf = async (r: Parameters<OpHandler['run']>[0]) => {
  const env = await loadEnv(r);
  const name = new OpArgs(r.op).string('member');
  const m = env.members.find((x) => x.name === name);
  if (!m) throw new NotFoundError(`member ${name} of ${env.name} is gone from the record`);
  return { env, m };
};

/** env.member: makes one member (a child of the add that reserved it); undone, it takes away what it made. */
export const envMember: OpHandler = {
  async run(r) {
    const { env, m } = await memberOf(r);
    if (m.kind === 'job') return makeJobMember(r.ctx, r.store, env, m);
    if (m.kind === 'balancer') return makeBalancer(r.ctx, r.store, env, m, new OpArgs(r.op).string('host'));
    if (m.kind === 'node') return makeNodeMember(r, env, m);
    throw new FailureError(`members of kind ${String(m.kind)} are not made by this knarr`);
  },
  async undo(r) {
    const env = await loadEnv(r).catch(() => null);
    const m = env?.members.find((x) => x.name === new OpArgs(r.op).string('member'));
    if (!env || !m) return;
    const host = new OpArgs(r.op).optionalString('host');
    await dropMember(r.ctx, r.store, env, { ...m, host: m.host ?? host ?? null }, r);
  },
};

/** env.hook: one hook of a member on this host, for an operation of the environment's home host. */
export const envHook: OpHandler = {
  undoes: false,
  async run(r) {
    const env = await loadEnv(r, envArg(r));
    const a = new OpArgs(r.op);
    const event = a.string('event') as EnvEvent;
    const name = a.string('member');
    const member = env.members.find((x) => x.name === name);
    if (!member) throw new NotFoundError(`member ${name} of ${env.name} is gone from the record`);
    const hook = env.roles[member.role]?.hooks[event];
    if (!hook) throw new NotFoundError(`role ${member.role} has no ${event} hook`);
    const other = (r.op.args.other ?? null) as EnvMember | null;
    return runHookHere(r.ctx, r.store, env, { event, member, other }, hook);
  },
  async undo() {},
};
