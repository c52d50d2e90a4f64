import { byPriority, isPresent, type EnvEvent, type EnvMember, type EnvRecord } from '../../core/env.js';
import { restartGraceMs } from '../../core/hosts.js';
import { isTerminal, opId } from '../../core/ops.js';
import { EnvRepo } from '../../state/envs.js';
import { HostRepo } from '../../state/hosts.js';
import { JobRepo } from '../../state/jobs.js';
import { OpRepo } from '../../state/ops.js';
import type { Store } from '../../state/store.js';
import type { Context } from '../types.js';
import { runHookHere } from './members.js';

/** While a member is down, how often its job is looked at for running again (the sweep is far rarer). */
const DOWN_RECHECK_MS = 2000;

/** What the agent calls: the hosts up changed (or a sweep came), it has started, it is stopping. */
export interface EnvWatcher {
  hostsChanged(): Promise<void>;
  afterStart(): Promise<void>;
  beforeStop(): Promise<void>;
  close(): void;
}

/** Members that react to a host going down: those that run (a stopped or suspended one is left as it is). */
const reacts = (m: EnvMember) => m.state === 'running' && m.host !== null && (m.kind === 'job' || m.kind === 'balancer');

/**
 * The environments' side of hosts going down and coming back, run in every agent. For each environment one agent
 * reacts: its home when that is up, else the first host up by name. It marks the members of a host that went down
 * (past the host's restart grace) `down` by compare-and-swap together with a reserved operation number, and submits
 * env.down on itself under that number; a down member whose job runs again on a host up gets env.up the same way.
 * Two agents that disagree for a moment race on the record, and one wins.
 */
