import { FailureError, NotFoundError } from '../../../core/errors.js';
import { builtinHook, hookSteps, isPresent, memberName, planAdds, type EnvEvent, type EnvMember, type EnvRecord, type HookStep } from '../../../core/env.js';
import { OpArgs } from '../../../core/op-args.js';
import { thisHost } from '../../../daemon/pidfile.js';
import type { OpRun } from '../../../ops/runner.js';
import { EnvRepo } from '../../../state/envs.js';
import { dropMember, runHookHere, syncBackends, type HookOutcome } from '../members.js';

/**
 * What the environment operations share: the record by compare-and-swap, one hook run (built in, here, or by the
 * member's host's runner as a child operation), and adding a member with its hooks in the documented order.
 */

export const envRepo = (r: OpRun) => new EnvRepo(r.store, r.ctx.config.fleet);
export const envArg = (r: OpRun) => new OpArgs(r.op).string('env');

export async function loadEnv(r: OpRun, name = envArg(r)): Promise<EnvRecord> {
  const env = await envRepo(r).get(name);
  if (!env) throw new NotFoundError(`no environment ${name}`, { hint: 'list them with: knarr env list' });
  return env;
}

/** Changes member name in the record (fn's null changes nothing). */
export async function updateMember(r: OpRun, env: string, name: string, fn: (m: EnvMember) => EnvMember | null): Promise<EnvRecord | null> {
  return envRepo(r).update(env, (e) => {
    const i = e.members.findIndex((m) => m.name === name);
    if (i < 0) return null;
    const next = fn(e.members[i]!);
    if (next === null) return null;
    const members = [...e.members];
    members[i] = next;
    return { ...e, members };
  });
}

/** Hook runs settled so far by this operation (a resumed run does not run a hook again). */
const settled = (r: OpRun) => (r.op.state.hooks ?? {}) as Record<string, number>;

/** The denial or failure a hook's non-zero exit makes: it names the hook and says its output. */
export class HookFailed extends FailureError {}

/**
 * Runs one hook step and records it in the environment's history. A hook of a member on another host is a child
 * operation that host's runner carries out. Throws HookFailed on a non-zero exit: a before* hook denies the change,
 * an after* one fails the operation.
 */
export async function runStep(r: OpRun, env: EnvRecord, step: HookStep, key: string): Promise<void> {
  const done = settled(r)[key];
  if (done === 0) return;
  const role = env.roles[step.member.role];
  if (!role) return;
  const repo = envRepo(r);
  const about = step.other ? { other: step.other.name } : {};
  if (builtinHook(role, step.event)) {
    const started = Date.now();
    let message = '';
    if (step.event === 'afterItIsAdded' || step.event === 'afterOtherIsAdded') message = await syncBackends(r.ctx, r.store, env, step.member);
    else if (step.event === 'afterOtherIsRemoved') message = await syncBackends(r.ctx, r.store, env, step.member, step.other ? [step.other.name] : []);
    // A member down leaves the backends (the record says down), one up again comes back.
    else if ((step.event === 'isDown' || step.event === 'isUp') && step.other) message = await syncBackends(r.ctx, r.store, env, step.member);
    if (message)
      await repo.addHistory(env.name, {
        event: step.event,
        member: step.member.name,
        ...about,
        role: step.member.role,
        on: 'builtin',
        host: step.member.host ?? undefined,
        exit: 0,
        durationMs: Date.now() - started,
        message,
        op: r.op.id,
      });
  }
  const hook = role.hooks[step.event];
  if (hook) {
    const where = hook.on === 'host' ? (step.member.host ?? env.home) : step.member.host;
    if (!where) throw new FailureError(`member ${step.member.name} has no host to run its ${step.event} hook on`);
    let out: HookOutcome;
    if (where === (await thisHost(r.ctx.config.stateDir))) out = await runHookHere(r.ctx, r.store, env, step, hook);
    else {
      const child = await r.child(`hook:${key}`, 'env.hook', { env: env.name, event: step.event, member: step.member.name, other: step.other ?? null }, where);
      if (child.status !== 'done') throw new FailureError(`the ${step.event} hook of ${step.member.name} on ${where}: ${child.error ?? child.status}`);
      out = child.result as HookOutcome;
    }
    await repo.addHistory(env.name, {
      event: step.event,
      member: step.member.name,
      ...about,
      role: step.member.role,
      on: hook.on,
      host: out.host,
      exit: out.exit,
      durationMs: out.durationMs,
      message: out.output,
      op: r.op.id,
    });
    if (out.exit !== 0) {
      const what = step.other ? `${step.event} hook of ${step.member.name} (about ${step.other.name})` : `${step.event} hook of ${step.member.name}`;
      throw new HookFailed(`${what} exited ${out.exit}${out.output ? `: ${out.output}` : ''}`);
    }
  }
  await r.save({ hooks: { ...settled(r), [key]: 0 } });
}

