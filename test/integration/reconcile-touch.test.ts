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
  /** Run once right after the reconciler's next listing of the jobs: another host acting in the middle of a pass. */
  let afterJobsListed: (() => Promise<void>) | null = null;
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
          const hook = afterJobsListed;
          if (prop === 'list' && String(args[0]).endsWith('/jobs/') && hook) {
            afterJobsListed = null;
            return (v.apply(target, args) as Promise<unknown>).then(async (listed) => (await hook(), listed));
          }
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
      // (The web touch may still be reporting what it started: a full pass waits it out first.)
      await r.converge();
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

  it('a pass on a stale listing never overwrites the report of the host the job moved to', async () => {
    const jobs = new JobRepo(store, 'g');
    const spec = parseJobSpec({ name: 'moving', image: d.image, command: ['sleep', '3600'], network: 'none', daemonize: true }, 'job');
    await jobs.createIntent('moving', { spec, host: 'hb', managed: true, createdAt: new Date().toISOString() });
    const theirs = { host: 'ha', container: 'c'.repeat(64), state: 'running' as const, startedAt: new Date().toISOString(), generation: 0 };
    // Listed as placed on hb; then ha takes it back and reports its running copy before hb's start ends.
    afterJobsListed = async () => {
      expect(await jobs.updateIntent('moving', (cur) => ({ ...cur, host: 'ha' }))).not.toBeNull();
      await jobs.putActual('moving', theirs);
    };
    const log: string[] = [];
    const r = new Reconciler(
      { host: 'hb', fleet: 'g', serviceAddress: '127.0.0.1', prune: false, dotBinds: async () => [] },
      new DockerEngine(d.socket, false),
      jobs,
      new HostRepo(store, 'g'),
      { direct: true },
      (l) => log.push(l),
    );
    try {
      await r.converge();
      expect(afterJobsListed).toBeNull();
      expect(await jobs.actual('moving'), log.join('\n')).toEqual(theirs);
      expect((await jobs.services()).filter((s) => s.job === 'moving')).toEqual([]);
      expect((await jobs.history('moving')).filter((e) => e.host === 'hb' && e.event === 'started')).toEqual([]);
    } finally {
      r.stop();
      await d.docker('rm', '-f', 'knarr-moving').catch(() => undefined);
    }
  }, 60_000);
});