export function envWatcher(ctx: Context, store: Store, me: string, log: (line: string) => void): EnvWatcher {
  const fleet = ctx.config.fleet;
  const envs = new EnvRepo(store, fleet);
  const hosts = new HostRepo(store, fleet);
  const ops = new OpRepo(store, fleet);
  const jobs = new JobRepo(store, fleet);
  /** When this agent first saw each host down (a monotonic clock), for its restart grace. */
  const downSince = new Map<string, number>();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let closed = false;

  const later = (ms: number) => {
    if (closed) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      void check();
    }, ms).unref();
  };

  /** The hosts up, and the hosts down past their grace (a host with no record any more is down at once). */
  async function view(): Promise<{ up: Set<string>; isDown: (host: string) => boolean; waitMs: number }> {
    const list = await hosts.list();
    const known = new Set(list.map((h) => h.host.name));
    const now = performance.now();
    const up = new Set(list.filter((h) => h.up).map((h) => h.host.name));
    const down = new Set<string>();
    let waitMs = Infinity;
    for (const name of downSince.keys()) if (!list.some((h) => h.host.name === name)) downSince.delete(name);
    for (const { host, up: isUp } of list) {
      if (isUp) {
        downSince.delete(host.name);
        continue;
      }
      const since = downSince.get(host.name) ?? now;
      downSince.set(host.name, since);
      const left = since + restartGraceMs(host) - now;
      if (left <= 0) down.add(host.name);
      else waitMs = Math.min(waitMs, left);
    }
    return { up, isDown: (h) => down.has(h) || !known.has(h), waitMs };
  }

  /** Submits (again) a down member's reaction under the number its record holds. */
  async function submit(env: EnvRecord, m: EnvMember): Promise<void> {
    const n = Number(m.op.replace(/^op-/, ''));
    if (!Number.isInteger(n) || n <= 0) return;
    const args = m.reaction === 'env.up' ? { env: env.name, member: m.name } : { env: env.name, host: m.host };
    await ops.submitAs(n, m.reaction ?? 'env.down', args, me);
  }

  /** Marks the members fn picks with a new reaction, in one compare-and-swap with a reserved number; submits it when this agent won. */
  async function react(env: EnvRecord, kind: 'env.down' | 'env.up', pick: (m: EnvMember) => boolean, args: Record<string, unknown>): Promise<void> {
    const n = await ops.reserve();
    const id = opId(n);
    let marked: string[] = [];
    await envs.update(env.name, (e) => {
      marked = [];
      const members = e.members.map((m) => {
        if (!pick(m)) return m;
        marked.push(m.name);
        return { ...m, state: 'down' as const, op: id, reaction: kind };
      });
      return marked.length === 0 ? null : { ...e, members };
    });
    if (marked.length === 0) return;
    log(`environment ${env.name}: ${kind === 'env.down' ? `${marked.join(', ')} down with ${String(args.host)}` : `${marked.join(', ')} up again`} (${id})`);
    await ops.submitAs(n, kind, args, me);
  }

  async function pass(): Promise<void> {
    const { up, isDown, waitMs } = await view();
    let recheck = Number.isFinite(waitMs) ? waitMs + 50 : Infinity;
    const first = [...up].sort()[0];
    for (const env of await envs.list()) {
      const reactor = up.has(env.home) ? env.home : first;
      if (reactor !== me) continue;
      // A home that is down runs nothing: the environment's operations are this host's from now on.
      if (isDown(env.home)) {
        const was = env.home;
        const moved = await envs.update(env.name, (e) => (e.home === was ? { ...e, home: me } : null));
        if (moved?.home === me) {
          await envs.addHistory(env.name, { event: 'state', member: '-', host: me, message: `home moved to ${me}: ${was} is down` });
          log(`environment ${env.name}: home moved here from ${was}, which is down`);
        }
      }
      // Members of a host that went down: one reaction per host.
      const gone = new Set(env.members.filter((m) => reacts(m) && isDown(m.host!)).map((m) => m.host!));
      for (const h of gone) await react(env, 'env.down', (m) => reacts(m) && m.host === h, { env: env.name, host: h });
      for (const m of env.members.filter((x) => x.state === 'down')) {
        const op = await ops.get(m.op);
        // Marked by an agent that stopped before it wrote the operation: written now, under the same number.
        if (!op) {
          await submit(env, m);
          continue;
        }
        recheck = Math.min(recheck, DOWN_RECHECK_MS);
        if (!isTerminal(op.status) || m.reaction === 'env.up') continue;
        if (m.kind !== 'job') continue;
        const actual = await jobs.actual(m.name);
        if (actual?.state === 'running' && up.has(actual.host))
          await react(env, 'env.up', (x) => x.name === m.name && x.state === 'down' && x.op === m.op, { env: env.name, member: m.name });
      }
    }
    if (Number.isFinite(recheck)) later(recheck);
  }

  function check(): Promise<void> {
    if (closed) return Promise.resolve();
    again = true;
    running ??= (async () => {
      try {
        while (again && !closed) {
          again = false;
          try {
            await pass();
          } catch (e) {
            log(`environments: ${(e as Error).message}; looked at again shortly`);
            later(DOWN_RECHECK_MS);
          }
        }
      } finally {
        running = null;
      }
    })();
    return running;
  }

  /** Runs event's hook of each member on this host, its own only, here; each run recorded, a failure logged and never thrown. */
  async function ccHooks(event: EnvEvent): Promise<void> {
    let list: EnvRecord[];
    try {
      list = await envs.list();
    } catch (e) {
      log(`environments: ${event} hooks not run: ${(e as Error).message}`);
      return;
    }
    for (const env of list) {
      const mine = byPriority(
        env,
        env.members.filter((m) => m.host === me && isPresent(m) && (m.state === 'running' || m.state === 'down') && env.roles[m.role]?.hooks[event]),
      );
      for (const m of mine) {
        const hook = env.roles[m.role]!.hooks[event]!;
        const step = { event, member: m, other: null };
        try {
          const out = await runHookHere(ctx, store, env, step, hook);
          await envs.addHistory(env.name, {
            event,
            member: m.name,
            role: m.role,
            on: hook.on,
            host: me,
            exit: out.exit,
            durationMs: out.durationMs,
            message: out.output,
          });
          if (out.exit !== 0) log(`environment ${env.name}: the ${event} hook of ${m.name} exited ${out.exit}${out.output ? `: ${out.output}` : ''}`);
        } catch (e) {
          log(`environment ${env.name}: the ${event} hook of ${m.name} did not run: ${(e as Error).message}`);
          await envs
            .addHistory(env.name, { event, member: m.name, role: m.role, on: hook.on, host: me, exit: 127, message: (e as Error).message })
            .catch(() => undefined);
        }
      }
    }
  }

  return {
    hostsChanged: check,
    afterStart: () => ccHooks('afterCcStart'),
    beforeStop: () => ccHooks('beforeCcStop'),
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}
