import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { EtcdTlsFiles } from './etcd-pki.js';
import { setTimeout as sleep } from 'node:timers/promises';

/** What knarr records about the etcd process it manages on this host. */
export interface EtcdServerState {
  pid: number | null;
  name: string;
  clientUrl: string;
  peerUrl: string;
  /** Unix socket the server also listens on. */
  socket: string;
  dataDir: string;
  /** Pool whose volume holds the data, or null for a plain directory. */
  pool: string | null;
  logFile: string;
  startedAt: string | null;
  /** A cluster member speaks TLS with these files; absent or null for the plain one-member etcd on 127.0.0.1. */
  tls?: EtcdTlsFiles | null;
  /** Where it listens for clients: clientUrl and, off loopback, 127.0.0.1 too. */
  listenClientUrls?: string[];
  /** --initial-cluster and its state for the first start; etcd ignores both once it has data. */
  initialCluster?: string;
  clusterState?: 'new' | 'existing';
  /** Every member's client URL, this member's first: where knarr's clients go. */
  endpoints?: string[];
  /** A voter with the CA key sealed in etcd: nothing left of its join to finish. */
  settled?: boolean;
}

/** The client side of a TLS member: the fleet CA and knarr's client certificate (contents). */
export interface ClientTls {
  ca: string;
  cert: string;
  key: string;
}

export function clientTls(files: EtcdTlsFiles): ClientTls {
  return { ca: readFileSync(files.caCert, 'utf8'), cert: readFileSync(files.clientCert, 'utf8'), key: readFileSync(files.clientKey, 'utf8') };
}

export const ETCD_MEMBER_NAME = 'knarr';
/** etcd names a unix listener's socket file after host:port, relative to its working directory. */
export const ETCD_SOCKET_LISTEN = 'unix://etcd.sock:0';
export const ETCD_SOCKET_FILE = 'etcd.sock:0';

export function etcdArgv(
  s: Pick<EtcdServerState, 'name' | 'clientUrl' | 'peerUrl' | 'dataDir' | 'tls' | 'listenClientUrls' | 'initialCluster' | 'clusterState'>,
): string[] {
  // A cluster member speaks TLS to clients and peers, each side proving itself with a certificate of the fleet CA.
  const tls = s.tls
    ? [
        '--cert-file',
        s.tls.memberCert,
        '--key-file',
        s.tls.memberKey,
        '--client-cert-auth',
        '--trusted-ca-file',
        s.tls.trusted,
        '--peer-cert-file',
        s.tls.memberCert,
        '--peer-key-file',
        s.tls.memberKey,
        '--peer-client-cert-auth',
        '--peer-trusted-ca-file',
        s.tls.caCert,
      ]
    : [];
  return [
    'etcd',
    '--name',
    s.name,
    '--data-dir',
    s.dataDir,
    '--listen-client-urls',
    s.tls ? (s.listenClientUrls ?? [s.clientUrl]).join(',') : `${s.clientUrl},${ETCD_SOCKET_LISTEN}`,
    '--advertise-client-urls',
    s.clientUrl,
    '--listen-peer-urls',
    s.peerUrl,
    '--initial-advertise-peer-urls',
    s.peerUrl,
    '--initial-cluster',
    s.initialCluster ?? `${s.name}=${s.peerUrl}`,
    '--initial-cluster-state',
    s.clusterState ?? 'new',
    ...tls,
    // History older than an hour goes (an idle fleet writes little, but forever); the quota is said, so status can show it.
    '--auto-compaction-mode',
    'periodic',
    '--auto-compaction-retention',
    ETCD_COMPACTION_RETENTION,
    '--quota-backend-bytes',
    String(ETCD_QUOTA_BYTES),
  ];
}

/** How long the managed etcd keeps old revisions before it compacts them. */
export const ETCD_COMPACTION_RETENTION = '1h';
/** The managed etcd's database size limit; past it etcd raises NOSPACE and refuses writes. */
export const ETCD_QUOTA_BYTES = 2 * 1024 ** 3;

