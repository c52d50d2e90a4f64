import { DryRunWriteError, FailureError, InterruptedError, NotFoundError, OperationFailedError, StoreUnavailableError } from '../core/errors.js';
import { tryLock } from '../host/lock.js';
import { describeOp, isTerminal, opId, type OpRecord } from '../core/ops.js';
import { clusterEventOf, opEvent, type NewEvent } from '../core/events.js';
import { recordEvent } from '../state/events.js';
import { Wakeup } from '../core/streams.js';
import type { Context, OpRun } from './context.js';
import { HostRepo } from '../state/hosts.js';
import { ClaimLostError, OpRepo } from '../state/ops.js';
import type { Store } from '../state/store.js';

export type { OpHandler, OpHandlers, OpRun } from './context.js';

/** Thrown at a checkpoint once an operator asked to cancel: the runner undoes the operation. */
export class Cancelled extends OperationFailedError {
  constructor() {
    super('cancelled by an operator');
  }
}

/** An undo recorded as started by an earlier runner: this one goes on with it. */
class UndoPending extends OperationFailedError {
  constructor(readonly error: string | null) {
    super(error ?? 'cancelled');
  }
}

const PROGRESS_EVERY_MS = 250;
/** A remote child is watched; this re-read is the safety net for a watch event lost in a reconnect. */
const REMOTE_CHILD_POLL_MS = 2000;

/**
 * Runs a host's operations: claims each (under the runner's lease), runs its handler, and records
 * the end. Used by the agent, and by the CLI for its own host when no agent serves it.
 */
export class OpRunner {
  readonly repo: OpRepo;
  private draining: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(
    private readonly ctx: Context,
    private readonly store: Store,
    private readonly host: string,
    private readonly name: string,
    private readonly lease: () => string,
    private readonly log: (line: string) => void,
    /** false when the lease is revoked right after (the CLI inline): its claims go with it, one write less each. */
    private readonly releaseClaims = true,
  ) {
    this.repo = new OpRepo(store, ctx.config.fleet);
  }

  /** Runs every operation of this host that is queued, or running with no live runner, oldest first. */
  drain(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.again = true;
    this.draining ??= (async () => {
      try {
        while (this.again && !this.closed) {
          this.again = false;
          // Only this host's pending index: the fleet's other operations, and ended ones, are never read.
          for (const op of await this.repo.pending(this.host)) {
            if (this.closed) break;
            // A child of an operation of this host is run by its parent; one whose parent is elsewhere is this host's part of it.
            if (op.parent !== null && (await this.parentHost(op.parent)) === this.host) continue;
            if ((await this.execute(op.id)) === null) await this.repo.forgetIfEnded(this.host, op.id);
          }
        }
      } finally {
        this.draining = null;
      }
    })();
    return this.draining;
  }

  /** The host of an operation's parent; this host's own when the parent is gone (nothing then to run it for). */
  private async parentHost(parent: string): Promise<string> {
    return (await this.repo.get(parent))?.host ?? this.host;
  }

  /** An operation is being claimed or run: its claim is under the lease it was made with. */
  get busy(): boolean {
    return this.draining !== null;
  }

  /** Calls onChange when this host's pending operations change (one queued, one ended). */
  watchPending(onChange: () => void, signal: AbortSignal): Promise<void> {
    return this.repo.watchPending(this.host, onChange, signal);
  }

  /** Claims nothing more; resolves once the operation running now has ended (the agent's SIGTERM). */
  async close(): Promise<void> {
    this.closed = true;
    await this.draining?.catch(() => undefined);
  }

  /** Claims and runs one operation; null when another runner has it or it has ended. */
  async execute(id: string): Promise<OpRecord | null> {
    // Under --dry-run an operation is planned (planOperation), never run: not even its lock file is made.
    if (this.ctx.runner.dryRun) throw new DryRunWriteError(`run operation ${id}`);
    // Every runner of this host's operations is on this host: a lock here keeps two from running one at once, even after a lease lapsed unnoticed.
    const unlock = await tryLock(`${this.ctx.config.stateDir}/ops/${id}.lock`);
    if (!unlock) return null;
    try {
      return await this.executeLocked(id);
    } finally {
      await unlock();
    }
  }

