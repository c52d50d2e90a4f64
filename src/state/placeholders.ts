import { setTimeout as sleep } from 'node:timers/promises';
import { clusterViews, nodeAsk, nodeUses, type NodePlacement, type PlaceholderRecord } from '../core/cluster-placement.js';
import { ConflictError } from '../core/errors.js';
import type { HostView } from '../core/scheduler.js';
import { ClusterRepo } from './clusters.js';
import { HostRepo } from './hosts.js';
import { JobRepo } from './jobs.js';
import { fleetKeys } from './keys.js';
import type { Store } from './store.js';

/** The placement lock's lease: a holder that dies lets go after this. */
const LOCK_TTL_SECONDS = 10;
/** How long a hold waits for the lock before it gives up. */
const LOCK_WAIT_MS = 30_000;

/** The nodes an operation asks room for: one placeholder each, with the cluster's limits (0 for none). */
export interface HoldRequest {
  /** user/name */
  cluster: string;
  containers: readonly string[];
  cpu: number;
  memory: number;
}

export interface HeldPlacement extends NodePlacement {
  placeholders: PlaceholderRecord[];
  /** The operation held these already (it was resumed): they are returned as they were, not placed again. */
  resumed: boolean;
}

/**
 * Placeholders (Cloud48's dummy VMs): the room a cluster node will take on its host, written before
 * the node is made, so two placements at once never book the same room. Placements take turns under
 * one fleet-wide lock; a placeholder goes when its node is in its cluster's record (it then counts as
 * the node), when its operation releases it, or, should the operation end or vanish first, by the collector.
 */
export class PlaceholderRepo {
  private readonly keys;
  constructor(
    readonly store: Store,
    private readonly fleet: string,
    private readonly lockWaitMs = LOCK_WAIT_MS,
  ) {
    this.keys = fleetKeys(fleet);
  }

  async list(host?: string): Promise<PlaceholderRecord[]> {
    const kvs = await this.store.list(host === undefined ? this.keys.placeholders : this.keys.hostPlaceholders(host));
    return kvs.map((kv) => JSON.parse(kv.value) as PlaceholderRecord);
  }

  /** The scheduler's view of the fleet: hosts, with the room jobs, cluster nodes and placeholders take. */
  async views(): Promise<HostView[]> {
    const [hosts, intents, clusters, placeholders] = await Promise.all([
      new HostRepo(this.store, this.fleet).list(),
      new JobRepo(this.store, this.fleet).intents(),
      new ClusterRepo(this.store, this.fleet).list(),
      this.list(),
    ]);
    return clusterViews(hosts, intents, nodeUses(clusters, placeholders));
  }

  /**
   * Under the placement lock: the fleet's usage is read, choose places the nodes (placeNodes, or a
   * migration's pick), and one placeholder per node is written; refused, with choose's reason, when a
   * node fits nowhere. An operation that holds placeholders already (it was resumed) gets those back.
   */
  async hold(opId: string, req: HoldRequest, choose: (views: HostView[]) => NodePlacement): Promise<HeldPlacement> {
    const deadline = Date.now() + this.lockWaitMs;
    for (;;) {
      const lock = await this.lock(opId, deadline);
      try {
        const mine = (await this.list()).filter((p) => p.op === opId);
        if (mine.length > 0) return resumedPlacement(req, mine);
        const placement = choose(await this.views());
        const placeholders = placeholdersOf(opId, req, placement);
        const puts = placeholders.map((p) => ({ key: this.keys.placeholder(p.host, p.op, p.container), value: JSON.stringify(p) }));
        // Written only while the lock is still ours: a holder whose lease lapsed mid-way places again.
        if (await this.store.transact([{ key: this.keys.placementLock, value: lock.value }], puts, [])) return { ...placement, placeholders, resumed: false };
      } finally {
        clearInterval(lock.keep);
        await this.store.revokeLease(lock.lease).catch(() => undefined);
      }
    }
  }

  /** What hold would do, for --dry-run: placed on the fleet as it is now, nothing locked or written; refused as hold refuses. */
  async preview(opId: string, req: HoldRequest, choose: (views: HostView[]) => NodePlacement): Promise<HeldPlacement> {
    const mine = (await this.list()).filter((p) => p.op === opId);
    if (mine.length > 0) return resumedPlacement(req, mine);
    const placement = choose(await this.views());
    return { ...placement, placeholders: placeholdersOf(opId, req, placement), resumed: false };
  }

