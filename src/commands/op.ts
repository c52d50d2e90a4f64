import { fileURLToPath } from 'node:url';
import {
  ConflictError,
  dryRunRefused,
  FailureError,
  InterruptedError,
  NotFoundError,
  OperationFailedError,
  PrerequisiteError,
  UserError,
  ValidationError,
} from '../core/errors.js';
import { etcdClientEnv } from '../core/config.js';
import { describeOp, isOpId, isTerminal, opTarget, parseAge, shortValue, type OpRecord } from '../core/ops.js';
import { OpRunner, planOperation, waitForOp } from '../ops/runner.js';
import { opEvent } from '../core/events.js';
import { recordEvent } from '../state/events.js';
import { HostRepo } from '../state/hosts.js';
import { collectGarbage } from '../state/gc.js';
import { OpRepo } from '../state/ops.js';
import type { Store } from '../state/store.js';
import { thisHost } from '../daemon/pidfile.js';
import { timeCell, type Cell, type CommandResult, type Context, type View } from './types.js';
import { withStore } from './with-store.js';

const BIN = fileURLToPath(new URL('../../bin/knarr', import.meta.url));

/** The operation's end as a result: done is success, failed and cancelled are errors naming the operation. */
function opResult(op: OpRecord): CommandResult {
  // The runner's last word says whether it was undone or, for a forward-only kind, left as it got.
  const end = op.progress?.message?.replace(/^(failed|cancelled), /, '') ?? 'undone';
  if (op.status === 'failed')
    throw new OperationFailedError(`${op.id} (${op.kind}) failed (${end}): ${op.error}`, { hint: `see it with: knarr op show ${op.id}`, detail: { op } });
  if (op.status === 'cancelled') throw new OperationFailedError(`${op.id} (${op.kind}) was cancelled (${end})`, { detail: { op } });
  return { data: op, view: { kind: 'lines', lines: [describeOp(op)] } };
}

/** Runs this host's pending operations in this process, under a lease of its own kept fresh while it works. */
export async function runInline(ctx: Context, store: Store): Promise<void> {
  const lease = await store.grantLease(10);
  const keep = setInterval(() => void store.keepAlive(lease).catch(() => undefined), 3000);
  try {
    await new OpRunner(
      ctx,
      store,
      await thisHost(ctx.config.stateDir),
      'cli',
      () => lease,
      (line) => ctx.events.step(line),
      false,
    ).drain();
  } finally {
    clearInterval(keep);
    await store.revokeLease(lease);
  }
}

/**
 * Submits an operation for host and sees it through: its agent runs it (the CLI waits and shows
 * progress, or returns the id at once with --detach); with no agent on this host, the CLI runs it
 * inline (with --detach, a background knarr does).
 */
