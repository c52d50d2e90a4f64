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
}

export interface EvacuationPlan {
  host: string;
  moves: { job: string; to: string }[];
  staying: { job: string; why: string }[];
  migrations: (Omit<EvacuationNode, 'cpu' | 'memory'> & { to: string })[];
  /** What no other host can take, with each host's reason: an evacuation with any is refused. */
  unplaced: { what: string; why: string }[];
}

const nodeRequest = (n: EvacuationNode): JobRequest => ({
  name: n.container,
  cpu: n.cpu,
  memory: n.memory,
  ports: [],
  tags: [],
  fixed: false,
  history: [],
});

type Item = { job: EvacuationJob; node?: undefined } | { node: EvacuationNode; job?: undefined };

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
  const items: { item: Item; request: JobRequest; allowed: readonly string[] | null }[] = [
    ...jobs.filter((j) => j.stays === null).map((job) => ({ item: { job }, request: job.request, allowed: job.allowed })),
    ...nodes.map((node) => ({ item: { node }, request: nodeRequest(node), allowed: null })),
  ];
  items.sort((a, b) => b.request.memory - a.request.memory || b.request.cpu - a.request.cpu || (a.request.name < b.request.name ? -1 : 1));
  for (const { item, request, allowed } of items) {
    const candidates = allowed ? pool.filter((v) => allowed.includes(v.name)) : pool;
    const to = candidates.length > 0 ? new Scheduler(candidates, { strategy }).place(request).host : null;
    if (to === null) {
      const what = item.job ? `job ${item.job.name}` : `node ${item.node.node} of cluster ${item.node.user}/${item.node.cluster} (${item.node.container})`;
      plan.unplaced.push({ what, why: whyNot(candidates, request, allowed !== null) });
      continue;
    }
    book(pool.find((v) => v.name === to)!, request);
    if (item.job) plan.moves.push({ job: item.job.name, to });
    else {
      const { cpu: _c, memory: _m, ...n } = item.node;
      plan.migrations.push({ ...n, to });
    }
  }
  plan.moves.sort((a, b) => (a.job < b.job ? -1 : 1));
  plan.migrations.sort((a, b) => (a.container < b.container ? -1 : 1));
  return plan;
}

/** Each candidate host's reason to refuse the request, or that there is none. */
function whyNot(candidates: HostView[], request: JobRequest, byDots: boolean): string {
  if (candidates.length === 0) return byDots ? 'no other host has every dot it uses' : 'there is no other host in the fleet';
  return new Scheduler(candidates)
    .explain(request)
    .verdicts.map((v) => `${v.host}: ${v.why}`)
    .join('; ');
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
