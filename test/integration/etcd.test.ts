import { existsSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connectEtcd } from '../../src/state/store.js';
import { fleetKeys } from '../../src/state/keys.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';

const haveEtcd = haveTools('etcd');
const run = integration('etcd', haveEtcd, 'etcd is not installed (Debian package etcd-server)');
const runZfs = run && integration('etcd on zfs', await zfsAnswers(), 'zpool does not answer (install zfs-fuse)');

describe.skipIf(!run)('the store against a real etcd', () => {
  let etcd: EtcdInstance;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(() => etcd?.stop());

  it('put, get, list, delete under the fleet prefix', async () => {
    const store = await connectEtcd([etcd.url]);
    try {
      const keys = fleetKeys(uniqueName('f'));
      await store.put(keys.host('h1'), '{"a":1}');
      await store.put(keys.host('h2'), '{"a":2}');
      expect(await store.get(keys.host('h1'))).toBe('{"a":1}');
      expect((await store.list(keys.hosts)).map((kv) => kv.key)).toEqual([keys.host('h1'), keys.host('h2')]);
      expect(await store.delete(keys.host('h1'))).toBe(true);
      expect(await store.get(keys.host('h1'))).toBeNull();
      expect(await store.deletePrefix(keys.root)).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('createIfAbsent writes once; concurrent increments never hand out one value twice', async () => {
    const store = await connectEtcd([etcd.url]);
    const other = await connectEtcd([etcd.url]);
    try {
      const keys = fleetKeys(uniqueName('f'));
      expect(await store.createIfAbsent(keys.schema, '1')).toBe(true);
      expect(await store.createIfAbsent(keys.schema, '2')).toBe(false);
      expect(await store.get(keys.schema)).toBe('1');
      const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? store : other).increment(keys.counter('cluster'))));
      expect(new Set(ids).size).toBe(20);
      expect(Math.max(...ids)).toBe(20);
    } finally {
      await store.close();
      await other.close();
    }
  });

  it('putIfUnchanged loses to a write in between; watch reports puts and deletes under its prefix only', async () => {
    const store = await connectEtcd([etcd.url]);
    const ac = new AbortController();
    try {
      const keys = fleetKeys(uniqueName('f'));
      await store.put(keys.job('a'), 'v1');
      const seen = await store.getVersioned(keys.job('a'));
      await store.put(keys.job('a'), 'v2');
      expect(await store.putIfUnchanged(keys.job('a'), 'v3', seen!.modRevision)).toBe(false);
      const now = await store.getVersioned(keys.job('a'));
      expect(await store.putIfUnchanged(keys.job('a'), 'v3', now!.modRevision)).toBe(true);
      expect(await store.get(keys.job('a'))).toBe('v3');

      const events: { key: string | null; deleted: boolean }[] = [];
      await store.watch(keys.jobs, (e) => events.push(...e), ac.signal);
      await store.put(keys.host('elsewhere'), 'x');
      await store.put(keys.job('b'), 'x');
      await store.delete(keys.job('a'));
      for (let i = 0; i < 50 && events.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      expect(events).toEqual([
        { key: keys.job('b'), deleted: false },
        { key: keys.job('a'), deleted: true },
      ]);
    } finally {
      ac.abort();
      await store.close();
    }
  });

  it('transact: puts and deletes only when every guard holds (revision, value, absence)', async () => {
    const store = await connectEtcd([etcd.url]);
    try {
      const keys = fleetKeys(uniqueName('f'));
      await store.put(keys.opClaim('op-000001'), 'cli:1');
      // A claim held by someone else: the guarded delete does nothing.
      expect(await store.transact([{ key: keys.opClaim('op-000001'), value: 'agent:2' }], [], [keys.opClaim('op-000001')])).toBe(false);
      expect(await store.get(keys.opClaim('op-000001'))).toBe('cli:1');
      expect(await store.transact([{ key: keys.opClaim('op-000001'), value: 'cli:1' }, { key: keys.op('op-000002'), absent: true }], [{ key: keys.op('op-000002'), value: 'x' }], [keys.opClaim('op-000001')])).toBe(true);
      expect(await store.get(keys.opClaim('op-000001'))).toBeNull();
      expect(await store.get(keys.op('op-000002'))).toBe('x');
      const v = await store.getVersioned(keys.op('op-000002'));
      await store.put(keys.op('op-000002'), 'y');
      expect(await store.transact([{ key: keys.op('op-000002'), modRevision: v!.modRevision }], [{ key: keys.op('op-000002'), value: 'z' }], [])).toBe(false);
      expect(await store.get(keys.op('op-000002'))).toBe('y');
    } finally {
      await store.close();
    }
  });

  it('an unreachable etcd is a clear store error', async () => {
    const port = await freePort();
    const err = await connectEtcd([`http://127.0.0.1:${port}`], 1500).catch((e) => e);
    expect(err.exitCode).toBe(6);
    expect(err.message).toMatch(/etcd at http:\/\/127\.0\.0\.1:\d+ is not reachable/);
  });
});

describe.skipIf(!run)('knarr etcd up/down/status (the managed local etcd)', () => {
  let tmp: TempDir;
  let state: string;
  let ports: string[];
  const pools: string[] = [];
  beforeEach(async () => {
    tmp = await tempDir('knarr-etcd-');
    state = `${tmp.path}/state`;
    ports = ['--client-port', String(await freePort()), '--peer-port', String(await freePort())];
  });
  afterEach(async () => {
    await knarr(['--state-dir', state, 'etcd', 'down']);
    while (pools.length) await destroyPoolQuietly(pools.pop()!);
    await tmp.cleanup();
  });

  it('up starts a healthy etcd; up again reuses it; down stops it; down again is fine', async () => {
    const up = await knarr(['--json', '--state-dir', state, 'etcd', 'up', ...ports]);
    expect(up.code, up.stderr).toBe(0);
    const started = up.json();
    expect(started).toMatchObject({ action: 'started', running: true, healthy: true, pool: null, dataDir: `${state}/etcd/data` });
    expect(started.version).toMatch(/^3\./);
    expect(existsSync(`${state}/etcd/data/member`)).toBe(true);
    expect(existsSync(started.socket)).toBe(true);

    const again = await knarr(['--json', '--state-dir', state, 'etcd', 'up', ...ports]);
    expect(again.code).toBe(0);
    expect(again.json()).toMatchObject({ action: 'running', pid: started.pid });

    const status = await knarr(['--json', '--state-dir', state, 'etcd', 'status']);
    expect(status.code).toBe(0);
    expect(status.json()).toMatchObject({ managed: true, running: true, healthy: true, pid: started.pid, endpoints: started.endpoints });

    // The fleet was recorded through the store.
    const store = await connectEtcd(started.endpoints);
    try {
      expect(await store.get(fleetKeys('default').schema)).toBe('1');
    } finally {
      await store.close();
    }
    const viaCtl = await execa('etcdctl', ['--endpoints', started.endpoints[0], 'get', '/knarr/default/meta/schema', '--print-value-only'], {
      env: { ETCDCTL_API: '3' },
    });
    expect(viaCtl.stdout).toBe('1');

    const down = await knarr(['--json', '--state-dir', state, 'etcd', 'down']);
    expect(down.code).toBe(0);
    expect(down.json().action).toMatch(/stopped|killed/);
    // Gone, or a zombie waiting for this test process to reap it.
    const stat = (() => {
      try {
        return readFileSync(`/proc/${started.pid}/stat`, 'utf8');
      } catch {
        return '';
      }
    })();
    expect(stat === '' || /^\d+ \(.*\) Z/.test(stat)).toBe(true);
    const downAgain = await knarr(['--json', '--state-dir', state, 'etcd', 'down']);
    expect(downAgain.json().action).toBe('stopped-already');
    const stopped = await knarr(['--json', '--state-dir', state, 'etcd', 'status']);
    expect(stopped.code).toBe(6);
    expect(stopped.json()).toMatchObject({ running: false, healthy: false });
  });

  it('keeps its data across down and up', async () => {
    const up = await knarr(['--json', '--state-dir', state, 'etcd', 'up', ...ports]);
    const url = up.json().endpoints[0];
    await execa('etcdctl', ['--endpoints', url, 'put', '/knarr/test/kept', 'yes'], { env: { ETCDCTL_API: '3' } });
    await knarr(['--state-dir', state, 'etcd', 'down']);
    // No port flags: a restart keeps the ports of the last run.
    const again = await knarr(['--json', '--state-dir', state, 'etcd', 'up']);
    expect(again.json()).toMatchObject({ action: 'started', endpoints: [url] });
    const got = await execa('etcdctl', ['--endpoints', url, 'get', '/knarr/test/kept', '--print-value-only'], { env: { ETCDCTL_API: '3' } });
    expect(got.stdout).toBe('yes');
  });

  it('a port taken by another etcd is a conflict with a hint', async () => {
    const other = await startEtcd();
    try {
      const port = new URL(other.url).port;
      const r = await knarr(['--state-dir', state, 'etcd', 'up', '--client-port', port, '--peer-port', String(await freePort())]);
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/another etcd already answers on http:\/\/127\.0\.0\.1:\d+\n  hint: pick free ports/);
    } finally {
      await other.stop();
    }
  });

  it('--dry-run prints the etcd command line and starts nothing', async () => {
    const r = await knarr(['--dry-run', '--state-dir', state, 'etcd', 'up', ...ports]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`mkdir -p ${state}/etcd`);
    expect(lines[1]).toMatch(/^etcd --name knarr --data-dir .*\/etcd\/data --listen-client-urls http:\/\/127\.0\.0\.1:\d+,unix:\/\/etcd\.sock:0 /);
    expect(existsSync(state)).toBe(false);
  });

  it('refuses to manage a local etcd when --etcd points elsewhere', async () => {
    const r = await knarr(['--etcd', 'http://10.0.0.1:2379', '--state-dir', state, 'etcd', 'up']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/points at http:\/\/10\.0\.0\.1:2379/);
  });

  it.skipIf(!runZfs)('keeps its data on the pool, in the <pool>/knarr-etcd dataset', async () => {
    const name = uniqueName('ke');
    pools.push(name);
    const init = await knarr(['--state-dir', state, '--json', 'pool', 'init', '--name', name, '--loop-file', `${tmp.path}/p.img`, '--size', '256M']);
    expect(init.code, init.stderr).toBe(0);
    const up = await knarr(['--json', '--state-dir', state, 'etcd', 'up', ...ports]);
    expect(up.code, up.stderr).toBe(0);
    expect(up.json()).toMatchObject({ pool: name, dataDir: `${state}/mnt/${name}/knarr-etcd`, healthy: true });
    const datasets = (await execa('zfs', ['list', '-H', '-o', 'name,mountpoint', '-r', name])).stdout;
    expect(datasets).toContain(`${name}/knarr-etcd\t${state}/mnt/${name}/knarr-etcd`);
    expect(existsSync(`${state}/mnt/${name}/knarr-etcd/member`)).toBe(true);

    const destroy = await knarr(['--state-dir', state, 'pool', 'destroy', name, '--yes']);
    expect(destroy.code).toBe(4);
    expect(destroy.stderr).toMatch(/the managed etcd keeps its data on pool .* and is running\n  hint: stop it first with: knarr etcd down/);

    const record = JSON.parse(readFileSync(`${state}/etcd/server.json`, 'utf8'));
    expect(record.pool).toBe(name);
    const store = await connectEtcd(up.json().endpoints);
    try {
      const pools = await store.list(fleetKeys('default').hosts);
      expect(pools.some((kv) => kv.key.endsWith(`/pools/${name}`))).toBe(true);
    } finally {
      await store.close();
    }
  });
});