export async function runOperation(
  ctx: Context,
  store: Store,
  kind: string,
  args: Record<string, unknown>,
  host: string,
  opts: { detach: boolean },
): Promise<CommandResult> {
  const repo = new OpRepo(store, ctx.config.fleet);
  // One operation at a time on a cluster: two would write its record over each other (a scale could bring back a deleted cluster).
  // One at a time on an environment too: its members and hooks are ordered, and the record is read once per step.
  const sameObject = (o: OpRecord) =>
    typeof args.env === 'string' && kind.startsWith('env.')
      ? o.kind.startsWith('env.') && o.args.env === args.env
      : typeof args.user === 'string' && typeof args.name === 'string' && o.args.user === args.user && o.args.name === args.name;
  if ((typeof args.user === 'string' && typeof args.name === 'string') || (typeof args.env === 'string' && kind.startsWith('env.'))) {
    const busy = (await repo.pendingTopLevel()).find(sameObject);
    if (busy) {
      // With no agent on its host nothing runs it by itself: a wait would never end.
      const agentUp = (await new HostRepo(store, ctx.config.fleet).get(busy.host))?.up === true;
      const onward = agentUp
        ? `wait for it: knarr op wait ${busy.id}`
        : busy.host === (await thisHost(ctx.config.stateDir))
          ? `no agent runs it: resume it with knarr op run ${busy.id}`
          : `it waits for the agent of ${busy.host}`;
      const what = typeof args.env === 'string' ? `environment ${args.env}` : `cluster ${args.name} of user ${args.user}`;
      throw new ConflictError(`${what} has ${busy.id} (${busy.kind}) ${busy.status}`, {
        hint: `${onward}; or take it back: knarr op cancel ${busy.id}`,
      });
    }
  }
  const detach = opts.detach;
  const hosts = new HostRepo(store, ctx.config.fleet);
  const here = await thisHost(ctx.config.stateDir);
  const agentUp = (await hosts.get(host))?.up === true;
  // Without --detach the command ends when the operation does: an operation nobody would run now is not queued at all.
  if (!detach && !agentUp && host !== here) {
    throw new PrerequisiteError(`host ${host} has no agent up to run ${kind}; nothing was queued`, {
      hint: `start its agent (knarr daemon on ${host}), or add --detach to queue it for when the agent is back`,
    });
  }
  if (ctx.runner.dryRun) {
    // Planned, not queued: nothing is written, no runner is started.
    const argsText = Object.entries(args)
      .filter(([k, v]) => k !== 'authorizedKeys' && v !== '' && v !== 0)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
    ctx.runner.note(
      `queue operation ${kind} (${argsText.join(' ')}) for ` +
        `host ${host}; ${agentUp ? 'its agent runs it' : detach ? 'a background knarr op run runs it' : 'this command runs it'}`,
    );
    // Its steps as this host stands now; another host's, or a kind that decides as it goes, stays one line.
    if (host === here && !(await planOperation(ctx, store, kind, args, host)))
      ctx.runner.note(`${kind}'s commands depend on what it allocates as it runs (ids, addresses, volumes)`);
    return { data: { planned: true, kind, args, host } };
  }
  const op = await repo.submit(kind, args, host);
  if (detach) {
    if (!agentUp && host !== here) ctx.events.warn(`host ${host} has no agent up: ${op.id} waits for it`);
    else if (!agentUp) {
      await ctx.runner.spawnDetached([process.execPath, BIN, 'op', 'run', op.id], {
        logFile: `${ctx.config.stateDir}/log/ops.log`,
        env: {
          KNARR_STATE_DIR: ctx.config.stateDir,
          KNARR_FLEET: ctx.config.fleet,
          ...(ctx.config.etcd.length > 0 ? { KNARR_ETCD: ctx.config.etcd.join(',') } : {}),
          ...etcdClientEnv(ctx.config.etcdClient),
          ...(ctx.config.configFile ? { KNARR_CONFIG: ctx.config.configFile } : {}),
        },
      });
    }
    return { data: op, view: { kind: 'lines', lines: [op.id] } };
  }
  let shown = '';
  const onChange = (o: OpRecord) => {
    // Each wait below starts afresh: the same progress is not shown again.
    if (describeOp(o) !== shown) ctx.events.step((shown = describeOp(o)));
  };
  for (;;) {
    if (!(await hosts.get(host))?.up && !(await repo.claimed(op.id))) {
      // No agent holds it (none was up, or it went away since): this host's operation runs here; another host's stays queued, which is no success.
      if (host !== here)
        throw new FailureError(`the agent of ${host} went away before ${op.id} (${kind}) ended; it runs when that agent is back`, {
          hint: `follow it with: knarr op wait ${op.id}; or take it back: knarr op cancel ${op.id}`,
        });
      await runInline(ctx, store);
      const ran = await repo.get(op.id);
      // Run here to its end: nothing to wait for.
      if (ran && isTerminal(ran.status)) return opResult(ran);
      if (ctx.signal.aborted)
        throw new InterruptedError(`interrupted: ${op.id} stays where it got`, {
          hint: `resume it with: knarr op run ${op.id}; or take it back with: knarr op cancel ${op.id}`,
        });
    }
    const end = await waitForOp(repo, op.id, onChange, ctx.signal, AGENT_CHECK_MS);
    if (isTerminal(end.status)) {
      ctx.events.done();
      return opResult(end);
    }
    if (ctx.signal.aborted) throw new InterruptedError(`interrupted: ${op.id} goes on`, { hint: `follow it with: knarr op wait ${op.id}` });
  }
}

