import { randomInt } from 'node:crypto';
import { execa } from 'execa';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { knarr, type CliRun } from './cli.js';
import { startEtcd, type EtcdInstance } from './etcd.js';
import { pickNetwork } from './net.js';
import { tempDir, type TempDir } from './tmp.js';

/** One host's world for real LXC clusters: a private etcd, state dir, cluster bridge and network, a dir pool "nodes" and the image "base". */
export interface ClusterWorld {
  tmp: TempDir;
  etcd: EtcdInstance;
  store: Store;
  /** The environment every knarr command of the test runs with. */
  env: Record<string, string>;
  lxcPath: string;
  /** The dir pool's mountpoint, where nodes' volumes (knarr-clusters/) and users' files (knarr-users/) are. */
  poolDir: string;
  bridge: string;
  k(argv: string[]): Promise<CliRun>;
  /** The containers under the world's LXC path, sorted. */
  lxcLs(): Promise<string[]>;
  /** Runs cmd in a node, its stdout. */
  attach(container: string, ...cmd: string[]): Promise<string>;
  /** Thaws and stops every node, then removes the bridge, etcd and the state; safe after a half-made world. */
  teardown(): Promise<void>;
}

/** Makes the world (fleet and user as named) and checks its pool and image came; a failure part-way tears down what was made. */
export async function clusterWorld(prefix: string, fleet: string, user: string, extraEnv: Record<string, string> = {}): Promise<ClusterWorld> {
  const tmp = await tempDir(prefix);
  const parts: Partial<ClusterWorld> = { tmp };
  const lxcPath = `${tmp.path}/state/lxc`;
  const lxcLs = async () => (await execa('lxc-ls', ['-P', lxcPath, '-1'], { reject: false })).stdout.split('\n').filter(Boolean).sort();
  const bridge = `kw${randomInt(36 ** 4)
    .toString(36)
    .padStart(4, '0')}`;
  const teardown = async () => {
    for (const name of await lxcLs()) {
      await execa('lxc-unfreeze', ['-P', lxcPath, '-n', name], { reject: false });
      await execa('lxc-stop', ['-P', lxcPath, '-n', name, '-k'], { reject: false });
    }
    await execa('ip', ['link', 'del', bridge], { reject: false });
    await parts.store?.close();
    await parts.etcd?.stop();
    await tmp.cleanup();
  };
  try {
    const etcd = (parts.etcd = await startEtcd());
    const store = (parts.store = await connectEtcd([etcd.url]));
    const env: Record<string, string> = {
      KNARR_STATE_DIR: `${tmp.path}/state`,
      KNARR_ETCD: etcd.url,
      KNARR_FLEET: fleet,
      KNARR_CLUSTER_NETWORK: await pickNetwork(),
      KNARR_CLUSTER_BRIDGE: bridge,
      KNARR_USER: user,
      DOCKER_HOST: `unix://${tmp.path}/no-docker.sock`,
      ...extraEnv,
    };
    const k = (argv: string[]) => knarr(argv, { env });
    for (const argv of [
      ['pool', 'init', '--name', 'nodes', '--driver', 'dir'],
      ['image', 'import', 'base', '--busybox'],
    ]) {
      const r = await k(argv);
      if (r.code !== 0) throw new Error(`knarr ${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
    }
    return {
      tmp,
      etcd,
      store,
      env,
      lxcPath,
      poolDir: `${tmp.path}/state/mnt/nodes`,
      bridge,
      k,
      lxcLs,
      attach: async (container, ...cmd) => (await execa('lxc-attach', ['-P', lxcPath, '-n', container, '--', ...cmd])).stdout,
      teardown,
    };
  } catch (e) {
    await teardown().catch(() => undefined);
    throw e;
  }
}
