import { expiredHistory, expiredOps, type HistoryEntry } from '../core/ops.js';
import type { OpRecord } from '../core/ops.js';
import { fleetKeys } from './keys.js';
import type { Store } from './store.js';

export interface Collected {
  /** The operations removed (or, planned only, that would be). */
  ops: OpRecord[];
  history: HistoryEntry[];
}

/**
 * Removes the fleet's operations that ended before cutoff and the job history older than it (see
 * expiredOps, expiredHistory). With apply false it only reads. Each operation goes only if its
 * record is still what was read, so one changed meanwhile stays; several agents may run this at once.
 */
export async function collectGarbage(store: Store, fleet: string, cutoff: number, apply: boolean): Promise<Collected> {
  const keys = fleetKeys(fleet);
  const raw = await store.list(keys.ops);
  const ops = raw.map((kv) => JSON.parse(kv.value) as OpRecord);
  const expired = expiredOps(ops, cutoff);
  const entries: HistoryEntry[] = (await store.list(keys.jobHistories)).map((kv) => {
    const e = JSON.parse(kv.value) as { at: string; event: string };
    return { key: kv.key, job: kv.key.slice(keys.jobHistories.length).split('/')[0]!, at: e.at, event: e.event };
  });
  const history = expiredHistory(entries, cutoff);
  if (!apply) return { ops: expired, history };
  const removed: OpRecord[] = [];
  const rawOf = new Map(raw.map((kv, i) => [ops[i]!.id, kv.value]));
  // Children before parents: a parent is never gone while a child it names is still there.
  for (const op of [...expired].sort((a, b) => Number(a.parent === null) - Number(b.parent === null))) {
    if (await store.transact([{ key: keys.op(op.id), value: rawOf.get(op.id)! }], [], [keys.op(op.id), keys.opClaim(op.id), keys.opPending(op.host, op.id)]))
      removed.push(op);
  }
  for (const e of history) await store.delete(e.key);
  return { ops: removed, history };
}
