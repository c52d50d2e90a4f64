import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';

const run = integration('pool-destroy', haveTools('etcd', 'busybox'), 'etcd or busybox-static is missing (Debian packages etcd-server, busybox-static)');
const runZfs = run && integration('pool-destroy on zfs', await zfsAnswers(), 'zpool does not answer (Debian package zfs-fuse; start zfs-fuse)');

/** pool destroy refuses a pool that holds knarr's data unless --force, and leaves no empty mountpoint behind. */
describe.skipIf(!run)('pool destroy of a pool in use', () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  const zpools: string[] = [];
  beforeAll(async () => {
    tmp = await tempDir('knarr-pool-destroy-');
    etcd = await startEtcd();
  });
  afterAll(async () => {
    for (const p of zpools) await destroyPoolQuietly(p);
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it('a dir pool with a dot, an image and a cluster volume: listed and refused; --force destroys it all', async () => {
    const state = `${tmp.path}/dir-state`;
    const k = (argv: string[]) => knarr(['--etcd', etcd.url, '--state-dir', state, ...argv]);
    expect((await k(['pool', 'init', '--name', 'used', '--driver', 'dir'])).code).toBe(0);
    expect((await k(['dot', 'init', 'site'])).code).toBe(0);
    const img = await k(['image', 'import', 'base', '--busybox']);
    expect(img.code, img.stderr).toBe(0);
    // Where cluster create puts a node's volume (LXC itself is not needed to see it).
    const mnt = `${state}/mnt/used`;
    mkdirSync(`${mnt}/knarr-clusters/alice-c1-1/upper`, { recursive: true });
    writeFileSync(`${mnt}/knarr-clusters/alice-c1-1/upper/data`, 'node data');

    const refused = await k(['pool', 'destroy', 'used', '--yes']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(
      /pool used holds dots site; images base; cluster volumes alice-c1-1\n  hint: remove them first .*knarr pool destroy used --yes --force/,
    );
    const json = await k(['--json', 'pool', 'destroy', 'used', '--yes']);
    expect(JSON.parse(json.stderr).error).toMatchObject({ dots: ['site'], images: ['base'], clusterVolumes: ['alice-c1-1'], etcd: false });
    expect(readdirSync(mnt).sort()).toEqual(['.knarr-pool', 'knarr-clusters', 'knarr-dots', 'knarr-images']);
    expect(existsSync(`${state}/pools/used.json`)).toBe(true);

    const forced = await k(['pool', 'destroy', 'used', '--yes', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(existsSync(mnt)).toBe(false);
    expect(existsSync(`${state}/pools/used.json`)).toBe(false);
    // What went with the pool is no longer listed as there.
    expect((await k(['--json', 'dot', 'list'])).json()).toEqual([]);
    expect((await k(['--json', 'image', 'list'])).json()).toEqual([]);
  });

  it('the managed etcd: refused while it runs, listed once it is down; an empty pool goes without --force', async () => {
    const state = `${tmp.path}/etcd-state`;
    const k = (argv: string[]) => knarr(['--state-dir', state, ...argv]);
    expect((await k(['pool', 'init', '--name', 'store', '--driver', 'dir'])).code).toBe(0);
    const up = await k(['etcd', 'up', '--client-port', String(await freePort()), '--peer-port', String(await freePort())]);
    expect(up.code, up.stderr).toBe(0);
    try {
      const running = await k(['pool', 'destroy', 'store', '--yes']);
      expect(running.code).toBe(4);
      expect(running.stderr).toMatch(/the managed etcd keeps its data on pool store and is running/);
    } finally {
      expect((await k(['etcd', 'down'])).code).toBe(0);
    }
    const down = await k(['pool', 'destroy', 'store', '--yes']);
    expect(down.code).toBe(4);
    expect(down.stderr).toMatch(/pool store holds the managed etcd's data/);
    expect((await k(['pool', 'destroy', 'store', '--yes', '--force'])).code).toBe(0);

    expect((await k(['pool', 'init', '--name', 'empty', '--driver', 'dir'])).code).toBe(0);
    expect((await k(['pool', 'destroy', 'empty', '--yes'])).code).toBe(0);
    expect(existsSync(`${state}/mnt/empty`)).toBe(false);
  });

  it.skipIf(!runZfs)('a zfs pool with a dot: refused, then --force destroys it and its empty mountpoint goes', async () => {
    const state = `${tmp.path}/zfs-state`;
    const name = uniqueName('kpd');
    zpools.push(name);
    const k = (argv: string[], env: Record<string, string> = {}) => knarr(['--etcd', etcd.url, '--state-dir', state, ...argv], { env });
    const init = await k(['pool', 'init', '--name', name, '--driver', 'zfs', '--loop-file', `${tmp.path}/z.img`, '--size', '128M']);
    expect(init.code, init.stderr).toBe(0);
    expect((await k(['dot', 'init', 'db', '--pool', name])).code).toBe(0);

    // Configured as the default pool, zfs-fuse cannot hold nodes: with two pools that can, both are named.
    for (const p of ['nodes', 'other']) expect((await k(['pool', 'init', '--name', p, '--driver', 'dir'])).code).toBe(0);
    writeFileSync(`${tmp.path}/zfs-default.yaml`, `pool:\n  name: ${name}\n`);
    const ambiguous = await k(['image', 'import', 'base', '--busybox'], { KNARR_CONFIG: `${tmp.path}/zfs-default.yaml` });
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toMatch(
      new RegExp(`pool ${name} \\(zfs\\) cannot hold cluster nodes, and 2 pools can: nodes \\(dir\\), other \\(dir\\); --pool picks one`),
    );
    const named = await k(['image', 'import', 'base', '--busybox', '--pool', name]);
    expect(named.code).toBe(5);
    expect(named.stderr).toMatch(/hint: pools that can: nodes, other; pick one with --pool/);

    const refused = await k(['pool', 'destroy', name, '--yes']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(new RegExp(`pool ${name} holds dots db\\n`));
    expect((await execa('zpool', ['list', '-H', '-o', 'name', name], { reject: false })).exitCode).toBe(0);

    const forced = await k(['pool', 'destroy', name, '--yes', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect((await k(['--json', 'dot', 'list'])).json()).toEqual([]);
    expect((await execa('zpool', ['list', '-H', '-o', 'name', name], { reject: false })).exitCode).not.toBe(0);
    expect(existsSync(`${state}/mnt/${name}`)).toBe(false);
  });
});