  /** Removes every placeholder of an operation (its nodes are in the record, or it is undone). */
  async release(opId: string): Promise<number> {
    return this.remove((p) => p.op === opId);
  }

  /** Removes one node's placeholder (the node is in the record, or its move was given up). */
  async releaseNode(opId: string, container: string): Promise<number> {
    return this.remove((p) => p.op === opId && p.container === container);
  }

  /** Removes one placeholder as listed; false when it was gone already. */
  removeOne(p: PlaceholderRecord): Promise<boolean> {
    return this.store.delete(this.keys.placeholder(p.host, p.op, p.container));
  }

  private async remove(match: (p: PlaceholderRecord) => boolean): Promise<number> {
    const gone = (await this.list()).filter(match);
    // One transaction: a delete of its own per node would be an fsync in etcd each, at the end of every create.
    if (gone.length > 0)
      await this.store.transact(
        [],
        [],
        gone.map((p) => this.keys.placeholder(p.host, p.op, p.container)),
      );
    return gone.length;
  }

  /** Takes the placement lock, waiting with a short growing backoff until deadline. */
  private async lock(opId: string, deadline: number): Promise<{ lease: string; value: string; keep: NodeJS.Timeout }> {
    const key = this.keys.placementLock;
    const value = JSON.stringify({ op: opId, since: new Date().toISOString(), nonce: Math.random().toString(36).slice(2) });
    const lease = await this.store.grantLease(LOCK_TTL_SECONDS);
    // Kept alive while waiting and while held; a holder that dies stops renewing it.
    const keep = setInterval(() => void this.store.keepAlive(lease).catch(() => undefined), (LOCK_TTL_SECONDS * 1000) / 4);
    let wait = 10;
    for (;;) {
      const taken = await this.store.transact([{ key, absent: true }], [{ key, value, lease }], []).catch((e: unknown) => {
        clearInterval(keep);
        throw e;
      });
      if (taken) return { lease, value, keep };
      if (Date.now() >= deadline) {
        clearInterval(keep);
        await this.store.revokeLease(lease).catch(() => undefined);
        const holder = await this.store.get(key).catch(() => null);
        throw new ConflictError(`the fleet's placement lock stayed taken for ${Math.round(this.lockWaitMs / 1000)} s (held by ${holder ?? 'nobody now'})`, {
          hint: `another create or migration is placing nodes; try again (a holder that died lets go within ${LOCK_TTL_SECONDS} s)`,
        });
      }
      // Jittered, so waiters that woke together do not collide again.
      await sleep(wait + Math.random() * wait);
      wait = Math.min(wait * 2, 200);
    }
  }
}

/** One placeholder per node, on the host placement chose for it; refused, with placement's reason, when a node has none. */
function placeholdersOf(opId: string, req: HoldRequest, placement: NodePlacement): PlaceholderRecord[] {
  if (placement.reason !== null || placement.hosts.length < req.containers.length)
    throw new ConflictError(`cannot place cluster ${req.cluster}: ${placement.reason ?? 'fewer hosts chosen than nodes asked'}`, {
      hint: "see each host's verdict with: knarr cluster plan (same flags)",
      detail: { cluster: req.cluster, reason: placement.reason },
    });
  const at = new Date().toISOString();
  const ask = nodeAsk(req.cpu, req.memory);
  return req.containers.map((container, i) => ({ host: placement.hosts[i]!, op: opId, container, cluster: req.cluster, ...ask, at }));
}

function resumedPlacement(req: HoldRequest, mine: PlaceholderRecord[]): HeldPlacement {
  const byContainer = new Map(mine.map((p) => [p.container, p]));
  const ordered = req.containers.flatMap((c) => (byContainer.has(c) ? [byContainer.get(c)!] : []));
  return {
    hosts: ordered.map((p) => p.host),
    nodes: [],
    verdicts: [],
    reason: null,
    ask: nodeAsk(req.cpu, req.memory),
    placeholders: ordered,
    resumed: true,
  };
}
