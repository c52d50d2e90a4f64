import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostRecord } from '../../src/core/hosts.js';
import { HostRepo } from '../../src/state/hosts.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('job plan', haveTools('etcd'), 'etcd is not installed');
const GiB = 1024 ** 3;

describe.skipIf(!run)("knarr job plan over the fleet's hosts", () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  let store: Store;
  beforeAll(async () => {
    tmp = await tempDir('knarr-plan-');
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
    const repo = new HostRepo(store, 'default');
    const lease = await store.grantLease(60);
    const host = (name: string, tags: string[], freeMemory: number, state: HostRecord['state'] = 'ok'): HostRecord => ({
      name,
      address: `http://${name}:7946`,
      dockerEndpoint: 'unix:///var/run/docker.sock',
      tags,
      capacity: { cpu: 4000, memory: 8 * GiB },
      load: { runningJobs: 0, freeMemory },
      state,
      joinedAt: '',
      updatedAt: '',
    });
    for (const h of [
      host('h-ssd', ['ssd'], 6 * GiB),
      host('h-plain', [], 8 * GiB),
      host('h-full', ['ssd'], GiB / 4),
      host('h-drain', ['ssd'], 8 * GiB, 'draining'),
      host('h-down', ['ssd'], 8 * GiB),
    ]) {
      await repo.put(h);
      // Agents hold leases; h-down's agent is gone.
      if (h.name !== 'h-down') await repo.markAlive(h.name, lease, {});
    }
  });
  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it('chooses a host and explains rejections by tag, capacity, drain and down', async () => {
    const file = `${tmp.path}/job.yaml`;
    writeFileSync(file, 'name: db\nimage: busybox\ntags: [ssd]\nmemory: 1G\n');
    const r = await knarr(['--etcd', etcd.url, '--json', 'job', 'plan', '-f', file]);
    expect(r.code, r.stderr).toBe(0);
    const plan = r.json();
    expect(plan.host).toBe('h-ssd');
    const why = Object.fromEntries(plan.verdicts.map((v: { host: string; verdict: string; why: string }) => [v.host, `${v.verdict}: ${v.why}`]));
    expect(why['h-ssd']).toBe('chosen: best spread score');
    expect(why['h-plain']).toBe('rejected: missing tag ssd');
    expect(why['h-full']).toMatch(/^rejected: not enough memory/);
    expect(why['h-drain']).toBe('rejected: host is draining');
    expect(why['h-down']).toBe('rejected: host is down');
    const table = await knarr(['--etcd', etcd.url, 'job', 'plan', '-f', file]);
    expect(table.stdout.split('\n')[1]).toMatch(/^h-ssd\s+chosen/);
  });

  it('says so, and exits 1, when no host fits', async () => {
    const r = await knarr(['--etcd', etcd.url, '--json', 'job', 'plan', '--name', 'gpu', 'busybox']);
    expect(r.code).toBe(0);
    const none = await knarr(['--etcd', etcd.url, '--json', 'job', 'plan', '-f', `${tmp.path}/big.yaml`]);
    expect(none.code).toBe(2);
    writeFileSync(`${tmp.path}/big.yaml`, 'name: big\nimage: busybox\nmemory: 100G\n');
    const big = await knarr(['--etcd', etcd.url, '--json', 'job', 'plan', '-f', `${tmp.path}/big.yaml`]);
    expect(big.code).toBe(1);
    expect(big.json().host).toBeNull();
  });
});
