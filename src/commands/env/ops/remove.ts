import { ConflictError, FailureError, NotFoundError } from '../../../core/errors.js';
import { byPriority, isPresent, keptBecause, type EnvMember } from '../../../core/env.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { dropMember, syncBackends } from '../members.js';
import { envArg, envRepo, loadEnv, runSteps, updateMember } from './flow.js';
import { planEach, planRemove } from './plan.js';

/** Drops a member from its place (the balancers forget it first) and from the record. */
async function takeAway(r: OpRun, envName: string, m: EnvMember): Promise<string> {
  const env = await loadEnv(r, envName);
  for (const b of env.members.filter((x) => x.kind === 'balancer' && isPresent(x) && x.name !== m.name)) await syncBackends(r.ctx, r.store, env, b, [m.name]);
  const later = await dropMember(r.ctx, r.store, env, m, r);
  await envRepo(r).update(envName, (e) => ({ ...e, members: e.members.filter((x) => x.name !== m.name) }));
  await envRepo(r).addHistory(envName, { event: 'removed', member: m.name, role: m.role, host: m.host ?? undefined, message: later.trim(), op: r.op.id });
  return later;
}

/**
 * env.remove: the member's beforeItIsRemoved and the others' beforeOtherIsRemoved (a non-zero exit denies it, and
 * the member stays as it was), the member taken away, then its afterItIsRemoved (on its host) and the others' afterOtherIsRemoved.
 */
export const envRemove: OpHandler = {
  plan: planRemove,
  async run(r) {
    const name = envArg(r);
    const member = new OpArgs(r.op).string('member');
    let env = await loadEnv(r, name);
    let m = env.members.find((x) => x.name === member);
    const saved = r.op.state.member as EnvMember | undefined;
    if (!m && !saved) throw new NotFoundError(`environment ${name} has no member ${member}`, { hint: `see its members with: knarr env show ${name}` });
    if (m && !saved) {
      // Checked again here: an add queued in the same instant as this remove may have made m required since the command checked.
      const kept = keptBecause(env, m);
      if (kept) throw new ConflictError(kept.message, { hint: kept.hint });
      await r.save({ member: m });
      env = (await updateMember(r, name, member, (x) => ({ ...x, state: 'removing', op: r.op.id }))) ?? env;
    }
    const subject = saved ?? m!;
    if (!r.op.state.dropped) {
      await runSteps(r, env, subject, 'beforeItIsRemoved', 'beforeOtherIsRemoved');
      await r.checkpoint();
      m = env.members.find((x) => x.name === member);
      if (m) await takeAway(r, name, m);
      await r.save({ dropped: true });
    }
    await runSteps(r, await loadEnv(r, name), subject, 'afterItIsRemoved', 'afterOtherIsRemoved');
    return { env: name, removed: member };
  },
  async undo(r) {
    const saved = r.op.state.member as EnvMember | undefined;
    if (!saved) return;
    if (r.op.state.dropped) throw new FailureError(`member ${saved.name} was already taken away when a hook after it failed; it stays removed`);
    await updateMember(r, envArg(r), saved.name, (x) => (x.state === 'removing' ? { ...x, state: saved.state, op: saved.op } : null));
  },
};

/** env.destroy: every member taken away (highest priority first, no hooks), then the record and its history. */
export const envDestroy: OpHandler = {
  undoes: false,
  plan: (r) => planEach(r, 'destroy', true),
  async run(r) {
    const name = envArg(r);
    const env = await envRepo(r).get(name);
    if (!env) return { env: name, destroyed: true };
    const members = byPriority(env, env.members).reverse();
    for (const [i, m] of members.entries()) {
      await r.progress(i, members.length, `removing ${m.name}`);
      await updateMember(r, name, m.name, (x) => ({ ...x, state: 'removing', op: r.op.id }));
      await dropMember(r.ctx, r.store, env, m, r);
      await envRepo(r).update(name, (e) => ({ ...e, members: e.members.filter((x) => x.name !== m.name) }));
    }
    await envRepo(r).remove(name);
    return { env: name, destroyed: true, removed: members.map((m) => m.name) };
  },
  async undo() {},
};
