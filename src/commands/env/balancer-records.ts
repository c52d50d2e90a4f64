import { BalancerRepo, type BalancerRecord } from '../../state/balancers.js';
import type { Store } from '../../state/store.js';

/** The environment's side of the balancer records its hosts' agents serve. */

export async function balancerRecord(store: Store, fleet: string, host: string, env: string): Promise<BalancerRecord | null> {
  return (await new BalancerRepo(store, fleet).get(host, env))?.record ?? null;
}

export function putBalancer(store: Store, fleet: string, host: string, rec: BalancerRecord): Promise<void> {
  return new BalancerRepo(store, fleet).put(host, rec);
}

/** Changes the record by compare-and-swap (fn's null changes nothing); null when there is none. */
export async function updateBalancer(
  store: Store,
  fleet: string,
  host: string,
  env: string,
  fn: (b: BalancerRecord) => BalancerRecord | null,
): Promise<BalancerRecord | null> {
  const repo = new BalancerRepo(store, fleet);
  for (;;) {
    const cur = await repo.get(host, env);
    if (!cur) return null;
    const next = fn(cur.record);
    if (next === null) return cur.record;
    if (await repo.putIfUnchanged(cur, next)) return next;
  }
}

/** Removes member's balancer record on host (not a newer member's), by compare-and-swap. */
export async function deleteBalancer(store: Store, fleet: string, host: string, env: string, member: string): Promise<void> {
  const repo = new BalancerRepo(store, fleet);
  for (;;) {
    const cur = await repo.get(host, env);
    if (cur?.record.member !== member || (await repo.deleteIfUnchanged(cur))) return;
  }
}
