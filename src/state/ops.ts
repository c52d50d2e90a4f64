import { FailureError } from '../core/errors.js';
import { isTerminal, newOp, type OpRecord } from '../core/ops.js';
import { opEvent } from '../core/events.js';
import { recordEvent } from './events.js';
import { fleetKeys } from './keys.js';
import type { Guard, Store, WatchEvent } from './store.js';

/** The runner's lease lapsed (or it re-registered) and another runner may have the operation now: stop without undoing. */
export class ClaimLostError extends FailureError {
  constructor(id: string) {
    super(`lost the claim on ${id}: another runner resumes it`);
  }
}

/** Operations in the fleet store: records under ops/, and each running one's claim under its runner's lease. */
export class OpRepo {
  private readonly keys;
  constructor(
    private readonly store: Store,
    private readonly fleet: string,
  ) {
    this.keys = fleetKeys(fleet);
  }

  /** Writes a queued operation (its id from one atomic counter) before anything runs. */
  async submit(kind: string, args: Record<string, unknown>, host: string, parent: string | null = null): Promise<OpRecord> {
    return this.submitAs(await this.reserve(), kind, args, host, parent);
  }

  /** An operation number no other operation gets, for an operation written later (a parent records its child's id first). */
  reserve(): Promise<number> {
    return this.store.increment(this.keys.counter('op'));
  }

  /** Writes the queued operation numbered n unless it is there already; returns what is stored. */
  async submitAs(n: number, kind: string, args: Record<string, unknown>, host: string, parent: string | null = null): Promise<OpRecord> {
    const op = newOp(n, kind, args, host, parent);
    const written = await this.store.transact(
      [{ key: this.keys.op(op.id), absent: true }],
      [
        { key: this.keys.op(op.id), value: JSON.stringify(op) },
        { key: this.keys.opPending(host, op.id), value: parent ?? '' },
      ],
      [],
    );
    if (written) {
      await recordEvent(this.store, this.fleet, opEvent(op, 'queued', parent ? `${kind}, part of ${parent}` : kind));
      return op;
    }
    return (await this.get(op.id))!;
  }

  async get(id: string): Promise<OpRecord | null> {
    const v = await this.store.get(this.keys.op(id));
    return v === null ? null : (JSON.parse(v) as OpRecord);
  }

  async list(): Promise<OpRecord[]> {
    return (await this.store.list(this.keys.ops)).map((kv) => JSON.parse(kv.value) as OpRecord).sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The ids of a host's operations not yet ended, oldest first, with each one's parent (null for a top-level one): one range read. */
  async pending(host: string): Promise<{ id: string; parent: string | null }[]> {
    const prefix = this.keys.opsPending(host);
    return (await this.store.list(prefix))
      .map((kv) => ({ id: kv.key.slice(prefix.length), parent: kv.value || null }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The fleet's top-level operations not yet ended, on every host: the pending index and those records, never the ended ones. */
  async pendingTopLevel(): Promise<OpRecord[]> {
    const entries = (await this.store.list(this.keys.opsPendingAll)).filter((kv) => kv.value === '');
    const ops = await Promise.all(entries.map((kv) => this.get(kv.key.slice(kv.key.lastIndexOf('/') + 1))));
    return ops.filter((o): o is OpRecord => o !== null && !isTerminal(o.status));
  }

  /** Drops a pending entry whose operation has ended or is gone (one an older writer ended); true when it did. */
  async forgetIfEnded(host: string, id: string): Promise<boolean> {
    const op = await this.get(id);
    if (op !== null && !isTerminal(op.status)) return false;
    return this.store.delete(this.keys.opPending(host, id));
  }

  /** Watches a host's pending index: an operation queued for it, or one of its ending. */
  watchPending(host: string, onChange: (events: WatchEvent[]) => void, signal: AbortSignal): Promise<void> {
    return this.store.watch(this.keys.opsPending(host), onChange, signal);
  }

  /** Who holds the claim now (runner:pid), or null. */
  claimant(id: string): Promise<string | null> {
    return this.store.get(this.keys.opClaim(id));
  }

  /** True while the runner that claimed it still holds its lease. */
  async claimed(id: string): Promise<boolean> {
    return (await this.store.get(this.keys.opClaim(id))) !== null;
  }

  /**
   * Takes the operation for a runner, in one transaction with its claim (under the runner's lease):
   * a queued one, or a running one whose runner's claim lapsed. Null when another runner has it.
   */
  async claim(id: string, runner: string, lease: string): Promise<OpRecord | null> {
    const cur = await this.store.getVersioned(this.keys.op(id));
    if (!cur) return null;
    const op = JSON.parse(cur.value) as OpRecord;
    if (isTerminal(op.status) || (op.status === 'running' && (await this.claimed(id)))) return null;
    // A progress that still says queued says started now: `op wait` would read "running queued".
    const progress = op.progress.message === 'queued' ? { ...op.progress, message: op.attempts > 0 ? 'resumed' : 'started' } : op.progress;
    const next: OpRecord = { ...op, status: 'running', progress, runner, attempts: op.attempts + 1, startedAt: op.startedAt ?? new Date().toISOString() };
    const ok = await this.store.putAllIfUnchanged(this.keys.op(id), cur.modRevision, [
      { key: this.keys.op(id), value: JSON.stringify(next) },
      { key: this.keys.opClaim(id), value: runner, lease },
    ]);
    return ok ? next : null;
  }

  /**
   * Changes the record (re-reading it when someone else changed it meanwhile); null when it is gone.
   * With owner (a runner), only while that runner still holds the claim: else ClaimLostError.
   */
  async update(id: string, change: (op: OpRecord) => OpRecord, owner?: string): Promise<OpRecord | null> {
    for (;;) {
      const cur = await this.store.getVersioned(this.keys.op(id));
      if (!cur) return null;
      const next = change(JSON.parse(cur.value) as OpRecord);
      const guards: Guard[] = [{ key: this.keys.op(id), modRevision: cur.modRevision }, ...(owner ? [{ key: this.keys.opClaim(id), value: owner }] : [])];
      // An operation that ends leaves its host's pending index in the same transaction.
      const ended = isTerminal(next.status) ? [this.keys.opPending(next.host, id)] : [];
      if (await this.store.transact(guards, [{ key: this.keys.op(id), value: JSON.stringify(next) }], ended)) return next;
      if (owner && (await this.store.get(this.keys.opClaim(id))) !== owner) throw new ClaimLostError(id);
    }
  }

  /** Gives the claim back, if it is still this runner's (a newer runner's claim stays). */
  async release(id: string, owner: string): Promise<void> {
    await this.store.transact([{ key: this.keys.opClaim(id), value: owner }], [], [this.keys.opClaim(id)]);
  }

  watch(onChange: (events: WatchEvent[]) => void, signal: AbortSignal): Promise<void> {
    return this.store.watch(this.keys.ops, onChange, signal);
  }
}
