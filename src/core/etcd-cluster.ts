import { ValidationError } from './errors.js';

/**
 * A join token: `knarr1.<sha256 of the fleet CA certificate, hex>.<32-byte secret, base64url>`. The
 * hash lets a joining host check whom it talks to (as kubeadm's discovery hash); the secret is the
 * private key of the join CA, which etcd trusts for client certificates.
 */
export interface JoinToken {
  caHash: string;
  secret: Buffer;
}

const TOKEN_PREFIX = 'knarr1';

export function formatJoinToken(t: JoinToken): string {
  return `${TOKEN_PREFIX}.${t.caHash}.${t.secret.toString('base64url')}`;
}

export function parseJoinToken(field: string, text: string): JoinToken {
  const parts = text.trim().split('.');
  const fix = 'copy it whole from `knarr etcd token` on a member';
  if (parts.length !== 3 || parts[0] !== TOKEN_PREFIX) throw new ValidationError(field, `not a knarr join token (knarr1.<ca-hash>.<secret>): ${fix}`);
  const [, caHash, secret] = parts as [string, string, string];
  if (!/^[0-9a-f]{64}$/.test(caHash)) throw new ValidationError(field, `the CA hash in the token is not 64 hex digits: ${fix}`);
  const bytes = Buffer.from(secret, 'base64url');
  if (bytes.length !== 32 || bytes.toString('base64url') !== secret)
    throw new ValidationError(field, `the secret in the token is not 32 bytes of base64url: ${fix}`);
  return { caHash, secret: bytes };
}

/** An etcd client URL to join through: https://HOST:PORT. */
export function validateJoinUrl(field: string, url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ValidationError(field, `${JSON.stringify(url)} is not a URL; give a member's client URL, e.g. https://10.0.0.1:2379`);
  }
  if (u.protocol !== 'https:' || !u.port || u.pathname.replace(/\/$/, '') !== '' || u.search || u.hash || u.username) {
    throw new ValidationError(field, `${JSON.stringify(url)} is not https://HOST:PORT; a managed etcd cluster speaks TLS (see knarr etcd status on a member)`);
  }
  return `https://${u.host}`;
}

/** An IPv4 or IPv6 address to listen on and advertise; never a wildcard (peers must be able to dial it). */
export function validateAdvertiseIp(field: string, ip: string): string {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  const ok = v4 ? v4.slice(1).every((n) => Number(n) <= 255) : /^[0-9a-fA-F:]+$/.test(ip) && ip.includes(':');
  if (!ok) throw new ValidationError(field, `${JSON.stringify(ip)} is not an IP address; give this host's address the other members reach, e.g. 10.0.0.1`);
  if (ip === '0.0.0.0' || ip === '::') throw new ValidationError(field, `${ip} is a wildcard; give the address the other members dial`);
  return ip;
}

/** host:port with IPv6 brackets. */
export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** A member as `etcdctl member list -w json` reports it (IDs as decimal strings, names empty until it starts). */
export interface RawMember {
  ID: string | number;
  name?: string;
  peerURLs?: string[];
  clientURLs?: string[];
  isLearner?: boolean;
}

export interface MemberRow {
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  learner: boolean;
  started: boolean;
  leader: boolean;
  healthy: boolean;
  dbBytes: number | null;
  error: string | null;
}

/** etcdctl prints member IDs as uint64 numbers that JSON.parse rounds; the hex form is what etcdctl takes. */
export function memberIdHex(id: string | number | bigint): string {
  return BigInt(id).toString(16);
}

/** `--initial-cluster` for a member joining: every started member plus itself. */
export function initialCluster(members: readonly RawMember[], self: { name: string; peerUrl: string }): string {
  const others = members.filter((m) => m.name && m.name !== self.name && (m.peerURLs?.length ?? 0) > 0);
  return [...others.flatMap((m) => m.peerURLs!.map((u) => `${m.name}=${u}`)), `${self.name}=${self.peerUrl}`].join(',');
}

/** True when removing one voter leaves fewer healthy voters than the quorum of what remains. */
export function removeBreaksQuorum(members: readonly MemberRow[], removeId: string): boolean {
  const target = members.find((m) => m.id === removeId);
  if (!target || target.learner) return false;
  const voters = members.filter((m) => !m.learner && m.id !== removeId);
  const healthy = voters.filter((m) => m.healthy).length;
  return voters.length === 0 || healthy < Math.floor(voters.length / 2) + 1;
}

/** etcd's answers to a membership change that a later try can get past. */
const RETRYABLE = [
  'too many learner members',
  'unhealthy cluster',
  'not enough started members',
  'in sync with leader',
  'leader changed',
  'no leader',
  'timed out',
  'deadline exceeded',
  'connection refused',
  'unavailable',
];

export function retryableMembershipError(message: string): boolean {
  const m = message.toLowerCase();
  return RETRYABLE.some((r) => m.includes(r));
}

/** Backoff for the n-th retry (0-based): 200 ms doubling to 3 s, with jitter so joiners do not retry in step. */
export function backoffMs(n: number, random = Math.random): number {
  return Math.round(Math.min(3000, 200 * 2 ** n) * (0.5 + random()));
}
