import { isTerminal, type OpRecord } from '../core/ops.js';
import { fleetKeys, SCHEMA_VERSION } from './keys.js';
import type { Store } from './store.js';

export interface Migrated {
  /** The schema the fleet had before (null: none recorded). */
  from: string | null;
  /** Keys moved from hosts/<host>/... to hostdata/<host>/... */
  moved: number;
  /** Operations not yet ended given their entry in the per-host pending index. */
  indexed: number;
  /** True when the fleet now records the current schema. */
  current: boolean;
}

/**
 * Brings a fleet's keys to SCHEMA_VERSION (one read when they are there already): each host's data
 * moves out from under its record, and operations not yet ended get their pending entry. Every move
 * is a compare-and-swap (the old value unchanged, the new key absent), so agents may run it at once
 * and a second run changes nothing; the schema is bumped only when no old key is left.
 */
export async function migrateFleet(store: Store, fleet: string): Promise<Migrated> {
  const keys = fleetKeys(fleet);
  const from = await store.get(keys.schema);
  if (from !== null && Number(from) >= Number(SCHEMA_VERSION)) return { from, moved: 0, indexed: 0, current: from === SCHEMA_VERSION };
  let moved = 0;
  let left = 0;
  for (const kv of await store.list(keys.hosts)) {
    const rest = kv.key.slice(keys.hosts.length);
    const slash = rest.indexOf('/');
    if (slash < 0) continue;
    const target = keys.hostData(rest.slice(0, slash)) + rest.slice(slash + 1);
    const same = { key: kv.key, value: kv.value };
    if (await store.transact([same, { key: target, absent: true }], [{ key: target, value: kv.value }], [kv.key])) moved++;
    // The new key was written already (by a newer writer): it wins and the old one goes.
    else if ((await store.get(target)) !== null && (await store.transact([same], [], [kv.key]))) continue;
    // Gone meanwhile (another agent moved it) is done; changed meanwhile waits for the next run.
    else if ((await store.get(kv.key)) !== null) left++;
  }
  let indexed = 0;
  for (const kv of await store.list(keys.ops)) {
    const op = JSON.parse(kv.value) as OpRecord;
    if (isTerminal(op.status)) continue;
    const entry = keys.opPending(op.host, op.id);
    if (
      await store.transact(
        [
          { key: kv.key, value: kv.value },
          { key: entry, absent: true },
        ],
        [{ key: entry, value: op.parent ?? '' }],
        [],
      )
    )
      indexed++;
  }
  if (left > 0) return { from, moved, indexed, current: false };
  const guard = from === null ? { key: keys.schema, absent: true as const } : { key: keys.schema, value: from };
  const bumped = await store.transact([guard], [{ key: keys.schema, value: SCHEMA_VERSION }], []);
  return { from, moved, indexed, current: bumped || (await store.get(keys.schema)) === SCHEMA_VERSION };
}
