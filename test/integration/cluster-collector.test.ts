import { existsSync, writeFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { fleetKeys } from '../../src/state/keys.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { pickNetwork } from '../harness/net.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'the cluster collector',
  process.getuid?.() === 0 && haveTools('lxc-start', 'lxc-attach', 'lxc-ls', 'busybox', 'ip', 'etcd'),
  'needs root, lxc, busybox-static, iproute2 and etcd (Debian packages lxc, busybox-static, iproute2, etcd-server)',
);
const bin = new URL('../../bin/knarr', import.meta.url).pathname;

/**
 * A cluster whose record went while its nodes stayed (a host that was away when it was deleted, a
 * crash no operation resumes): the agent's collector removes its containers, volumes and hosts file,
 * and says so; a cluster that has its record is never touched.
 */
describe.skipIf(!run)("the agent's collector of cluster parts no cluster owns (real LXC)", () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  let store: Store;
  let env: Record<string, string>;
  let lxcPath: string;
  let poolDir: string;
  let bridge: string;
  let agent: ResultPromise | undefined;
  const fleet = 'collector';
  const k = (argv: string[]) => knarr(argv, { env });
  const lxcLs = async () => (await execa('lxc-ls', ['-P', lxcPath, '-1'], { reject: false })).stdout.split('\n').filter(Boolean).sort();

  beforeAll(async () => {
    tmp = await tempDir('knarr-collector-');
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
    bridge = `kq${randomInt(36 ** 4)
      .toString(36)
      .padStart(4, '0')}`;
    const tokenFile = `${tmp.path}/agent.token`;
    writeFileSync(tokenFile, 'collector-test-token\n', { mode: 0o600 });
    env = {
      KNARR_STATE_DIR: `${tmp.path}/state`,
      KNARR_ETCD: etcd.url,
      KNARR_FLEET: fleet,
      KNARR_CLUSTER_NETWORK: await pickNetwork(),
      KNARR_CLUSTER_BRIDGE: bridge,
      KNARR_USER: 'carol',
      KNARR_AGENT_TOKEN_FILE: tokenFile,
      DOCKER_HOST: `unix://${tmp.path}/no-docker.sock`,
    };
    lxcPath = `${tmp.path}/state/lxc`;
    poolDir = `${tmp.path}/state/mnt/nodes`;
    expect((await k(['pool', 'init', '--name', 'nodes', '--driver', 'dir'])).code).toBe(0);
    const img = await k(['image', 'import', 'base', '--busybox']);
    expect(img.code, img.stderr).toBe(0);
  }, 60_000);

  afterAll(async () => {
    agent?.kill('SIGKILL');
    await agent;
    for (const name of lxcPath ? await lxcLs() : []) await execa('lxc-stop', ['-P', lxcPath, '-n', name, '-k'], { reject: false });
    if (bridge) await execa('ip', ['link', 'del', bridge], { reject: false });
    await store?.close();
    await etcd?.stop();
    await tmp?.cleanup();
  }, 60_000);

  it('removes the nodes, volumes and hosts file of a cluster with no record, after two passes; leaves a cluster that has one', async () => {
    for (const name of ['gone', 'kept']) {
      const r = await k(['cluster', 'create', name, '--size', '2']);
      expect(r.code, r.stderr).toBe(0);
    }
    const gone = (await k(['--json', 'cluster', 'show', 'gone'])).json() as { id: number; nodes: { container: string }[] };
    const kept = (await k(['--json', 'cluster', 'show', 'kept'])).json() as { id: number; nodes: { container: string }[] };
    // The record goes behind knarr's back: as if deleted while this host was away.
    expect(await store.delete(fleetKeys(fleet).cluster('carol', 'gone'))).toBe(true);

    const port = await freePort();
    const started = Date.now();
    agent = execa(bin, ['daemon', '--listen', `127.0.0.1:${port}`, '--collect-every', '2', '--ttl', '2'], {
      env: { ...process.env, ...env },
      reject: false,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    await eventually(async () => expect(await lxcLs()).toEqual(kept.nodes.map((n) => n.container).sort()), 40_000, 500);
    // Never at its first sighting: two passes at least 10 s apart.
    expect(Date.now() - started).toBeGreaterThan(9_000);
    for (const n of gone.nodes) expect(existsSync(`${poolDir}/knarr-clusters/${n.container}`), n.container).toBe(false);
    for (const n of kept.nodes) expect(existsSync(`${poolDir}/knarr-clusters/${n.container}`), n.container).toBe(true);
    expect(existsSync(`${poolDir}/knarr-users/carol/hosts/${gone.id}`)).toBe(false);
    expect(existsSync(`${poolDir}/knarr-users/carol/hosts/${kept.id}`)).toBe(true);

    // What it removed is in the host's record, and in the fleet's events.
    const [host] = (await k(['--json', 'host', 'list'])).json() as { name: string }[];
    await eventually(async () => {
      const shown = (await k(['--json', 'host', 'show', host!.name])).json() as { collected?: { removed: string[] } };
      expect(shown.collected?.removed).toEqual(expect.arrayContaining(gone.nodes.map((n) => `container ${n.container}`)));
    }, 10_000);
    const events = (await k(['--json', 'events', '--kind', 'host'])).json() as { event: string; message: string }[];
    expect(events.some((e) => e.event === 'collected' && e.message.includes(gone.nodes[0]!.container))).toBe(true);
    // The cluster that has its record still runs.
    const still = (await k(['cluster', 'exec', 'kept', '1', '--', 'hostname'])).stdout;
    expect(still.trim()).toBe('host-1');
  }, 120_000);
});