/** How often a command waiting on an agent checks that the agent is still there to run its operation. */
const AGENT_CHECK_MS = 5000;

async function requireOp(repo: OpRepo, id: string): Promise<OpRecord> {
  if (!isOpId(id)) throw new ValidationError('OP', `${JSON.stringify(id)} is not an operation id (op-000042)`);
  const op = await repo.get(id);
  if (!op) throw new NotFoundError(`no operation ${id}`, { hint: 'list them with: knarr op list' });
  return op;
}

const withOps = <T>(ctx: Context, fn: (repo: OpRepo, store: Store) => Promise<T>) => withStore(ctx, (store) => fn(new OpRepo(store, ctx.config.fleet), store));

/** `knarr op list [--active]`. */
export const opList = async (opts: { active: boolean }, ctx: Context): Promise<CommandResult> =>
  withOps(ctx, async (repo) => {
    const ops = (await repo.list()).filter((o) => !opts.active || !isTerminal(o.status));
    return {
      data: ops,
      view: {
        kind: 'table',
        columns: ['OP', 'KIND', 'TARGET', 'HOST', 'STATUS', 'PROGRESS', 'CREATED', 'PARENT', 'FINISHED'],
        wide: ['PARENT', 'FINISHED'],
        rows: ops.map((o) => [
          o.id,
          o.kind,
          opTarget(o),
          o.host,
          o.status,
          o.progress.total > 0 ? `${o.progress.done}/${o.progress.total} ${o.progress.message}` : o.progress.message,
          timeCell(o.createdAt),
          o.parent ?? '-',
          timeCell(o.finishedAt),
        ]),
      },
    };
  });

/** `knarr op show OP`: the record as fields for a person; --json gives it whole. */
export const opShow = async (id: string, ctx: Context): Promise<CommandResult> =>
  withOps(ctx, async (repo) => {
    const op = await requireOp(repo, id);
    return { data: op, view: opView(op) };
  });

/** What `op show` prints: one field a line; args, state and result as short k=v lines (ssh keys counted, not printed). */
export function opView(op: OpRecord): View {
  const { authorizedKeys, ...args } = op.args;
  const progress = op.progress.total > 0 ? `${op.progress.done}/${op.progress.total} ${op.progress.message}` : op.progress.message;
  const fields: [string, Cell][] = [
    ['op', op.id],
    ['kind', op.kind],
    ['target', opTarget(op)],
    ['host', op.host],
    ['status', `${op.status}${op.cancelRequested && !isTerminal(op.status) ? ' (cancel requested)' : ''}`],
    ['progress', progress || '-'],
  ];
  if (op.error) fields.push(['error', op.error]);
  const keys = typeof authorizedKeys === 'string' ? authorizedKeys.split('\n').filter(Boolean).length : 0;
  fields.push(['args', shortValue(keys > 0 ? { ...args, authorizedKeys: `${keys} key(s)` } : args)]);
  if (Object.keys(op.state).length > 0) fields.push(['state', shortValue(op.state)]);
  if (op.result !== null && op.result !== undefined) fields.push(['result', shortValue(op.result)]);
  if (op.parent) fields.push(['parent', op.parent]);
  if (op.children.length > 0) fields.push(['children', op.children.join(', ')]);
  fields.push(
    ['runner', op.runner ? `${op.runner} (attempt ${op.attempts})` : '-'],
    ['created', timeCell(op.createdAt)],
    ['started', timeCell(op.startedAt)],
    ['finished', timeCell(op.finishedAt)],
  );
  return { kind: 'fields', fields };
}

/** `knarr op wait OP [--timeout S]`: until it ends; exits 0 when done, 1 when it failed or was cancelled. */
export const opWait = async (id: string, opts: { timeout?: string }, ctx: Context): Promise<CommandResult> =>
  withOps(ctx, async (repo) => {
    const op = await requireOp(repo, id);
    const timeout = opts.timeout;
    const seconds = timeout === undefined ? 0 : Number(timeout);
    if (!(seconds >= 0)) throw new ValidationError('--timeout', 'must be a number of seconds');
    const end = await waitForOp(repo, op.id, (o) => ctx.events.step(describeOp(o)), ctx.signal, seconds * 1000);
    ctx.events.done();
    if (!isTerminal(end.status)) throw new FailureError(`${op.id} has not ended (${end.status})`, { hint: 'wait longer, or see it with: knarr op show' });
    return opResult(end);
  });

