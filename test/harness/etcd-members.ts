import { execa, type ResultPromise } from 'execa';
import { freePort } from './ports.js';
import { tempDir, type TempDir } from './tmp.js';

/** A cluster of etcd members on 127.0.0.1, each a real etcd process that a test can kill, freeze or restart. */
export interface EtcdMembers {
  /** Client URLs, in member order. */
  urls: string[];
  /** SIGKILL; the member's data stays for restart(). */
  kill(i: number): Promise<void>;
  freeze(i: number): void;
  thaw(i: number): void;
  /** Starts a killed member again on its data. */
  restart(i: number): Promise<void>;
  /** The index of the member that leads now (asked of a member that answers). */
  leader(): Promise<number>;
  stop(): Promise<void>;
}

async function healthy(url: string, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok && (await res.text()).includes('true')) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > until) throw new Error(`test etcd at ${url} did not become healthy`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts n members (3 unless told) forming one cluster, and waits until each is healthy. */
export async function startEtcdMembers(n = 3): Promise<EtcdMembers> {
  const dir: TempDir = await tempDir('knarr-etcd-members-');
  const clients = await Promise.all(Array.from({ length: n }, () => freePort()));
  const peers = await Promise.all(Array.from({ length: n }, () => freePort()));
  const urls = clients.map((p) => `http://127.0.0.1:${p}`);
  const cluster = peers.map((p, i) => `m${i}=http://127.0.0.1:${p}`).join(',');
  const procs: (ResultPromise | null)[] = Array.from({ length: n }, () => null);
  const frozen = new Set<number>();
  const spawn = (i: number) => {
    procs[i] = execa(
      'etcd',
      [
        '--name',
        `m${i}`,
        '--data-dir',
        `${dir.path}/m${i}`,
        '--listen-client-urls',
        urls[i]!,
        '--advertise-client-urls',
        urls[i]!,
        '--listen-peer-urls',
        `http://127.0.0.1:${peers[i]}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${peers[i]}`,
        '--initial-cluster',
        cluster,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        dir.path,
        '--heartbeat-interval',
        '100',
        '--election-timeout',
        '1000',
      ],
      { reject: false, cleanup: true, stdio: 'ignore' },
    );
  };
  for (let i = 0; i < n; i++) spawn(i);
  await Promise.all(urls.map((u) => healthy(u, 30_000)));
  const signal = (i: number, sig: NodeJS.Signals) => {
    const pid = procs[i]?.pid;
    if (pid !== undefined) process.kill(pid, sig);
  };
  return {
    urls,
    async kill(i) {
      const p = procs[i];
      if (!p) return;
      if (frozen.delete(i)) signal(i, 'SIGCONT');
      p.kill('SIGKILL');
      await p;
      procs[i] = null;
    },
    freeze(i) {
      frozen.add(i);
      signal(i, 'SIGSTOP');
    },
    thaw(i) {
      frozen.delete(i);
      signal(i, 'SIGCONT');
    },
    async restart(i) {
      if (procs[i]) return;
      spawn(i);
      await healthy(urls[i]!, 30_000);
    },
    async leader() {
      for (let tries = 0; tries < 50; tries++) {
        for (let i = 0; i < n; i++) {
          if (!procs[i] || frozen.has(i)) continue;
          try {
            const res = await fetch(`${urls[i]}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) });
            const s = (await res.json()) as { header?: { member_id?: string }; leader?: string };
            if (!s.leader || s.leader === '0') continue;
            if (s.leader === s.header?.member_id) return i;
            // Another member leads: find which by asking each for its own id.
            for (let j = 0; j < n; j++) {
              if (!procs[j] || frozen.has(j)) continue;
              const r = await fetch(`${urls[j]}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) });
              if (((await r.json()) as { header?: { member_id?: string } }).header?.member_id === s.leader) return j;
            }
          } catch {
            /* that member does not answer */
          }
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('no etcd member leads');
    },
    async stop() {
      for (const i of [...frozen]) signal(i, 'SIGCONT');
      frozen.clear();
      await Promise.all(
        procs.map(async (p) => {
          if (!p) return;
          p.kill('SIGKILL');
          await p;
        }),
      );
      await dir.cleanup();
    },
  };
}
