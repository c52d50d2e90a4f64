import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterRecord } from '../../src/core/cluster.js';
import type { HostRecord } from '../../src/core/hosts.js';
import { ClusterRepo } from '../../src/state/clusters.js';
import { HostRepo } from '../../src/state/hosts.js';
import { fleetKeys } from '../../src/state/keys.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('cluster plan', haveTools('etcd'), 'etcd is not installed');
const GiB = 1024 ** 3;

interface Verdict {
  host: string;
  verdict: string;
  why: string;
  nodes: number[];
}

describe.skipIf(!run)("knarr cluster plan over the fleet's hosts", () => {
  let etcd: EtcdInstance;
  let store: Store;
  const k = (argv: string[]) => knarr(['--etcd', etcd.url, ...argv], { env: { KNARR_USER: 'alice' } });
  const plan = async (argv: string[]) => {
    const r = await k(['--json', 'cluster', 'plan', 'lab', ...argv]);
    const data = r.json() as { hosts: string[]; reason: string | null; verdicts: Verdict[]; nodes: { index: number; host: string | null }[] };
    return { r, data, why: Object.fromEntries(data.verdicts.map((v) => [v.host, `${v.verdict}: ${v.why}`])) };
  };

  beforeAll(async () => {
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
    const repo = new HostRepo(store, 'default');
    const lease = await store.grantLease(120);
    const host = (name: string, freeMemory: number, over: Partial<HostRecord> = {}): HostRecord => ({
      name,
      address: `http://${name}:7946`,
      dockerEndpoint: 'unix:///var/run/docker.sock',
      tags: ['ssd'],
      capacity: { cpu: 4000, memory: 8 * GiB },
      load: { runningJobs: 0, freeMemory },
      state: 'ok',
      joinedAt: '',
      updatedAt: '',
      ...over,
    });
    for (const h of [
      host('h1', 8 * GiB),
      host('h2', 7 * GiB),
      host('h3', 6 * GiB),
      host('h4', GiB / 2),
      host('h5', 8 * GiB, { state: 'draining' }),
      host('h6', 8 * GiB),
      host('h7', 8 * GiB, { tags: [] }),
    ]) {
      await repo.put(h);
      // h6's agent is gone.
      if (h.name !== 'h6') await repo.markAlive(h.name, lease, {});
    }
    // Another user's cluster takes 4 GiB on h7 with its one node; a create under way holds 6 GiB on h3.
    const node = { index: 0, container: 'bob-1-0', hostname: 'host-0', ip: '10.240.1.2', host: 'h7', volume: 'v' };
    await new ClusterRepo(store, 'default').put({
      name: 'other',
      user: 'bob',
      status: 'running',
      memory: 4 * GiB,
      cpu: 0,
      nodes: [node],
    } as unknown as ClusterRecord);
    const ph = { host: 'h3', op: 'op-000042', container: 'carol-2-0', cluster: 'carol/x', cpu: 100, memory: 6 * GiB, at: new Date().toISOString() };
    await store.put(fleetKeys('default').placeholder(ph.host, ph.op, ph.container), JSON.stringify(ph));
  }, 30_000);
  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
  });

  it("spreads the nodes over the hosts that fit, and says why each other host took none (counting other clusters' nodes and placeholders)", async () => {
    const { r, data, why } = await plan(['--size', '4', '--memory', '2G']);
    expect(r.code, r.stderr).toBe(0);
    // h3's 6 GiB free is held by the placeholder; bob's node holds 4 GiB of h7 (its limit, more than h7 reports in use).
    expect(data.hosts).toEqual(['h1', 'h2', 'h7', 'h1']);
    expect(why).toMatchObject({
      h1: 'chosen: takes nodes 0, 3 (spread: fewest nodes of the cluster first, then the emptiest host)',
      h2: 'chosen: takes node 1 (spread: fewest nodes of the cluster first, then the emptiest host)',
      h3: 'rejected: not enough memory (0 bytes free, 2147483648 asked)',
      h4: 'rejected: not enough memory (536870912 bytes free, 2147483648 asked)',
      h5: 'rejected: host is draining',
      h6: 'rejected: host is down',
      h7: 'chosen: takes node 2 (spread: fewest nodes of the cluster first, then the emptiest host)',
    });
    const table = await k(['cluster', 'plan', 'lab', '--size', '4', '--memory', '2G']);
    expect(table.stdout.split('\n')[0]).toMatch(/^HOST\s+VERDICT\s+WHY$/);
    expect(table.stdout).toMatch(/^h3\s+rejected\s+not enough memory/m);
    const wide = await k(['-o', 'wide', 'cluster', 'plan', 'lab', '--size', '4', '--memory', '2G']);
    expect(wide.stdout).toMatch(/^h2\s+chosen\s+takes node 1 .*\s4000m\s+7G$/m);
  });

  it('packs one host first; keeps to the tags; explains each node with --per-node', async () => {
    const pack = await plan(['--size', '3', '--pack', '--memory', '1G']);
    expect(pack.r.code, pack.r.stderr).toBe(0);
    // The fullest host that fits is h7 (4 GiB held), and it takes every node while it has room.
    expect(pack.data.hosts).toEqual(['h7', 'h7', 'h7']);
    const tagged = await plan(['--size', '2', '--tag', 'ssd', '--host', 'h1']);
    expect(tagged.data.hosts).toEqual(['h1', 'h1']);
    expect(tagged.why.h7).toBe('rejected: job is pinned to h1');
    const ssd = await plan(['--size', '8', '--tag', 'ssd']);
    expect(ssd.data.hosts).not.toContain('h7');
    expect(ssd.why.h7).toBe('rejected: missing tag ssd');
    const perNode = await k(['cluster', 'plan', 'lab', '--size', '2', '--per-node']);
    expect(perNode.code, perNode.stderr).toBe(0);
    const lines = perNode.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NODE\s+HOST\s+VERDICT\s+SCORE\s+WHY$/);
    expect(lines.filter((l) => /^\d+\s/.test(l))).toHaveLength(2 * 7);
    expect(perNode.stdout).toMatch(/^1\s+h1\s+ranked-lower\s+\S+\s+has 1 node of the cluster, h2 0 \(spread evens them out\)$/m);
  });

  it('a pinned host that cannot take the nodes is named with why, and the plan exits 1', async () => {
    const { r, data } = await plan(['--size', '3', '--host', 'h4', '--memory', '256M']);
    expect(r.code).toBe(1);
    expect(data.hosts).toEqual(['h4', 'h4']);
    expect(data.reason).toBe('pinned host h4 cannot take node 2 of alice/lab (after 2 nodes placed): not enough memory (0 bytes free, 268435456 asked)');
    expect(r.stderr).toMatch(/pinned host h4 cannot take node 2 of alice\/lab/);
    const down = await plan(['--size', '1', '--host', 'h6']);
    expect(down.data.reason).toBe('pinned host h6 cannot take node 0 of alice/lab: host is down');
  });

  it('refuses bad input, naming the flag', async () => {
    const both = await k(['cluster', 'plan', 'lab', '--size', '2', '--spread', '--pack']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--spread and --pack: give one of them/);
    expect((await k(['cluster', 'plan', 'lab', '--size', '0'])).stderr).toMatch(/--size/);
    expect((await k(['cluster', 'plan', 'lab', '--size', '2', '--tag', 'a b'])).stderr).toMatch(/--tag/);
    expect((await k(['cluster', 'plan', 'lab', '--size', '2', '--memory', 'lots'])).stderr).toMatch(/--memory/);
  });
});
