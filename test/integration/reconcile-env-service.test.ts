import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Balancers } from '../../src/daemon/balancer.js';
import { Reconciler } from '../../src/daemon/reconcile.js';
import type { DockerEngine } from '../../src/host/docker.js';
import { HostRepo } from '../../src/state/hosts.js';
import { JobRepo, type ServiceRecord } from '../../src/state/jobs.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('reconcile and environment services', haveTools('etcd'), 'etcd is not installed (Debian package etcd-server)');

describe.skipIf(!run)("an environment's service: kept by reconcile passes, removed once its balancer's record is gone", () => {
  let etcd: EtcdInstance;
  let store: Store;
  beforeAll(async () => {
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
  });

  it("keeps the balancer's service (job '') and removes a removed job's leftover service", async () => {
    const jobs = new JobRepo(store, 'bnf');
    const svc = (name: string, job: string): ServiceRecord => ({ name, job, host: 'bnh', address: '127.0.0.1', port: 4321, protocol: 'tcp' });
    await jobs.putService(svc('bnshop', ''));
    await jobs.putService(svc('bngone-80', 'bngone'));
    // An engine with no containers: the pass is about the store's records only.
    const engine = { socketPath: '/nonexistent/docker.sock', list: async () => [] } as unknown as DockerEngine;
    const log: string[] = [];
    const r = new Reconciler(
      { host: 'bnh', fleet: 'bnf', serviceAddress: '127.0.0.1', prune: false, dotBinds: async () => [] },
      engine,
      jobs,
      new HostRepo(store, 'bnf'),
      { direct: true },
      (l) => log.push(l),
    );
    try {
      await r.converge();
      expect(await jobs.service('bngone-80'), log.join('\n')).toBeNull();
      expect(await jobs.service('bnshop'), log.join('\n')).toEqual(svc('bnshop', ''));
    } finally {
      r.stop();
    }
  }, 60_000);

  it("a balancer pass removes this host's environment service whose record went while its agent was away, not another host's", async () => {
    const jobs = new JobRepo(store, 'bnf');
    const svc = (name: string, host: string): ServiceRecord => ({ name, job: '', host, address: '127.0.0.1', port: 4322, protocol: 'tcp' });
    await jobs.putService(svc('bnold', 'bnh'));
    await jobs.putService(svc('bnelse', 'bnother'));
    const log: string[] = [];
    const b = new Balancers({ host: 'bnh', fleet: 'bnf', advertise: '127.0.0.1' }, store, (l) => log.push(l));
    try {
      await b.sync();
      expect(await jobs.service('bnold'), log.join('\n')).toBeNull();
      expect(await jobs.service('bnelse'), log.join('\n')).toEqual(svc('bnelse', 'bnother'));
    } finally {
      await b.close();
    }
  }, 60_000);
});
