import { execa, type ResultPromise } from 'execa';
import { freePort } from './ports.js';
import { tempDir, type TempDir } from './tmp.js';

export interface EtcdInstance {
  url: string;
  stop(): Promise<void>;
}

/**
 * A private etcd on free ports and its own data directory, for store tests. Clients reach it on
 * host (e.g. a netns fabric's gateway); peers stay on loopback since there is only one member.
 */
export async function startEtcd(host = '127.0.0.1'): Promise<EtcdInstance> {
  const dir: TempDir = await tempDir('knarr-etcd-');
  const client = await freePort(host);
  const peer = await freePort();
  const url = `http://${host}:${client}`;
  const proc: ResultPromise = execa(
    'etcd',
    [
      '--name',
      't',
      '--data-dir',
      `${dir.path}/data`,
      '--listen-client-urls',
      url,
      '--advertise-client-urls',
      url,
      '--listen-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-cluster',
      `t=http://127.0.0.1:${peer}`,
    ],
    { reject: false, cleanup: true, stdio: 'ignore' },
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok && (await res.text()).includes('true')) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error('test etcd did not become healthy');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      proc.kill('SIGTERM');
      await proc;
      await dir.cleanup();
    },
  };
}
