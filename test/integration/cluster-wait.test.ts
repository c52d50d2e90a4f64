import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { fleetKeys } from '../../src/state/keys.js';
import { OpRepo } from '../../src/state/ops.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('cluster commands wait for their operation', haveTools('etcd'), 'needs etcd (etcd-server)');

describe.skipIf(!run)('without --detach, a cluster command exits 0 only when its operation is done', () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  let store: Store;
  let env: Record<string, string>;
  const fleet = 'wait';
  const keys = fleetKeys(fleet);
  const k = (argv: string[]) => knarr(argv, { env });
  const ops = async () => new OpRepo(store, fleet).list();
  /** A cluster whose nodes are on host h9, another host of the fleet. */
  const clusterOnH9 = async (name: string) => {
    const now = new Date().toISOString();
    await store.put(
      keys.cluster('alice', name),
      JSON.stringify({
        id: 7,
        name,
        user: 'alice',
        status: 'running',
        image: 'base',
        pool: 'nodes',
        host: 'h9',
        subnet: '10.1.2.0/24',
        memory: 0,
        cpu: 0,
        nodes: [],
        op: 'op-000000',
        createdAt: now,
        updatedAt: now,
      }),
    );
  };

  beforeAll(async () => {
    tmp = await tempDir('knarr-cluster-wait-');
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
    env = { KNARR_STATE_DIR: `${tmp.path}/state`, KNARR_ETCD: etcd.url, KNARR_FLEET: fleet, KNARR_USER: 'alice' };
    const now = new Date().toISOString();
    await store.put(
      keys.host('h9'),
      JSON.stringify({
        name: 'h9',
        address: 'http://127.0.0.1:9',
        dockerEndpoint: 'unix:///nowhere',
        tags: [],
        capacity: { cpu: 1000, memory: 1 << 30 },
        load: { runningJobs: 0, freeMemory: 1 << 30 },
        state: 'ok',
        joinedAt: now,
        updatedAt: now,
      }),
    );
  });

  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it('an operation no agent would run is refused before it is queued; --detach queues it', async () => {
    await clusterOnH9('far');
    const stop = await k(['cluster', 'stop', 'far']);
    expect(stop.code).toBe(5);
    expect(stop.stderr).toMatch(/host h9 has no agent up to run cluster\.stop; nothing was queued/);
    expect(stop.stderr).toMatch(/--detach/);
    expect(await ops()).toEqual([]);

    const queued = await k(['--json', 'cluster', 'stop', 'far', '--detach']);
    expect(queued.code, queued.stderr).toBe(0);
    expect(queued.json()).toMatchObject({ kind: 'cluster.stop', host: 'h9', status: 'queued' });
  });

  it('an agent that goes away while the command waits: the command fails, naming the operation left queued', async () => {
    await clusterOnH9('near');
    // The agent of h9 is up for two more seconds, then its lease lapses as a killed agent's does.
    const lease = await store.grantLease(2);
    await store.put(keys.hostAlive('h9'), '{}', lease);
    const started = Date.now();
    const r = await k(['cluster', 'start', 'near']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the agent of h9 went away before op-\d+ \(cluster\.start\) ended/);
    expect(Date.now() - started).toBeLessThan(20_000);
    const op = (await ops()).find((o) => o.kind === 'cluster.start');
    expect(op?.status).toBe('queued');
  }, 30_000);
});
