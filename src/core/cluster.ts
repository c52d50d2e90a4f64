import { InternalError, ValidationError } from './errors.js';

/**
 * Virtual clusters of LXC containers, as docklet has them: nodes named user-clusterid-nodeid with
 * hostnames host-N, on the user's own /24 subnet, sharing the user's data at /nfs.
 */

export const MAX_CLUSTER_SIZE = 64;

export interface ClusterNode {
  index: number;
  container: string;
  hostname: string;
  ip: string;
  host: string;
  /** The node's writable layer on the pool. */
  volume: string;
  /** Suspended: its processes held by the cgroup freezer (cluster suspend). */
  frozen?: boolean;
  /** The node's own limits (cluster update NAME NODE), over the cluster's; bytes and millicores, 0 for none. */
  memory?: number;
  cpu?: number;
}

export type ClusterStatus = 'creating' | 'running' | 'stopped' | 'scaling' | 'deleting' | 'failed';

export interface ClusterRecord {
  id: number;
  name: string;
  user: string;
  status: ClusterStatus;
  image: string;
  pool: string;
  host: string;
  subnet: string;
  /** Bytes and millicores per node; 0 for no limit. */
  memory: number;
  cpu: number;
  nodes: ClusterNode[];
  /** The operation that made or last changed it. */
  op: string;
  /** share: the user's /nfs and ssh keys are on the fleet's shared data directory (a cluster over several hosts); absent: on the pool. */
  files?: 'share';
  /** How its nodes were placed over the fleet (create's flags), which a scale out places new nodes by; absent: all on its host. */
  placement?: { strategy: 'spread' | 'pack'; pin?: string; tags?: string[] };
  createdAt: string;
  updatedAt: string;
}

/** The limits a node runs with: its own, else the cluster's. */
export function nodeLimits(c: Pick<ClusterRecord, 'memory' | 'cpu'>, n: ClusterNode): { memory: number; cpu: number } {
  return { memory: n.memory ?? c.memory, cpu: n.cpu ?? c.cpu };
}

/** The limits of the record and its nodes, as an update found them (what undo puts back). */
export interface ClusterLimits {
  memory: number;
  cpu: number;
  nodes: { index: number; memory?: number; cpu?: number }[];
}

export const limitsOf = (c: ClusterRecord): ClusterLimits => ({
  memory: c.memory,
  cpu: c.cpu,
  nodes: c.nodes.map((n) => ({ index: n.index, memory: n.memory, cpu: n.cpu })),
});

export function withLimits(c: ClusterRecord, l: ClusterLimits): ClusterRecord {
  const of = new Map(l.nodes.map((n) => [n.index, n]));
  return {
    ...c,
    memory: l.memory,
    cpu: l.cpu,
    nodes: c.nodes.map(({ memory: _m, cpu: _c, ...n }): ClusterNode => {
      const own = of.get(n.index);
      return { ...n, ...(own?.memory !== undefined ? { memory: own.memory } : {}), ...(own?.cpu !== undefined ? { cpu: own.cpu } : {}) };
    }),
  };
}

/** The record with the update in it: the whole cluster's limit (each node's own one of that kind gives way), or one node's own. */
export function updatedLimits(c: ClusterRecord, a: { node?: number; memory?: number; cpu?: number }): ClusterLimits {
  const l = limitsOf(c);
  if (a.node === undefined) {
    return {
      memory: a.memory ?? l.memory,
      cpu: a.cpu ?? l.cpu,
      nodes: l.nodes.map((n) => ({
        index: n.index,
        memory: a.memory === undefined ? n.memory : undefined,
        cpu: a.cpu === undefined ? n.cpu : undefined,
      })),
    };
  }
  return {
    ...l,
    nodes: l.nodes.map((n) => (n.index === a.node ? { index: n.index, memory: a.memory ?? n.memory, cpu: a.cpu ?? n.cpu } : n)),
  };
}

/** The status a person reads: a running cluster whose nodes are all frozen is suspended, some frozen says how many. */
export function shownStatus(c: Pick<ClusterRecord, 'status' | 'nodes'>): string {
  const frozen = c.nodes.filter((n) => n.frozen).length;
  if (c.status !== 'running' || frozen === 0) return c.status;
  return frozen === c.nodes.length ? 'suspended' : `running, ${frozen}/${c.nodes.length} frozen`;
}

/** The cpu amount of "0.5", "2" or "500m", in millicores. */
export function parseCpus(field: string, v: string): number {
  const m = /^(\d+)m$/.exec(v);
  const n = m ? Number(m[1]) : /^\d+(\.\d+)?$/.test(v) ? Math.round(Number(v) * 1000) : NaN;
  if (!(n > 0)) throw new ValidationError(field, `${JSON.stringify(v)} is not a cpu amount; write 0.5, 2 or 500m`);
  return n;
}

