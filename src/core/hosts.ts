import { ValidationError } from './errors.js';
import { isTag } from './names.js';
import type { JobSpec } from './job-spec.js';
import type { HostView, JobRequest } from './scheduler.js';

/**
 * A fleet host as its agent records it. States: ok (serving), draining (takes no new jobs),
 * evacuated (host evacuate moved its work away; none lands there until host restore),
 * left (gone for good). Whether it is up is separate: its agent holds a lease in etcd, and a
 * host whose lease lapsed is down. Joining is docklet's handshake (JoinState, below).
 */
export type HostState = 'ok' | 'draining' | 'evacuated' | 'left';

export interface HostRecord {
  name: string;
  /** The agent's API, http(s)://addr:port. */
  address: string;
  dockerEndpoint: string;
  /** The name this host's dots are recorded under (its hostname), when its agent has another --name. */
  dotHost?: string;
  tags: string[];
  capacity: { cpu: number; memory: number };
  load: { runningJobs: number; freeMemory: number };
  state: HostState;
  /** Where its agent's join handshake is; only a host that finished it (ok) takes work. Absent: an older agent, taken as ok. */
  join?: JoinState;
  /** Containers on the host's engine that are no knarr job, as its agent last saw them. */
  unknownContainers?: { id: string; name: string; image: string }[];
  joinedAt: string;
  updatedAt: string;
  /** How long the fleet waits, once the host is down, for its agent to start again before moving its jobs. Absent: no wait. */
  restartGraceSeconds?: number;
  /** The collector's last pass that removed something: cluster parts on this host that no cluster owned. */
  collected?: { at: string; removed: string[] };
  /** Where the fleet's shared data directory is mounted on this host (daemon --share); absent: none. */
  share?: string;
  /** Where the clusters' VXLAN reaches this host; absent: an agent on loopback, or an older one. */
  vtep?: { ip: string; vni: number; port: number };
}

/**
 * How long after it was first seen down a host's jobs stay put, waiting for its agent to come back:
 * its restart grace, none for a host that left (host leave, daemon --leave-on-stop) or whose agent predates the grace.
 */
export function restartGraceMs(h: HostRecord): number {
  return h.state === 'left' ? 0 : (h.restartGraceSeconds ?? 0) * 1000;
}

/**
 * docklet's join handshake, kept per agent start: the agent writes waiting (with its proof of the
 * shared data directory); an admitted peer (or, with none up, the agent itself) checks the proof and
 * answers init; the agent initialises for the fleet's start mode and writes work; the admitter
 * writes ok. A wrong proof is refused.
 */
export type JoinState = 'waiting' | 'init' | 'work' | 'ok' | 'refused';
export type StartMode = 'new' | 'recovery';

export interface JoinRecord {
  host: string;
  state: JoinState;
  mode: StartMode;
  /** The token read from the shared data directory, or null when the agent has none configured. */
  proof: string | null;
  reason?: string;
  at: string;
}

/** An admitter's answer to a waiting host: init when its proof matches the fleet's token (or the fleet has none). */
export function admit(join: JoinRecord, fleetToken: string | null): JoinRecord {
  const at = new Date().toISOString();
  if (fleetToken !== null && join.proof !== fleetToken) {
    const reason =
      join.proof === null
        ? 'the fleet has a shared data directory and this host gave no proof of it (start the agent with --share DIR)'
        : "the token in its shared data directory is not the fleet's: it does not share the fleet's directory";
    return { ...join, state: 'refused', reason, at };
  }
  return { ...join, state: 'init', at };
}

export function validateTags(field: string, tags: string[]): string[] {
  for (const t of tags) {
    if (t === '') throw new ValidationError(field, 'an empty tag (an empty value or a doubled comma); give tags like ssd,zone=eu');
    if (!isTag(t))
      throw new ValidationError(field, `${JSON.stringify(t)} is not a tag; start with a letter or digit, then use letters, digits and _ . : = - (at most 64)`);
  }
  return [...new Set(tags)].sort();
}

/** What the scheduler sees of a host. */
export function hostView(h: HostRecord, up: boolean): HostView {
  return {
    name: h.name,
    tags: h.tags,
    cpu: h.capacity.cpu,
    memory: h.capacity.memory,
    usedCpu: 0,
    usedMemory: Math.max(0, h.capacity.memory - h.load.freeMemory),
    runningJobs: h.load.runningJobs,
    ports: new Set(),
    draining: h.state !== 'ok',
    ...(h.state === 'evacuated' ? { evacuated: true } : {}),
    ...(h.join !== undefined && h.join !== 'ok' ? { joining: h.join } : {}),
    up,
  };
}

/** The scheduler's view of the fleet: each host with the ports and reservations of every job placed on it (run by an agent or not). */
export function fleetViews(
  hosts: readonly { host: HostRecord; up: boolean }[],
  placed: readonly { host: string | null; spec: Pick<JobSpec, 'ports' | 'cpu' | 'memory'>; desired?: string }[],
): HostView[] {
  const views = new Map(hosts.map((h) => [h.host.name, { ...hostView(h.host, h.up), ports: new Set<string>() }]));
  const reserved = new Map<string, number>();
  for (const j of placed) {
    const v = j.host === null ? undefined : views.get(j.host);
    if (!v) continue;
    // A stopped job keeps its ports (a restart takes them again) but holds no cpu or memory.
    for (const p of j.spec.ports) if (p.host !== 0) v.ports.add(portKey(p));
    if (j.desired === 'stopped') continue;
    v.usedCpu += j.spec.cpu;
    reserved.set(v.name, (reserved.get(v.name) ?? 0) + j.spec.memory);
  }
  // Memory in use already holds the running jobs': reservations count where they are more (jobs not grown into their share yet).
  for (const v of views.values()) v.usedMemory = Math.max(v.usedMemory, reserved.get(v.name) ?? 0);
  return [...views.values()];
}

/** A published port as the scheduler tells them apart: 53/udp is not 53/tcp. */
export const portKey = (p: { host: number; protocol: string }) => `${p.host}/${p.protocol}`;

/** What the scheduler needs of a job spec. */
export function jobRequest(spec: JobSpec, history: readonly string[]): JobRequest {
  return {
    name: spec.name,
    cpu: spec.cpu,
    memory: spec.memory,
    // A port the engine picks (host port 0) takes no fixed port: any number of such jobs share a host.
    ports: spec.ports.filter((p) => p.host !== 0).map(portKey),
    tags: spec.tags,
    host: spec.host ?? undefined,
    fixed: spec.fixed,
    history,
  };
}