  /**
   * Waits for a child that another host's runner carries out; a cancel asked of the parent is asked of the child
   * too (not while the parent is undoing), and a parent whose claim went elsewhere stops waiting (the new runner waits instead).
   */
  private async awaitRemote(childId: string, parentId: string, owner: string, passCancel: boolean): Promise<OpRecord> {
    const wakeup = new Wakeup();
    const ac = new AbortController();
    try {
      await this.repo.watch((events) => {
        if (events.some((e) => e.key === null || e.key.endsWith(`/${childId}`) || e.key.endsWith(`/${parentId}`))) wakeup.wake();
      }, ac.signal);
      for (;;) {
        const child = await this.repo.get(childId);
        if (!child) throw new NotFoundError(`child operation ${childId} is gone`);
        // A child cancelled because the parent was: the parent is cancelled too, not failed.
        if (passCancel && child.status === 'cancelled' && (await this.repo.get(parentId))?.cancelRequested) throw new Cancelled();
        if (isTerminal(child.status)) return child;
        const cancelling = passCancel && (await this.repo.get(parentId))?.cancelRequested === true;
        if (cancelling && !child.cancelRequested) await this.repo.update(childId, (o) => (isTerminal(o.status) ? o : { ...o, cancelRequested: true }));
        // Its host's agent is down: the parent is undone now, and that agent undoes the child when it is back (or its collector takes what is left).
        if (cancelling && !(await this.hostUp(child.host)) && !(await this.repo.claimed(childId))) throw new Cancelled();
        if ((await this.repo.claimant(parentId)) !== owner) throw new ClaimLostError(parentId);
        if (this.closed) throw new InterruptedError();
        await wakeup.sleep(REMOTE_CHILD_POLL_MS);
      }
    } finally {
      ac.abort();
    }
  }

  /**
   * A parent that failed or was cancelled took back what its children made (its undo): a child of this host it left
   * unfinished (its run cut short with the parent's) ends with it, so nothing is left pending for no one.
   */
  private async endLocalChildren(parent: OpRecord): Promise<void> {
    for (const id of parent.children) {
      const child = await this.repo.get(id);
      if (!child || child.host !== parent.host || isTerminal(child.status) || (await this.repo.claimed(id))) continue;
      const ended = await this.repo.update(id, (o) =>
        isTerminal(o.status)
          ? o
          : { ...o, status: 'cancelled', finishedAt: new Date().toISOString(), progress: { ...o.progress, message: `ended with its parent ${parent.id}` } },
      );
      // Its own unfinished children (a member's cluster.create under an env.member) end with it: no one else would run them.
      if (ended) await this.endLocalChildren(ended);
    }
  }

  /** A host whose agent holds its lease. */
  private async hostUp(host: string): Promise<boolean> {
    return (await new HostRepo(this.store, this.ctx.config.fleet).get(host))?.up === true;
  }

