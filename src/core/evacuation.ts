import { nodeAsk, placeNodes } from './cluster-placement.js';
import { Scheduler, type HostView, type JobRequest, type Strategy } from './scheduler.js';

/**
 * Evacuating a host (Incus's `cluster evacuate`, Nomad's drain): where each job and cluster node on
 * it goes, chosen by the job scheduler over the other hosts. Pure: the caller reads the fleet.
 */

/** A job placed on the host being evacuated. */
export interface EvacuationJob {
  name: string;
  request: JobRequest;
  /** The hosts it may go to at all (those that have its dots); null: any. */
  allowed: readonly string[] | null;
  /** Why it stays on the host whatever the room elsewhere (fixed, pinned, run with no agent), or null. */
  stays: string | null;
}

/** A cluster node on the host being evacuated; its request is its cpu and memory limits (0: none). */
export interface EvacuationNode {
  user: string;
  cluster: string;
  node: number;
  container: string;
  cpu: number;
  memory: number;
  /** The hosts that have its cluster's image; null: any. */
  allowed: readonly string[] | null;
  /** The hosts of its cluster's other nodes that stay where they are: spread evens the cluster out over hosts. */
  peers: readonly string[];
  /** Why it cannot move now (its cluster is busy with another operation), or null. */
  blocked: string | null;
}

export interface EvacuationPlan {
  host: string;
  moves: { job: string; to: string }[];
  staying: { job: string; why: string }[];
  migrations: (Pick<EvacuationNode, 'user' | 'cluster' | 'node' | 'container'> & { to: string })[];
  /** What no other host can take, with each host's reason: an evacuation with any is refused. */
  unplaced: { what: string; why: string }[];
}

/** A node counts as its limits, or cluster placement's defaults where it has none. */
const nodeRequest = (n: EvacuationNode): JobRequest => ({ name: n.container, ...nodeAsk(n.cpu, n.memory), ports: [], tags: [], fixed: false, history: [] });

type Item = { job: EvacuationJob; node?: undefined } | { node: EvacuationNode; job?: undefined };

const itemName = (item: Item) =>
  item.job ? `job ${item.job.name}` : `node ${item.node.node} of cluster ${item.node.user}/${item.node.cluster} (${item.node.container})`;

/**
 * Places every job that may move and every node of host on the other hosts, biggest first (so a large
 * one is not left without room by small ones), each placement booking its host for the next.
 */
export function planEvacuation(
  host: string,
  views: readonly HostView[],
  jobs: readonly EvacuationJob[],
  nodes: readonly EvacuationNode[],
  strategy: Strategy = 'spread',
): EvacuationPlan {
  const pool = views.filter((v) => v.name !== host).map((v) => ({ ...v, ports: new Set(v.ports) }));
  const plan: EvacuationPlan = { host, moves: [], staying: [], migrations: [], unplaced: [] };
  for (const j of jobs) if (j.stays !== null) plan.staying.push({ job: j.name, why: j.stays });
  const items: { item: Item; request: JobRequest; allowed: readonly string[] | null; only: string }[] = [
    ...jobs.filter((j) => j.stays === null).map((job) => ({ item: { job }, request: job.request, allowed: job.allowed, only: 'has every dot it uses' })),
    ...nodes.flatMap((node) => {
      if (node.blocked === null) return [{ item: { node }, request: nodeRequest(node), allowed: node.allowed, only: "has its cluster's image" }];
      plan.unplaced.push({ what: itemName({ node }), why: node.blocked });
      return [];
    }),
  ];
  items.sort((a, b) => b.request.memory - a.request.memory || b.request.cpu - a.request.cpu || (a.request.name < b.request.name ? -1 : 1));
  // Each cluster's nodes where they are or go, so a cluster's nodes spread over the hosts left, as cluster placement does.
  const peers = new Map<string, string[]>();
  for (const { item, request, allowed, only } of items) {
    const candidates = allowed ? pool.filter((v) => allowed.includes(v.name)) : pool;
    let to: string | null;
    if (item.job) to = candidates.length > 0 ? new Scheduler(candidates, { strategy }).place(request).host : null;
    else {
      const n = item.node;
      const key = `${n.user}/${n.cluster}`;
      const existing = peers.get(key) ?? [...n.peers];
      const unfit = new Map(pool.filter((v) => !candidates.includes(v)).map((v) => [v.name, `not a host that ${only}`]));
      const p = placeNodes(pool, { cluster: key, size: 1, cpu: n.cpu, memory: n.memory, strategy: 'spread', tags: [], firstIndex: n.node, existing, unfit });
      to = p.hosts[0] ?? null;
      if (to !== null) peers.set(key, [...existing, to]);
    }
    if (to === null) {
      const left = pool.filter((v) => !candidates.includes(v)).map((v) => `${v.name}: not a host that ${only}`);
      plan.unplaced.push({ what: itemName(item), why: [...whyNot(candidates, request), ...left].join('; ') || 'there is no other host in the fleet' });
      continue;
    }
    book(pool.find((v) => v.name === to)!, request);
    if (item.job) plan.moves.push({ job: item.job.name, to });
    else plan.migrations.push({ user: item.node.user, cluster: item.node.cluster, node: item.node.node, container: item.node.container, to });
  }
  plan.moves.sort((a, b) => (a.job < b.job ? -1 : 1));
  plan.migrations.sort((a, b) => (a.container < b.container ? -1 : 1));
  return plan;
}

/** Each candidate host's reason to refuse the request. */
function whyNot(candidates: HostView[], request: JobRequest): string[] {
  if (candidates.length === 0) return [];
  return new Scheduler(candidates).explain(request).verdicts.map((v) => `${v.host}: ${v.why}`);
}

function book(v: HostView & { ports: Set<string> }, r: JobRequest): void {
  v.usedCpu += r.cpu;
  v.usedMemory += r.memory;
  v.runningJobs += 1;
  for (const p of r.ports) v.ports.add(p);
}

/** The refusal's one line: what could not be placed and why. */
export function unplacedText(plan: Pick<EvacuationPlan, 'unplaced'>): string {
  return plan.unplaced.map((u) => `${u.what} (${u.why})`).join('; ');
}