const CLUSTER_NAME_RE = /^[a-z0-9][a-z0-9_.-]*$/;
// No "-": container names are user-id-node, and a dash in the user would make them ambiguous.
const USER_RE = /^[a-z_][a-z0-9_]{0,31}$/;

export function validateClusterName(field: string, v: string): string {
  if (v.length > 64) throw new ValidationError(field, `cluster names are at most 64 characters (this one has ${v.length})`);
  if (!CLUSTER_NAME_RE.test(v))
    throw new ValidationError(
      field,
      `${JSON.stringify(v)} is not a cluster name: use lower-case letters, digits, ".", "_" or "-" (no "/" or spaces), starting with a letter or digit`,
    );
  return v;
}

export function validateUser(field: string, v: string): string {
  if (!USER_RE.test(v))
    throw new ValidationError(field, `${JSON.stringify(v)} is not a user name: lower-case letters, digits or "_" (no "-"), at most 32 characters`);
  return v;
}

export function validateClusterSize(field: string, v: string | undefined): number {
  const n = v !== undefined && /^-?\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_CLUSTER_SIZE)
    throw new ValidationError(field, `${JSON.stringify(v ?? '')} is not a cluster size: a whole number from 1 to ${MAX_CLUSTER_SIZE}`);
  return n;
}

/** The node index of "2" or "host-2". */
export function validateNodeIndex(field: string, v: string): number {
  const m = /^(?:host-)?(\d+)$/.exec(v);
  if (!m || Number(m[1]) >= MAX_CLUSTER_SIZE)
    throw new ValidationError(field, `${JSON.stringify(v)} is not a node: give its index (0, 1, ...) or hostname (host-0)`);
  return Number(m[1]);
}

export const containerName = (user: string, id: number, node: number) => `${user}-${id}-${node}`;
export const nodeHostname = (node: number) => `host-${node}`;

/** The user's /24: index 1..254 within the fleet's /16 (a.b.0.0/16 gives a.b.index.0/24). */
export function userSubnet(network: string, index: number): string {
  // Callers count 1..254: anything else is a bug.
  if (!Number.isInteger(index) || index < 1 || index > 254) throw new InternalError(`subnet index ${index} is out of 1..254`);
  const [a, b] = network.split('.');
  return `${a}.${b}.${index}.0/24`;
}

/** Address .n of a /24 (the gateway is .1, nodes take .2 to .254). */
export function subnetAddress(subnet: string, n: number): string {
  return `${subnet.split('.').slice(0, 3).join('.')}.${n}`;
}

export const subnetGateway = (subnet: string) => subnetAddress(subnet, 1);

/**
 * A node's MAC, from its address: locally administered (02:), the same on whichever host the node runs, so the
 * other nodes' ARP entries stay right when it migrates.
 */
export function nodeMac(ip: string): string {
  const octets = ip.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) throw new InternalError(`${ip} is not an IPv4 address`);
  return ['02', '6b', ...octets.map((o) => o.toString(16).padStart(2, '0'))].join(':');
}
export const subnetBroadcast = (subnet: string) => subnetAddress(subnet, 255);

/** The cluster's /etc/hosts: "ip host-N host-N.cluster" for every node, bind-mounted read-only into each. */
export function hostsFile(cluster: string, nodes: readonly { hostname: string; ip: string }[]): string {
  const lines = ['127.0.0.1 localhost', ...[...nodes].map((n) => `${n.ip} ${n.hostname} ${n.hostname}.${cluster}`)];
  return `${lines.join('\n')}\n`;
}

/** Authorized keys only: a private key is refused, so none is ever mounted into a node. */
export function validateAuthorizedKeys(field: string, text: string): string {
  if (/PRIVATE KEY/.test(text)) throw new ValidationError(field, 'holds a private key; give the public keys (authorized_keys) only');
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const l of lines)
    if (!/^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-\S+)\s+[A-Za-z0-9+/=]+/.test(l) && !/^\S+.*\s(ssh-|ecdsa-)/.test(l))
      throw new ValidationError(field, `${JSON.stringify(l.slice(0, 40))} is not an authorized_keys line`);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/**
 * The clusters that a join of host in mode acts on: recovery starts this host's nodes of those that were running
 * (whatever their home), new deletes the clusters whose home it is.
 */
export function clustersToInit(clusters: readonly ClusterRecord[], host: string, mode: 'new' | 'recovery'): ClusterRecord[] {
  if (mode === 'new') return clusters.filter((c) => c.host === host);
  return clusters.filter((c) => c.status === 'running' && (c.host === host || c.nodes.some((n) => n.host === host)));
}