  private async executeLocked(id: string): Promise<OpRecord | null> {
    const owner = `${this.name}:${process.pid}`;
    // While undoing, the children it makes (the undo of other hosts' parts) are not cancelled with it: they are the undo.
    let undoing = false;
    const claimed = await this.repo.claim(id, owner, this.lease());
    if (!claimed) return null;
    const load = this.ctx.opHandlers[claimed.kind];
    const handler = load ? await load() : undefined;
    let op = claimed;
    let pending = op.progress;
    const note = (e: NewEvent) => recordEvent(this.store, this.ctx.config.fleet, e);
    await note(opEvent(op, 'running', `${op.kind} ${op.attempts > 1 ? `resumed (attempt ${op.attempts})` : 'started'} by ${owner}`));
    // The first write waits too: a short operation writes its progress once, when it ends.
    let lastWrite = Date.now();
    const update = async (change: (o: OpRecord) => OpRecord) => {
      op = (await this.repo.update(id, change, owner)) ?? op;
      return op;
    };
    const run: OpRun = {
      get op() {
        return op;
      },
      ctx: this.ctx,
      store: this.store,
      save: async (patch) => void (await update((o) => ({ ...o, state: { ...o.state, ...patch } }))),
      progress: async (done, total, message) => {
        if (message !== pending.message) await note(opEvent(op, 'step', `${total > 0 ? `${done}/${total} ` : ''}${message}`));
        pending = { done, total, message };
        this.log(describeOp({ ...op, progress: pending }));
        // Each write is an fsync in etcd: progress is written at most every PROGRESS_EVERY_MS, and at the end.
        if (Date.now() - lastWrite < PROGRESS_EVERY_MS || done >= total) return;
        lastWrite = Date.now();
        const p = pending;
        await update((o) => ({ ...o, progress: p }));
      },
      child: async (key, kind, args, host = op.host) => {
        // The child's number is recorded in the parent before the child is written: a crash between leaves no orphan.
        let n = ((op.state.children ?? {}) as Record<string, number>)[key];
        if (n === undefined) {
          const reserved = await this.repo.reserve();
          n = reserved;
          await update((o) => ({
            ...o,
            children: [...o.children, opId(reserved)],
            state: { ...o.state, children: { ...((o.state.children ?? {}) as Record<string, number>), [key]: reserved } },
          }));
        }
        const childId = (await this.repo.submitAs(n, kind, args, host, id)).id;
        if (host !== op.host) return this.awaitRemote(childId, id, owner, !undoing);
        const ran = await this.execute(childId);
        return ran ?? (await this.repo.get(childId))!;
      },
      checkpoint: async () => {
        if ((await this.repo.get(id))?.cancelRequested) throw new Cancelled();
        if ((await this.repo.claimant(id)) !== owner) throw new ClaimLostError(id);
      },
    };
    let result: { value: unknown } | null = null;
    const finish = async (status: OpRecord['status'], fields: Partial<OpRecord>) => {
      try {
        const ended = await update((o) => ({ ...o, ...fields, status, finishedAt: new Date().toISOString() }));
        if (status !== 'done') await this.endLocalChildren(ended);
        await note(opEvent(ended, status, `${ended.kind}${ended.error ? `: ${ended.error}` : ''}`));
        const cluster = clusterEventOf(ended);
        if (cluster) await note(cluster);
        return ended;
      } catch (e) {
        // Left running and claimed: the next runner finishes recording it.
        this.log(`${id}: ${status}, but not recorded yet (${(e as Error).message}); the next runner records it`);
        return op;
      }
    };
    // An early return leaves the operation claimed: this runner stopped part-way, its lease goes with it, and the next runner resumes it.
    try {
      if (!handler)
        throw new FailureError(`unknown operation kind ${claimed.kind}`, {
          hint: 'it was submitted by another version of knarr: run the same version on every host',
        });
      if (claimed.attempts > 1) this.log(`${id}: resuming after an interrupted run (attempt ${claimed.attempts})`);
      // An undo was under way when the last runner stopped: it goes on, nothing is run again.
      const undoing = claimed.state.undoing as { error: string | null } | undefined;
      if (undoing) throw new UndoPending(undoing.error);
      // A cancel asked while no runner held it: undo instead of resuming.
      if (claimed.cancelRequested) throw new Cancelled();
      result = { value: await handler.run(run) };
    } catch (e) {
      if (e instanceof ClaimLostError) {
        // Another runner has it now (or will): it resumes; undoing here would fight it.
        this.log(`${id}: ${e.message}`);
        return null;
      }
      if (e instanceof InterruptedError || e instanceof StoreUnavailableError) {
        // Shutting down, or the store is away: the next runner resumes it.
        this.log(`${id}: ${e instanceof InterruptedError ? 'interrupted' : e.message}; the next runner resumes it`);
        return null;
      }
      const pendingUndo = e instanceof UndoPending ? e : null;
      const cancelled = pendingUndo ? pendingUndo.error === null : e instanceof Cancelled;
      let error = pendingUndo ? pendingUndo.error : cancelled ? null : (e as Error).message;
      // The decision is recorded before undo starts: a runner that resumes it undoes, it does not run again.
      if (!pendingUndo && handler?.undoes !== false) await run.save({ undoing: { error } }).catch(() => undefined);
      try {
        undoing = true;
        if (handler) await handler.undo(run);
      } catch (u) {
        if (u instanceof InterruptedError || u instanceof StoreUnavailableError || u instanceof ClaimLostError) {
          this.log(`${id}: undo cut short (${(u as Error).message}); the next runner goes on with it`);
          return null;
        }
        error = `${error ?? 'cancelled'}; undoing it failed too: ${(u as Error).message}`;
      }
      await finish(cancelled && error === null ? 'cancelled' : 'failed', {
        error,
        progress: { ...pending, message: `${cancelled ? 'cancelled' : 'failed'}, ${handler?.undoes === false ? 'what it did stays' : 'undone'}` },
      });
    }
    if (result) {
      // Outside the try: a store error here must not undo a finished operation (finish logs it; the next runner records it).
      await finish('done', { result: result.value, error: null, progress: { done: pending.total, total: pending.total, message: 'done' } });
    }
    // finish never throws: the claim is given back on every way that reaches here.
    if (this.releaseClaims) await this.repo.release(id, owner).catch(() => undefined);
    this.log(describeOp(op));
    return op;
  }
}