export function httpGet(url: string, timeoutMs: number, tls?: ClientTls): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? httpsRequest : request;
    const req = get(url, { method: 'GET', ...tls }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (clearTimeout(timer), resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') })));
      res.on('error', (e) => (clearTimeout(timer), reject(e)));
    });
    // A deadline for the whole answer: a socket idle timeout let a frozen member's TLS handshake take twice as long.
    const timer = setTimeout(() => req.destroy(new Error(`no answer from ${url} within ${timeoutMs}ms`)), timeoutMs);
    req.on('error', (e) => (clearTimeout(timer), reject(e)));
    req.end();
  });
}

export interface Health {
  healthy: boolean;
  version: string | null;
  error: string | null;
}

/** Asks etcd's /health and /version endpoints; never throws. */
export async function probeHealth(clientUrl: string, timeoutMs = 2000, tls?: ClientTls): Promise<Health> {
  try {
    const h = await httpGet(`${clientUrl}/health`, timeoutMs, tls);
    const healthy = h.status === 200 && /"health"\s*:\s*"true"/.test(h.body);
    let version: string | null = null;
    try {
      const v = await httpGet(`${clientUrl}/version`, timeoutMs, tls);
      version = (JSON.parse(v.body) as { etcdserver?: string }).etcdserver ?? null;
    } catch {
      /* the version is informative only */
    }
    return { healthy, version, error: healthy ? null : `unhealthy: ${h.body.trim()}` };
  } catch (e) {
    return { healthy: false, version: null, error: (e as Error).message };
  }
}

/** True when pid is a live etcd process (not a recycled pid of something else). */
export async function isEtcdProcess(pid: number | null): Promise<boolean> {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // A zombie (state Z) has exited and only waits to be reaped.
    if (/^\d+ \(.*\) Z/.test(stat)) return false;
    return cmdline.split('\0')[0]?.endsWith('etcd') ?? false;
  } catch {
    return false;
  }
}

/** Polls /health until healthy; fails early if the process dies. */
export async function waitHealthy(clientUrl: string, pid: number, timeoutMs: number, signal?: AbortSignal, tls?: ClientTls): Promise<Health> {
  const deadline = Date.now() + timeoutMs;
  let last: Health = { healthy: false, version: null, error: 'not probed' };
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    last = await probeHealth(clientUrl, 1000, tls);
    if (last.healthy) return last;
    if (!(await isEtcdProcess(pid))) return { ...last, error: 'the etcd process exited' };
    await sleep(100);
  }
  return { ...last, error: `not healthy after ${timeoutMs}ms (${last.error})` };
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
export async function stopProcess(pid: number, graceMs = 15000): Promise<'stopped' | 'killed'> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return 'stopped';
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!(await isEtcdProcess(pid))) return 'stopped';
    await sleep(50);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
  while (await isEtcdProcess(pid)) await sleep(50);
  return 'killed';
}

export async function tailFile(path: string, lines = 5): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** One call to etcd's JSON gateway (uint64s come back as strings there); throws on no answer or a non-200. */
export function etcdPost<T>(url: string, path: string, body: unknown, tls?: ClientTls, timeoutMs = 3000): Promise<T> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const post = url.startsWith('https:') ? httpsRequest : request;
    const req = post(
      `${url}${path}`,
      { method: 'POST', timeout: timeoutMs, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }, ...tls },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) return reject(new Error(`${path} answered ${res.statusCode}: ${text.trim().slice(0, 200)}`));
          try {
            resolve(JSON.parse(text) as T);
          } catch (e) {
            reject(e);
          }
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs}ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

/** True when ip is an address of this host (a listener can bind it): a member's recorded IP may be gone after a reboot. */
export function isLocalAddress(ip: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (e: NodeJS.ErrnoException) => resolve(e.code !== 'EADDRNOTAVAIL'));
    server.listen({ host: ip, port: 0, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