/** Runs the hooks of one change in order: the subject's own event, then the others' in priority order. */
export async function runSteps(r: OpRun, env: EnvRecord, subject: EnvMember, own: EnvEvent, others: EnvEvent, ownToo = true): Promise<void> {
  for (const step of hookSteps(env, subject, own, others, ownToo)) await runStep(r, env, step, `${subject.name}:${step.event}:${step.member.name}`);
}

/** Reserves the members an add makes (their names and places in the record, state adding) in one compare-and-swap; the names in order. */
export async function reserveMembers(r: OpRun, env: string, groups: readonly { role: string; count: number }[]): Promise<string[]> {
  const saved = r.op.state.plan as string[] | undefined;
  if (saved) return saved;
  let names: string[] = [];
  const updated = await envRepo(r).update(env, (e) => {
    // Reserved by this operation before a crash kept it from saving its plan: those are the plan, none is reserved twice.
    const mine = e.members.filter((m) => m.op === r.op.id && m.state === 'adding').map((m) => m.name);
    if (mine.length > 0) {
      names = mine;
      return null;
    }
    names = [];
    let cur = e;
    for (const g of groups) {
      const adds = planAdds(cur, g.role, g.count);
      const made: EnvMember[] = adds.map((a) => ({
        name: memberName(e.name, a.role, a.index),
        role: a.role,
        kind: e.roles[a.role]!.kind,
        host: null,
        address: null,
        state: 'adding',
        op: r.op.id,
        index: a.index,
      }));
      const next = { ...cur.next };
      for (const a of adds) next[a.role] = a.index + 1;
      cur = { ...cur, members: [...cur.members, ...made], next };
      names.push(...made.map((m) => m.name));
    }
    return cur;
  });
  if (!updated) throw new NotFoundError(`no environment ${env}`);
  await r.save({ plan: names });
  return names;
}

/** Where a new balancer goes: the environment's home, unless that is excluded (the host that went down). */
function balancerHost(env: EnvRecord, avoid: readonly string[], up: readonly string[]): string {
  if (!avoid.includes(env.home) && up.includes(env.home)) return env.home;
  const other = up.find((h) => !avoid.includes(h));
  if (!other) throw new FailureError(`no host is up to run a balancer of ${env.name}${avoid.length ? ` other than ${avoid.join(', ')}` : ''}`);
  return other;
}

/**
 * Adds one reserved member: its own beforeItIsAdded, the others' beforeOtherIsAdded (a non-zero exit denies it),
 * the member made by a child operation, then its afterItIsAdded and the others' afterOtherIsAdded.
 */
export async function addMember(r: OpRun, envName: string, name: string, avoid: readonly string[] = []): Promise<void> {
  let env = await loadEnv(r, envName);
  let m = env.members.find((x) => x.name === name);
  if (!m) throw new NotFoundError(`member ${name} of ${envName} is gone from the record`);
  if (m.state === 'adding') {
    await runSteps(r, env, m, 'beforeItIsAdded', 'beforeOtherIsAdded');
    await r.checkpoint();
    let host: string | undefined;
    if (m.kind === 'balancer') {
      const { HostRepo } = await import('../../../state/hosts.js');
      const up = (await new HostRepo(r.store, r.ctx.config.fleet).list()).filter((h) => h.up).map((h) => h.host.name);
      host = balancerHost(env, avoid, up);
    }
    const child = await r.child(`member:${name}`, 'env.member', { env: envName, member: name, ...(host ? { host } : {}) });
    if (child.status !== 'done') throw new FailureError(`member ${name} was not made: ${child.error ?? child.status}`);
    const place = child.result as { host: string; address: string | null };
    env = (await updateMember(r, envName, name, (x) => ({ ...x, state: 'running', host: place.host, address: place.address }))) ?? env;
    m = env.members.find((x) => x.name === name)!;
    await envRepo(r).addHistory(envName, {
      event: 'added',
      member: name,
      role: m.role,
      host: place.host,
      message: place.address ? `at ${place.address}` : '',
      op: r.op.id,
    });
  }
  await runSteps(r, env, m, 'afterItIsAdded', 'afterOtherIsAdded');
}

/** Takes back the members this operation added, newest first; the balancer forgets them before they go. */
export async function undoAdds(r: OpRun, envName: string): Promise<EnvRecord | null> {
  const repo = envRepo(r);
  let env = await repo.get(envName);
  if (!env) return null;
  const mine = env.members.filter((m) => m.op === r.op.id && (m.state === 'adding' || m.state === 'running' || m.state === 'removing')).reverse();
  for (const m of mine) {
    env = (await updateMember(r, envName, m.name, (x) => ({ ...x, state: 'removing' }))) ?? env;
    for (const b of env.members.filter((x) => x.kind === 'balancer' && isPresent(x) && x.name !== m.name)) await syncBackends(r.ctx, r.store, env, b, [m.name]);
    const later = await dropMember(r.ctx, r.store, env, m, r);
    env = (await repo.update(envName, (e) => ({ ...e, members: e.members.filter((x) => x.name !== m.name) }))) ?? env;
    if (m.state !== 'adding' || m.host)
      await repo.addHistory(envName, { event: 'removed', member: m.name, role: m.role, message: `undone${later}`, op: r.op.id });
  }
  return env;
}