/** `knarr op cancel OP`: a queued operation ends at once; a running one stops at its next step and is undone. */
export const opCancel = async (id: string, ctx: Context): Promise<CommandResult> =>
  withOps(ctx, async (repo, store) => {
    const op = await requireOp(repo, id);
    if (isTerminal(op.status)) throw new ConflictError(`${op.id} has already ended (${op.status})`);
    if (ctx.runner.dryRun) {
      ctx.runner.note(
        op.status === 'queued'
          ? `mark ${op.id} (${op.kind}) cancelled; it never runs`
          : `ask ${op.id} (${op.kind}) to cancel; it stops at its next step and is undone`,
      );
      return { data: { ...op, planned: true } };
    }
    const next = await repo.update(op.id, (o) =>
      o.status === 'queued'
        ? {
            ...o,
            status: 'cancelled',
            cancelRequested: true,
            finishedAt: new Date().toISOString(),
            progress: { ...o.progress, message: 'cancelled before it ran' },
          }
        : { ...o, cancelRequested: true },
    );
    // A running operation whose runner died is undone by the next runner: here, when that is this CLI.
    if (
      next?.status === 'running' &&
      op.host === (await thisHost(ctx.config.stateDir)) &&
      !(await repo.claimed(op.id)) &&
      !(await new HostRepo(store, ctx.config.fleet).get(op.host))?.up
    )
      await runInline(ctx, store);
    const now = (await repo.get(op.id)) ?? op;
    if (op.status === 'queued' && now.status === 'cancelled')
      await recordEvent(store, ctx.config.fleet, opEvent(now, 'cancelled', `${now.kind}, before it ran`));
    return {
      data: now,
      view: { kind: 'lines', lines: [isTerminal(now.status) ? describeOp(now) : `${op.id}: cancel requested; it stops at its next step and is undone`] },
    };
  });

/** `knarr op run OP`: runs this host's pending operations here (what --detach starts in the background). */
export const opRun = async (id: string, ctx: Context): Promise<CommandResult> =>
  withOps(ctx, async (repo, store) => {
    const op = await requireOp(repo, id);
    if (ctx.runner.dryRun) throw dryRunRefused('knarr op run', `it runs operations already queued; see what ${op.id} is with: knarr op show ${op.id}`);
    if (op.host !== (await thisHost(ctx.config.stateDir))) throw new UserError(`${op.id} belongs to host ${op.host}; run it there`);
    await runInline(ctx, store);
    return opResult((await repo.get(op.id)) ?? op);
  });

/** `knarr op gc [--older-than AGE]`: removes operations that ended before then and job history older than it; --dry-run only lists them. */
export const opGc = async (opts: { olderThan?: string }, ctx: Context): Promise<CommandResult> => {
  const text = opts.olderThan ?? '7d';
  const age = parseAge('--older-than', text);
  const planned = ctx.config.dryRun;
  return withStore(ctx, async (store) => {
    const cutoff = Date.now() - age;
    const { ops, history } = await collectGarbage(store, ctx.config.fleet, cutoff, !planned);
    const verb = planned ? 'would remove' : 'removed';
    const ids = ops.map((o) => o.id);
    // What --dry-run prints: each record that would go.
    for (const o of ops) ctx.runner.note(`remove ${o.id} (${o.kind}, ${o.status} ${o.finishedAt ?? o.createdAt})`);
    for (const e of history) ctx.runner.note(`remove job ${e.job}'s history line ${e.at} ${e.event}`);
    return {
      data: {
        olderThan: text,
        before: new Date(cutoff).toISOString(),
        dryRun: planned,
        operations: ids,
        history: history.map((e) => ({ job: e.job, at: e.at, event: e.event })),
      },
      view: {
        kind: 'lines',
        lines: [
          `${verb} ${ids.length} ended operation(s)${ids.length ? ` (${ids.join(', ')})` : ''} and ${history.length} job history line(s) older than ${text}`,
        ],
      },
    };
  });
};
