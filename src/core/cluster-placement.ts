import { nodeLimits, type ClusterRecord } from './cluster.js';
import { fleetViews, type HostRecord } from './hosts.js';
import type { JobSpec } from './job-spec.js';
import { infeasible, score, type HostView, type JobRequest, type Verdict } from './scheduler.js';

/**
 * Where a cluster's nodes go: the job scheduler's feasibility (up, joining, draining, pin, tags,
 * capacity) and ranking, node by node, each node booked on its host so the next one sees it.
 * spread puts nodes on as many hosts as fit (fewest nodes of the cluster first, then the emptiest);
 * pack fills one host before the next (most nodes of the cluster first, then the fullest that fits).
 */

/** What a node with no cpu limit asks for, in millicores: small, so a host's capacity still bounds how many nodes it takes. */
export const DEFAULT_NODE_CPU = 100;
/** What a node with no memory limit asks for, in bytes (64 MiB). */
export const DEFAULT_NODE_MEMORY = 64 * 1024 * 1024;

export type NodeStrategy = 'spread' | 'pack';

/** What placement counts for a node: its limits, or the defaults for a limit of 0 (none). */
export function nodeAsk(cpu: number, memory: number): { cpu: number; memory: number } {
  return { cpu: cpu > 0 ? cpu : DEFAULT_NODE_CPU, memory: memory > 0 ? memory : DEFAULT_NODE_MEMORY };
}

export interface NodePlacementRequest {
  /** user/name, for the messages. */
  cluster: string;
  size: number;
  /** Each node's limits, millicores and bytes; 0 for none (the defaults above are counted). */
  cpu: number;
  memory: number;
  strategy: NodeStrategy;
  /** Every node on this host. */
  host?: string;
  /** Only hosts with every tag. */
  tags: readonly string[];
  /** The first new node's index (a scale adds nodes after the existing ones); 0 by default. */
  firstIndex?: number;
  /** Hosts of the cluster's nodes already placed (a scale), which spread and pack count. */
  existing?: readonly string[];
  /** Hosts refused for a reason the scheduler does not see (no such image there, no pool that holds nodes), with that reason. */
  unfit?: ReadonlyMap<string, string>;
}

/** One node's placement, with each host's verdict at its turn. */
export interface NodeVerdicts {
  index: number;
  host: string | null;
  verdicts: Verdict[];
}

/** One host's part in the whole placement: the nodes it takes, or why it takes none (its verdict for the last node placed or refused). */
export interface HostVerdict {
  host: string;
  verdict: Verdict['verdict'];
  nodes: number[];
  why: string;
}

export interface NodePlacement {
  /** The host of each node, by order; shorter than size when a node fits nowhere (then reason says why). */
  hosts: string[];
  nodes: NodeVerdicts[];
  /** One per host of the fleet: chosen ones first. */
  verdicts: HostVerdict[];
  reason: string | null;
  /** What each node was counted as (its limits, or the defaults). */
  ask: { cpu: number; memory: number };
}

/** Room held for a node on a host during a create or a migration, until its operation releases it (the node runs there) or ends. */
export interface PlaceholderRecord {
  host: string;
  op: string;
  container: string;
  /** user/name */
  cluster: string;
  cpu: number;
  memory: number;
  at: string;
}

/** Capacity a cluster node takes on a host. */
export interface NodeUse {
  host: string;
  cpu: number;
  memory: number;
  /** A placeholder: room booked for a node not running yet, which the host's memory in use cannot show. */
  held?: boolean;
}

/**
 * What the fleet's cluster nodes take: every placeholder, and every node of a cluster record on its host
 * unless its placeholder there still holds its room (a stopped cluster's nodes, like a stopped job, hold nothing).
 */
export function nodeUses(clusters: readonly ClusterRecord[], placeholders: readonly PlaceholderRecord[]): NodeUse[] {
  const held = new Set(placeholders.map((p) => `${p.host} ${p.container}`));
  const uses: NodeUse[] = placeholders.map((p) => ({ host: p.host, cpu: p.cpu, memory: p.memory, held: true }));
  for (const c of clusters)
    for (const n of c.nodes) {
      if (c.status === 'stopped' || held.has(`${n.host} ${n.container}`)) continue;
      const l = nodeLimits(c, n);
      uses.push({ host: n.host, ...nodeAsk(l.cpu, l.memory) });
    }
  return uses;
}

/**
 * The scheduler's view of the fleet with the cluster nodes: a running node's limits count as a job's
 * reservation (against the memory the host reports in use); a placeholder's come on top of it.
 */
