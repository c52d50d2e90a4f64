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
  createdAt: string;
  updatedAt: string;
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

/** The clusters of host that a join in mode acts on: recovery starts those that were running, new deletes them all. */
export function clustersToInit(clusters: readonly ClusterRecord[], host: string, mode: 'new' | 'recovery'): ClusterRecord[] {
  return clusters.filter((c) => c.host === host && (mode === 'new' || c.status === 'running'));
}
