import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostRecord } from '../../src/core/hosts.js';
import { leafCommands, longName, takesValue } from '../../src/cli/commands-table.js';
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

  it('takes every flag of job run, so a run line works with run changed to plan', async () => {
    const def = (path: string) => leafCommands().find((c) => c.path.join(' ') === path)!.def;
    const runFlags = Object.values(def('job run').options ?? {}).map((o) => o.flags);
    const planFlags = Object.values(def('job plan').options ?? {}).map((o) => o.flags);
    expect(runFlags.filter((f) => !planFlags.includes(f))).toEqual([]);
    const file = `${tmp.path}/pasted.yaml`;
    writeFileSync(file, 'image: busybox\nname: pasted\n');
    // A value each run flag is given; a flag added to run without one here fails the test.
    const values: Record<string, string> = {
      file,
      name: 'pasted',
      env: 'A=1',
      network: 'bridge',
      host: 'h-ssd',
      tag: 'ssd',
      port: '18080:80',
      volume: '/srv/www:/www:ro',
      link: 'db-5432',
      restart: 'on-failure:3',
      cpu: '0.5',
      memory: '256M',
    };
    const argvOf = (flags: string) => {
      const long = `--${longName(flags)}`;
      if (!takesValue(flags)) return [long];
      expect(values, `a value for ${long}`).toHaveProperty(longName(flags));
      return [long, values[longName(flags)]!];
    };
    for (const flags of runFlags) {
      const r = await knarr(['--etcd', etcd.url, '--json', 'job', 'plan', ...argvOf(flags), 'busybox', '--', 'httpd', '-f']);
      expect(r.code, `job plan ${flags}: ${r.stderr}`).toBe(0);
      expect(r.json().host, flags).toMatch(/^h-(ssd|plain)$/);
    }
    const all = await knarr(['--etcd', etcd.url, '--json', 'job', 'plan', ...runFlags.flatMap(argvOf), 'busybox', '--', 'httpd', '-f']);
    expect(all.code, all.stderr).toBe(0);
    expect(all.json()).toMatchObject({ name: 'pasted', host: 'h-ssd', notes: [expect.stringMatching(/^--interactive: /)] });
    expect(all.stderr).toMatch(/--interactive: stdin is piped when the job runs/);
  });
});