/**
 * Under --dry-run: what an operation of kind would do on this host, recorded on the context's runner
 * (nothing is queued); false for a kind that cannot tell before it runs.
 */
export async function planOperation(ctx: Context, store: Store, kind: string, args: Record<string, unknown>, host: string): Promise<boolean> {
  const handler = await ctx.opHandlers[kind]?.();
  if (!handler?.plan) return false;
  const now = new Date().toISOString();
  const op: OpRecord = {
    id: 'op-planned',
    kind,
    args,
    host,
    parent: null,
    children: [],
    status: 'queued',
    progress: { done: 0, total: 0, message: '' },
    state: {},
    attempts: 0,
    cancelRequested: false,
    error: null,
    result: null,
    runner: null,
    createdAt: now,
    startedAt: null,
    finishedAt: null,
  };
  const refused = () => Promise.reject(new Error('a planned operation records nothing'));
  await handler.plan({ op, ctx, store, save: refused, progress: async () => undefined, checkpoint: async () => undefined, child: refused });
  return true;
}

/** Waits until the operation ends, calling onChange as it moves; watches etcd, with a slow re-read as a safety net. */
export async function waitForOp(repo: OpRepo, id: string, onChange: (op: OpRecord) => void, signal: AbortSignal, timeoutMs = 0): Promise<OpRecord> {
  const ac = new AbortController();
  const stop = () => ac.abort();
  signal.addEventListener('abort', stop, { once: true });
  const wakeup = new Wakeup();
  try {
    await repo.watch(() => wakeup.wake(), ac.signal);
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
    let last = '';
    for (;;) {
      const op = await repo.get(id);
      if (!op) throw new NotFoundError(`operation ${id} is gone`, { hint: 'it was removed meanwhile (knarr op gc); see knarr op list' });
      const seen = JSON.stringify([op.status, op.progress]);
      if (seen !== last) {
        last = seen;
        onChange(op);
      }
      if (isTerminal(op.status) || signal.aborted || Date.now() > deadline) return op;
      await wakeup.sleep(2000);
    }
  } finally {
    signal.removeEventListener('abort', stop);
    ac.abort();
  }
}
