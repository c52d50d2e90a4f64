import { isTerminal, newOp, type OpRecord } from '../core/ops.js';
import { fleetKeys } from './keys.js';
import type { Store, WatchEvent } from './store.js';

/** Operations in the fleet store: records under ops/, and each running one's claim under its runner's lease. */
export class OpRepo {
  private readonly keys;
  constructor(
    private readonly store: Store,
    fleet: string,
  ) {
    this.keys = fleetKeys(fleet);
  }

  /** Writes a queued operation (its id from one atomic counter) before anything runs. */
  async submit(kind: string, args: Record<string, unknown>, host: string, parent: string | null = null): Promise<OpRecord> {
    const op = newOp(await this.store.increment(this.keys.counter('op')), kind, args, host, parent);
    await this.store.put(this.keys.op(op.id), JSON.stringify(op));
    return op;
  }

  async get(id: string): Promise<OpRecord | null> {
    const v = await this.store.get(this.keys.op(id));
    return v === null ? null : (JSON.parse(v) as OpRecord);
  }

  async list(): Promise<OpRecord[]> {
    return (await this.store.list(this.keys.ops)).map((kv) => JSON.parse(kv.value) as OpRecord).sort((a, b) => a.id.localeCompare(b.id));
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
    const next: OpRecord = { ...op, status: 'running', runner, attempts: op.attempts + 1, startedAt: op.startedAt ?? new Date().toISOString() };
    const ok = await this.store.putAllIfUnchanged(this.keys.op(id), cur.modRevision, [
      { key: this.keys.op(id), value: JSON.stringify(next) },
      { key: this.keys.opClaim(id), value: runner, lease },
    ]);
    return ok ? next : null;
  }

  /** Changes the record (re-reading it when someone else changed it meanwhile); null when it is gone. */
  async update(id: string, change: (op: OpRecord) => OpRecord): Promise<OpRecord | null> {
    for (;;) {
      const cur = await this.store.getVersioned(this.keys.op(id));
      if (!cur) return null;
      const next = change(JSON.parse(cur.value) as OpRecord);
      if (await this.store.putIfUnchanged(this.keys.op(id), JSON.stringify(next), cur.modRevision)) return next;
    }
  }

  async release(id: string): Promise<void> {
    await this.store.delete(this.keys.opClaim(id));
  }

  watch(onChange: (events: WatchEvent[]) => void, signal: AbortSignal): Promise<void> {
    return this.store.watch(this.keys.ops, onChange, signal);
  }
}
