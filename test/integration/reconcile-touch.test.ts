import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJobSpec } from '../../src/core/job-spec.js';
import { Reconciler } from '../../src/daemon/reconcile.js';
import { DockerEngine } from '../../src/host/docker.js';
import { HostRepo } from '../../src/state/hosts.js';
import { JobRepo } from '../../src/state/jobs.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { haveDockerd, startDockerd, type Dockerd } from '../harness/dockerd.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('reconcile one job', haveTools('etcd') && haveDockerd(), 'etcd, dockerd, docker or busybox-static is missing');

describe.skipIf(!run)("a docker event touches only its job's keys", () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  let d: Dockerd;
  let store: Store;
  /** Every key or prefix the reconciler read, in order: the real store, counted. */
  const reads: string[] = [];
  beforeAll(async () => {
    tmp = await tempDir('knarr-touch-');
    etcd = await startEtcd();
    d = await startDockerd(`${tmp.path}/docker`);
    const real = await connectEtcd([etcd.url]);
    store = new Proxy(real, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (prop === 'get' || prop === 'list' || prop === 'getVersioned') reads.push(String(args[0]));
          return v.apply(target, args);
        };
      },
    });
  }, 120_000);
  afterAll(async () => {
    await store?.close();
    await d?.stop();
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it('touch(job) reads that job only and makes its container again; a full pass reads the fleet', async () => {
    const jobs = new JobRepo(store, 'f');
    for (const name of ['web', 'other']) {
      const spec = parseJobSpec({ name, image: d.image, command: ['sleep', '3600'], network: 'none', daemonize: true, host: 'h' }, 'job');
      await jobs.createIntent(name, { spec, host: 'h', managed: true, createdAt: new Date().toISOString() });
    }
    const engine = new DockerEngine(d.socket, false);
    const log: string[] = [];
    const r = new Reconciler(
      { host: 'h', fleet: 'f', serviceAddress: '127.0.0.1', prune: false, dotBinds: async () => [] },
      engine,
      jobs,
      new HostRepo(store, 'f'),
      { direct: true },
      (l) => log.push(l),
    );
    try {
      await r.converge();
      expect(await d.docker('ps', '-q', '--filter', 'name=knarr-web')).not.toBe('');
      expect(reads.some((k) => k.includes('/hosts/'))).toBe(true);

      await d.docker('rm', '-f', 'knarr-web');
      reads.length = 0;
      r.touch('web');
      await eventually(async () => expect(await d.docker('ps', '-q', '--filter', 'name=knarr-web')).not.toBe(''));
      expect(reads.length).toBeGreaterThan(0);
      // Only the job's own keys (and the fleet's event log it appends "started" to): no other job, no host, no list of the fleet.
      const foreign = reads.filter((k) => !/\/web(\/|$)/.test(k) && !k.startsWith('/knarr/f/events/'));
      expect(foreign, log.join('\n')).toEqual([]);

      // A job this fleet does not have: its two keys are read, nothing is made or written.
      reads.length = 0;
      const before = await d.docker('ps', '-aq');
      r.touch('ghost');
      await r.converge().then(() => undefined);
      expect(reads.slice(0, 2).every((k) => k.endsWith('/ghost'))).toBe(true);
      expect(await d.docker('ps', '-aq')).toBe(before);
    } finally {
      r.stop();
    }
  }, 60_000);
});
