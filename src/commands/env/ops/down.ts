import { NotFoundError } from '../../../core/errors.js';
import { byPriority, hookSteps, type EnvMember, type EnvRecord } from '../../../core/env.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { JobRepo } from '../../../state/jobs.js';
import { updateBalancer } from '../balancer-records.js';
import { addMember, envArg, envRepo, HookFailed, loadEnv, reserveMembers, runStep, updateMember } from './flow.js';

/**
 * A host went down (env.down) or a member came back (env.up): the members' isDown and isUp, in the order of an add
 * (the member's own event, then the others' in priority order). A hook that fails is recorded and the rest run on:
 * nothing is denied here, the host is gone whatever the hooks say.
 */

/** Runs the others' hooks of event about subject; a failing one is recorded (runStep did) and logged in the operation's progress. */
async function tellOthers(r: OpRun, env: EnvRecord, subject: EnvMember, event: 'isDown' | 'isUp'): Promise<void> {
  for (const step of hookSteps(env, subject, event, event, false)) {
    try {
      await runStep(r, env, step, `${subject.name}:${event}:${step.member.name}`);
    } catch (e) {
      if (!(e instanceof HookFailed)) throw e;
      await r.progress(0, 0, e.message);
    }
  }
}

/** A balancer whose host went down: lost (its host's collector removes it when back), and a new one made on a host up. */
async function replaceBalancer(r: OpRun, envName: string, m: EnvMember, downHost: string): Promise<string | null> {
  const repo = envRepo(r);
  if (!r.op.state[`lost:${m.name}`]) {
    await updateMember(r, envName, m.name, (x) => (x.state === 'lost' ? null : { ...x, state: 'lost' }));
    await updateBalancer(r.store, r.ctx.config.fleet, downHost, envName, (b) => (b.member !== m.name || b.state === 'lost' ? null : { ...b, state: 'lost' }));
    await repo.addHistory(envName, {
      event: 'lost',
      member: m.name,
      role: m.role,
      host: downHost,
      message: `its host ${downHost} is down; the collector there removes it when the host is back`,
      op: r.op.id,
    });
    await r.save({ [`lost:${m.name}`]: true });
  }
  const [name] = await reserveMembers(r, envName, [{ role: m.role, count: 1 }]);
  if (!name) return null;
  await addMember(r, envName, name, [downHost]);
  const env = await loadEnv(r, envName);
  const made = env.members.find((x) => x.name === name);
  await repo.addHistory(envName, {
    event: 'isDown',
    member: m.name,
    role: m.role,
    on: 'builtin',
    host: made?.host ?? undefined,
    exit: 0,
    message: `replaced by ${name} on ${made?.host ?? '?'}`,
    op: r.op.id,
  });
  return name;
}

/** env.down {env, host}: each member the watcher marked down with this operation, in priority order. */
export const envDown: OpHandler = {
  undoes: false,
  async run(r) {
    const name = envArg(r);
    const host = new OpArgs(r.op).string('host');
    const env = await envRepo(r).get(name);
    if (!env) return { env: name, host, members: [] };
    const done = (r.op.state.done ?? []) as string[];
    const mine = byPriority(
      env,
      env.members.filter((m) => m.op === r.op.id && m.host === host && (m.state === 'down' || m.state === 'lost')),
    );
    const replaced: string[] = [];
    for (const [i, m] of mine.entries()) {
      if (done.includes(m.name)) continue;
      await r.progress(i, mine.length, `${m.name} is down`);
      if (!r.op.state[`noted:${m.name}`]) {
        await envRepo(r).addHistory(name, { event: 'down', member: m.name, role: m.role, host, message: `its host ${host} is down`, op: r.op.id });
        await r.save({ [`noted:${m.name}`]: true });
      }
      // Its own isDown: the balancer's built-in reaction; a role's hook cannot run, its member is on the host that is gone.
      if (m.kind === 'balancer') {
        const made = await replaceBalancer(r, name, m, host);
        if (made) replaced.push(made);
      } else if (env.roles[m.role]?.hooks.isDown && !r.op.state[`own:${m.name}`]) {
        await envRepo(r).addHistory(name, {
          event: 'isDown',
          member: m.name,
          role: m.role,
          on: env.roles[m.role]!.hooks.isDown!.on,
          host,
          message: `skipped: its host ${host} is down`,
          op: r.op.id,
        });
        await r.save({ [`own:${m.name}`]: true });
      }
      await tellOthers(r, await loadEnv(r, name), m, 'isDown');
      await r.save({ done: [...((r.op.state.done ?? []) as string[]), m.name] });
    }
    await r.progress(mine.length, mine.length, 'down handled');
    return { env: name, host, members: mine.map((m) => m.name), replaced };
  },
  async undo() {},
};

/** env.up {env, member}: a down member runs again (its host back, or its job moved): running, where it is now; its own isUp, then the others'. */
export const envUp: OpHandler = {
  undoes: false,
  async run(r) {
    const name = envArg(r);
    const member = new OpArgs(r.op).string('member');
    let env = await loadEnv(r, name);
    let m = env.members.find((x) => x.name === member);
    if (!m) throw new NotFoundError(`member ${member} of ${name} is gone from the record`);
    if (m.op !== r.op.id) return { env: name, member, skipped: `its record names ${m.op}` };
    if (m.state === 'down') {
      let place: { host: string | null; address: string | null } = { host: m.host, address: m.address };
      if (m.kind === 'job') {
        const jobs = new JobRepo(r.store, r.ctx.config.fleet);
        const actual = await jobs.actual(m.name);
        const port = env.roles[m.role]?.port ?? null;
        const service = port === null ? null : await jobs.service(`${m.name}-${port}`);
        place = { host: actual?.host ?? m.host, address: service ? `${service.address}:${service.port}` : m.address };
      }
      const was = m.host;
      env = (await updateMember(r, name, member, (x) => (x.state !== 'down' ? null : { ...x, state: 'running', ...place, reaction: undefined }))) ?? env;
      m = env.members.find((x) => x.name === member)!;
      await envRepo(r).addHistory(name, {
        event: 'up',
        member,
        role: m.role,
        host: m.host ?? undefined,
        message: m.host === was ? `back on ${m.host}` : `runs on ${m.host} now (was ${was})`,
        op: r.op.id,
      });
    }
    if (m.state !== 'running') return { env: name, member, state: m.state };
    // Its own isUp runs in it; the others' follow; a failing one is recorded and the rest still run.
    for (const step of hookSteps(env, m, 'isUp', 'isUp')) {
      try {
        await runStep(r, env, step, `${m.name}:isUp:${step.member.name}`);
      } catch (e) {
        if (!(e instanceof HookFailed)) throw e;
        await r.progress(0, 0, e.message);
      }
    }
    return { env: name, member, host: m.host, address: m.address };
  },
  async undo() {},
};
