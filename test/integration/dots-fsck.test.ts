import { hostname } from 'node:os';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHost, type TestDriver, type TestHost } from '../harness/hosts.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { zfsAnswers, zfsRetrying } from '../harness/zfs.js';

const ready: Record<'zfs' | 'dir', [boolean, string]> = {
  zfs: [(await zfsAnswers()) && haveTools('etcd', 'etcdctl'), 'zpool does not answer, or etcd/etcdctl missing'],
  dir: [haveTools('etcd', 'etcdctl'), 'etcd or etcdctl missing'],
};

for (const driver of ['zfs', 'dir'] as TestDriver[]) {
  const run = integration(`dot fsck on ${driver}`, ...ready[driver as 'zfs' | 'dir']);
  describe.skipIf(!run)(`knarr dot fsck on ${driver}`, () => {
    let tmp: TempDir;
    let host: TestHost;
    let endpoint: string;
    const etcdctl = (...args: string[]) => execa('etcdctl', ['--endpoints', endpoint, ...args], { env: { ETCDCTL_API: '3' } });
    const keyRoot = `/knarr/default/hostdata/${hostname()}`;
    beforeAll(async () => {
      tmp = await tempDir(`knarr-fsck-${driver}-`);
      host = await makeHost(tmp.path, driver, 'h');
      endpoint = (await host.run(['--json', 'etcd', 'status'])).json().endpoints[0];
    });
    afterAll(async () => {
      await host?.teardown();
      await tmp?.cleanup();
    });

    it('reports a commit recorded on disk but missing from etcd, and --repair mends it', async () => {
      const dot = uniqueName('f');
      await host.run(['dot', 'init', dot]);
      await host.run(['dot', 'commit', dot, '-m', 'one']);
      const two = (await host.run(['--json', 'dot', 'commit', dot, '-m', 'two'])).json();
      // The crash between the snapshot and the store write: the record and the head move are lost.
      await etcdctl('del', `${keyRoot}/dot-commits/${dot}/${two.id}`);
      const rec = JSON.parse((await etcdctl('get', `${keyRoot}/dots/${dot}`, '--print-value-only')).stdout);
      rec.branches.master.head = two.parent;
      await etcdctl('put', `${keyRoot}/dots/${dot}`, JSON.stringify(rec));

      const found = await host.run(['--json', 'dot', 'fsck']);
      expect(found.code).toBe(1);
      expect(found.json().findings).toEqual([expect.objectContaining({ dot, problem: 'commit-not-in-store', repairable: true, repaired: false })]);
      const fixed = await host.run(['--json', 'dot', 'fsck', '--repair']);
      expect(fixed.code, fixed.stderr).toBe(0);
      const log = await host.run(['--json', 'dot', 'log', dot]);
      expect(log.json().map((c: { message: string }) => c.message)).toEqual(['two', 'one']);
      expect((await host.run(['dot', 'fsck'])).code).toBe(0);
    });

    it("reports data deleted behind knarr's back (and cannot repair it)", async () => {
      const dot = uniqueName('g');
      await host.run(['dot', 'init', dot]);
      await host.run(['dot', 'commit', dot, '-m', 'one']);
      if (driver === 'zfs') await zfsRetrying(['destroy', '-r', `${host.pool}/knarr-dots/${dot}`]);
      else await execa('rm', ['-rf', `${host.mountpoint}/knarr-dots/${dot}`]);
      const found = await host.run(['--json', 'dot', 'fsck', '--repair']);
      expect(found.code).toBe(1);
      expect(found.json().findings).toEqual([expect.objectContaining({ dot, problem: 'data-missing', repaired: false })]);
      // The operator drops the record knowingly.
      expect((await host.run(['dot', 'rm', dot])).code).toBe(0);
      expect((await host.run(['dot', 'fsck'])).code).toBe(0);
    });

    it('rebuilds the record of a dot the store lost', async () => {
      const dot = uniqueName('h');
      await host.run(['dot', 'init', dot]);
      await host.run(['dot', 'commit', dot, '-m', 'kept']);
      await etcdctl('del', '--prefix', `${keyRoot}/dot-commits/${dot}/`);
      await etcdctl('del', `${keyRoot}/dots/${dot}`);
      expect((await host.run(['dot', 'show', dot])).code).toBe(3);
      const found = await host.run(['--json', 'dot', 'fsck']);
      expect(found.json().findings).toEqual([expect.objectContaining({ dot, problem: 'dot-not-in-store' })]);
      expect((await host.run(['dot', 'fsck', '--repair'])).code).toBe(0);
      const log = await host.run(['--json', 'dot', 'log', dot]);
      expect(log.json().map((c: { message: string }) => c.message)).toEqual(['kept']);
    });
  });
}
