import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
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
}

export const ETCD_MEMBER_NAME = 'knarr';
/** etcd names a unix listener's socket file after host:port, relative to its working directory. */
export const ETCD_SOCKET_LISTEN = 'unix://etcd.sock:0';
export const ETCD_SOCKET_FILE = 'etcd.sock:0';

export function etcdArgv(s: Pick<EtcdServerState, 'name' | 'clientUrl' | 'peerUrl' | 'dataDir'>): string[] {
  return [
    'etcd',
    '--name',
    s.name,
    '--data-dir',
    s.dataDir,
    '--listen-client-urls',
    `${s.clientUrl},${ETCD_SOCKET_LISTEN}`,
    '--advertise-client-urls',
    s.clientUrl,
    '--listen-peer-urls',
    s.peerUrl,
    '--initial-advertise-peer-urls',
    s.peerUrl,
    '--initial-cluster',
    `${s.name}=${s.peerUrl}`,
    '--initial-cluster-state',
    'new',
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

function httpGet(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs}ms`)));
    req.on('error', reject);
    req.end();
  });
}

export interface Health {
  healthy: boolean;
  version: string | null;
  error: string | null;
}

/** Asks etcd's /health and /version endpoints; never throws. */
export async function probeHealth(clientUrl: string, timeoutMs = 2000): Promise<Health> {
  try {
    const h = await httpGet(`${clientUrl}/health`, timeoutMs);
    const healthy = h.status === 200 && /"health"\s*:\s*"true"/.test(h.body);
    let version: string | null = null;
    try {
      const v = await httpGet(`${clientUrl}/version`, timeoutMs);
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
export async function waitHealthy(clientUrl: string, pid: number, timeoutMs: number, signal?: AbortSignal): Promise<Health> {
  const deadline = Date.now() + timeoutMs;
  let last: Health = { healthy: false, version: null, error: 'not probed' };
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    last = await probeHealth(clientUrl, 1000);
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
