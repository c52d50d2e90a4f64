import { readdir, rm } from 'node:fs/promises';
import type { ClusterRecord } from '../../core/cluster.js';
import type { PoolRecord } from '../../core/pool.js';
import { listPoolRecords } from '../../host/local-state.js';
import { isTerminal } from '../../core/ops.js';
import { ClusterRepo } from '../../state/clusters.js';
import { OpRepo } from '../../state/ops.js';
import { PlaceholderRepo } from '../../state/placeholders.js';
import type { Store } from '../../state/store.js';
import type { Context } from '../types.js';
import { lxcFor, nodeVolume, userDir } from './common.js';

/** A part must be seen with no cluster owning it at least this long before it goes: an operation writes its record first, so a live one shows up. */
export const ORPHAN_MIN_AGE_MS = 10_000;

/** Node containers and volumes are named user-id-index; hosts files are <user>/hosts/<id>. */
const NODE_RE = /^([a-z_][a-z0-9_]*)-(\d+)-\d+$/;

/** What a pass finds on this host: parts that no cluster record owns, by the key they are known under. */
interface Part {
  key: string;
  remove(): Promise<void>;
}

/**
 * The collector (Cloud48's, docklet's recovery): every agent removes the cluster parts on its host that
 * no cluster owns — node containers, node volumes, hosts files — left by a cluster whose record went
 * while this host was away, or by a crash no operation resumes. A part goes only when two passes at
 * least ORPHAN_MIN_AGE_MS apart both find it unowned. Placeholders anywhere in the fleet go once their
 * operation has ended, or, by the same two-pass rule, when it is gone. Returns what each pass removed.
 */
export function clusterCollector(ctx: Context, store: Store, now: () => number = Date.now): () => Promise<string[]> {
  const firstSeen = new Map<string, number>();
  const repo = new ClusterRepo(store, ctx.config.fleet);
  const lxc = lxcFor(ctx);
  const placeholders = collectPlaceholders(store, ctx.config.fleet, now);
  return async () => {
    // Read first: a store that does not answer means nothing is known to be unowned, so nothing goes.
    const owned = new Set((await repo.list()).map((c: ClusterRecord) => `${c.user}-${c.id}`));
    const unowned = (await localParts(ctx, repo, lxc)).filter((p) => !owned.has(ownerOf(p.key)));
    const keys = new Set(unowned.map((p) => p.key));
    for (const k of [...firstSeen.keys()]) if (!keys.has(k)) firstSeen.delete(k);
    const removed: string[] = [];
    for (const p of unowned) {
      const seen = firstSeen.get(p.key);
      if (seen === undefined) {
        firstSeen.set(p.key, now());
        continue;
      }
      if (now() - seen < ORPHAN_MIN_AGE_MS) continue;
      // Looked up again just before: a cluster made meanwhile under the same id keeps its parts.
      if ((await repo.list()).some((c) => `${c.user}-${c.id}` === ownerOf(p.key))) continue;
      await p.remove();
      firstSeen.delete(p.key);
      removed.push(p.key);
    }
    return [...removed, ...(await placeholders())];
  };
}

/** Placeholders whose operation ended (at once) or is gone (seen so on two passes ORPHAN_MIN_AGE_MS apart). */
export function collectPlaceholders(store: Store, fleet: string, now: () => number = Date.now): () => Promise<string[]> {
  const firstSeen = new Map<string, number>();
  const repo = new PlaceholderRepo(store, fleet);
  const ops = new OpRepo(store, fleet);
  return async () => {
    const held = await repo.list();
    const status = new Map<string, 'live' | 'ended' | 'gone'>();
    for (const op of new Set(held.map((p) => p.op))) {
      const o = await ops.get(op);
      status.set(op, o === null ? 'gone' : isTerminal(o.status) ? 'ended' : 'live');
    }
    const removed: string[] = [];
    const seenNow = new Set<string>();
    for (const p of held) {
      const key = `placeholder ${p.host}/${p.op}/${p.container}`;
      const s = status.get(p.op);
      if (s === 'live') continue;
      if (s === 'gone') {
        seenNow.add(key);
        const seen = firstSeen.get(key);
        if (seen === undefined) firstSeen.set(key, now());
        // An operation that writes its placeholders before its record (or one gone a moment ago) is given two passes.
        if (seen === undefined || now() - seen < ORPHAN_MIN_AGE_MS) continue;
      }
      if (await repo.removeOne(p)) removed.push(key);
      firstSeen.delete(key);
    }
    for (const k of [...firstSeen.keys()]) if (!seenNow.has(k)) firstSeen.delete(k);
    return removed;
  };
}

/** "alice-3" of "container alice-3-0", "volume nodes:alice-3-1" or "hosts nodes:alice/3". */
function ownerOf(key: string): string {
  const name = key.slice(key.lastIndexOf(' ') + 1).replace(/^[^:]*:/, '');
  const hosts = /^([a-z_][a-z0-9_]*)\/(\d+)$/.exec(name);
  if (hosts) return `${hosts[1]}-${hosts[2]}`;
  const node = NODE_RE.exec(name);
  return node ? `${node[1]}-${node[2]}` : '';
}

async function localParts(ctx: Context, repo: ClusterRepo, lxc: ReturnType<typeof lxcFor>): Promise<Part[]> {
  const parts: Part[] = [];
  for (const name of await lxc.list()) if (NODE_RE.test(name)) parts.push({ key: `container ${name}`, remove: () => removeContainer(repo, lxc, name) });
  for (const pool of await listPoolRecords(ctx.config.stateDir)) {
    if (!ctx.drivers[pool.driver].caps.overlayUpper) continue;
    for (const name of await readdir(`${pool.mountpoint}/knarr-clusters`).catch(() => [] as string[]))
      if (NODE_RE.test(name)) parts.push({ key: `volume ${pool.name}:${name}`, remove: () => removeVolume(ctx, pool, name) });
    for (const user of await readdir(`${pool.mountpoint}/knarr-users`).catch(() => [] as string[]))
      for (const id of await readdir(`${userDir(pool, user)}/hosts`).catch(() => [] as string[]))
        if (/^\d+$/.test(id)) parts.push({ key: `hosts ${pool.name}:${user}/${id}`, remove: () => rm(`${userDir(pool, user)}/hosts/${id}`, { force: true }) });
  }
  return parts;
}

async function removeContainer(repo: ClusterRepo, lxc: ReturnType<typeof lxcFor>, name: string): Promise<void> {
  await lxc.remove(name);
  // Its address is given back too, unless the cluster it was held for exists again.
  await repo.releaseAddresses(NODE_RE.exec(name)![1]!, (holder) => holder === name);
}

function removeVolume(ctx: Context, pool: PoolRecord, name: string): Promise<void> {
  return ctx.drivers[pool.driver].removeVolume(pool, nodeVolume(name), ctx.runner);
}