export function clusterViews(
  hosts: readonly { host: HostRecord; up: boolean }[],
  jobs: readonly { host: string | null; spec: Pick<JobSpec, 'ports' | 'cpu' | 'memory'>; desired?: string }[],
  nodes: readonly NodeUse[],
): HostView[] {
  const running = nodes.filter((n) => !n.held).map((n) => ({ host: n.host, spec: { ports: [], cpu: n.cpu, memory: n.memory } }));
  const views = fleetViews(hosts, [...jobs, ...running]);
  const byHost = new Map(views.map((v) => [v.name, v]));
  for (const n of nodes) {
    const v = n.held ? byHost.get(n.host) : undefined;
    if (!v) continue;
    v.usedCpu += n.cpu;
    v.usedMemory += n.memory;
  }
  return views;
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const plural = (n: number) => `${n} node${n === 1 ? '' : 's'}`;

/** Places req.size nodes on views (not changed); every host is judged for every node. */
export function placeNodes(views: readonly HostView[], req: NodePlacementRequest): NodePlacement {
  const hosts = views.map((h) => ({ ...h, ports: new Set(h.ports) })).sort(byName);
  const ask = nodeAsk(req.cpu, req.memory);
  const count = new Map<string, number>();
  for (const h of req.existing ?? []) count.set(h, (count.get(h) ?? 0) + 1);
  const strategy = req.strategy === 'pack' ? 'binpack' : 'spread';
  const first = req.firstIndex ?? 0;
  const placed: string[] = [];
  const nodes: NodeVerdicts[] = [];
  let reason: string | null = null;
  for (let i = 0; i < req.size; i++) {
    const index = first + i;
    const job: JobRequest = { name: `${req.cluster} node ${index}`, ...ask, ports: [], tags: req.tags, host: req.host, fixed: false, history: [] };
    const judged = hosts.map((h) => ({ h, why: infeasible(job, h) ?? req.unfit?.get(h.name) ?? null, n: count.get(h.name) ?? 0, s: score(job, h, strategy) }));
    const feasible = judged.filter((j) => j.why === null);
    // spread: fewest nodes of this cluster first; pack: most; then the scheduler's score; then the name.
    const sign = req.strategy === 'pack' ? -1 : 1;
    feasible.sort((a, b) => sign * (a.n - b.n) || b.s - a.s || byName(a.h, b.h));
    const best = feasible[0];
    const verdicts: Verdict[] = judged.map(({ h, why, n, s }) => {
      if (why !== null) return { host: h.name, verdict: 'rejected', why };
      if (h === best!.h) {
        const why = `${req.strategy === 'pack' ? 'most' : 'fewest'} nodes of the cluster here (${n}), then the best ${strategy} score`;
        return { host: h.name, verdict: 'chosen', why, score: s };
      }
      const lower =
        n !== best!.n
          ? `has ${plural(n)} of the cluster, ${best!.h.name} ${best!.n} (${req.strategy === 'pack' ? 'pack fills one host first' : 'spread evens them out'})`
          : s === best!.s
            ? `same score as ${best!.h.name}, whose name sorts first`
            : `score ${s.toFixed(3)} below ${best!.s.toFixed(3)}`;
      return { host: h.name, verdict: 'ranked-lower', why: lower, score: s };
    });
    nodes.push({ index, host: best?.h.name ?? null, verdicts });
    if (!best) {
      reason = whyNoHost(req, index, i, judged);
      break;
    }
    best.h.usedCpu += ask.cpu;
    best.h.usedMemory += ask.memory;
    best.h.runningJobs += 1;
    count.set(best.h.name, best.n + 1);
    placed.push(best.h.name);
  }
  return { hosts: placed, nodes, verdicts: hostVerdicts(hosts, nodes, req.strategy), reason, ask };
}

function whyNoHost(req: NodePlacementRequest, index: number, placedSoFar: number, judged: { h: HostView; why: string | null }[]): string {
  const of = `node ${index} of ${req.cluster}${placedSoFar > 0 ? ` (after ${plural(placedSoFar)} placed)` : ''}`;
  if (judged.length === 0) return `no host in the fleet for ${of}`;
  if (req.host !== undefined) {
    const pinned = judged.find((j) => j.h.name === req.host);
    return pinned ? `pinned host ${req.host} cannot take ${of}: ${pinned.why}` : `pinned host ${req.host} is not in the fleet`;
  }
  const tagged = judged.filter((j) => req.tags.every((t) => j.h.tags.includes(t)));
  if (tagged.length === 0) return `no host has every tag asked (${req.tags.join(', ')})`;
  const shown = tagged.slice(0, 5).map((j) => `${j.h.name}: ${j.why}`);
  if (tagged.length > 5) shown.push(`and ${tagged.length - 5} more`);
  return `no host can take ${of}: ${shown.join('; ')}`;
}

const HOW: Record<NodeStrategy, string> = {
  spread: 'spread: fewest nodes of the cluster first, then the emptiest host',
  pack: 'pack: most nodes of the cluster first, then the fullest host that fits',
};

function hostVerdicts(hosts: readonly HostView[], nodes: readonly NodeVerdicts[], strategy: NodeStrategy): HostVerdict[] {
  const last = nodes[nodes.length - 1];
  const out = hosts.map((h): HostVerdict => {
    const mine = nodes.filter((n) => n.host === h.name).map((n) => n.index);
    if (mine.length > 0)
      return { host: h.name, verdict: 'chosen', nodes: mine, why: `takes ${mine.length === 1 ? 'node' : 'nodes'} ${mine.join(', ')} (${HOW[strategy]})` };
    const v = last?.verdicts.find((x) => x.host === h.name);
    return { host: h.name, verdict: v?.verdict === 'rejected' ? 'rejected' : 'ranked-lower', nodes: [], why: v?.why ?? '' };
  });
  const order = ['chosen', 'ranked-lower', 'rejected'];
  return out.sort((a, b) => order.indexOf(a.verdict) - order.indexOf(b.verdict) || byName({ name: a.host }, { name: b.host }));
}
