import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mountAt } from '../../src/host/mounts.js';
import { connectEtcd } from '../../src/state/store.js';
import { fleetKeys, SCHEMA_VERSION } from '../../src/state/keys.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers, zfsRetrying } from '../harness/zfs.js';

const haveEtcd = haveTools('etcd');
const run = integration('etcd', haveEtcd, 'etcd is not installed (Debian package etcd-server)');
const runZfs = run && integration('etcd on zfs', await zfsAnswers(), 'zpool does not answer (install zfs-fuse)');
const runDeadFuse = runZfs && integration('dead FUSE mounts', haveTools('bindfs'), 'bindfs is not installed (Debian package bindfs)');

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
        { key: keys.job('b'), deleted: false, value: 'x' },
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
      expect(
        await store.transact(
          [
            { key: keys.opClaim('op-000001'), value: 'cli:1' },
            { key: keys.op('op-000002'), absent: true },
          ],
          [{ key: keys.op('op-000002'), value: 'x' }],
          [keys.opClaim('op-000001')],
        ),
      ).toBe(true);
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
      expect(await store.get(fleetKeys('default').schema)).toBe(SCHEMA_VERSION);
    } finally {
      await store.close();
    }
    const viaCtl = await execa('etcdctl', ['--endpoints', started.endpoints[0], 'get', '/knarr/default/meta/schema', '--print-value-only'], {
      env: { ETCDCTL_API: '3' },
    });
    expect(viaCtl.stdout).toBe(SCHEMA_VERSION);

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

  describe('backup and restore', () => {
    const ctl = async (url: string, ...a: string[]) => (await execa('etcdctl', ['--endpoints', url, ...a], { env: { ETCDCTL_API: '3' } })).stdout;
    const value = (url: string, key: string) => ctl(url, 'get', key, '--print-value-only');
    const restoreLeftovers = (dataDir: string) => readdirSync(dataDir).filter((n) => n.startsWith('.restore-'));

    it('backup writes a checked snapshot; restore rolls the store back to it and keeps the data it replaced', async () => {
      const up = (await knarr(['--json', '--state-dir', state, 'etcd', 'up', ...ports])).json();
      const url = up.endpoints[0];
      await ctl(url, 'put', '/knarr/test/marker', 'v1');
      const file = `${tmp.path}/fleet.db`;
      const backup = await knarr(['--json', '--state-dir', state, 'etcd', 'backup', file]);
      expect(backup.code, backup.stderr).toBe(0);
      expect(backup.json()).toMatchObject({ file, endpoint: url });
      expect(backup.json().revision).toBeGreaterThan(1);
      expect(backup.json().keys).toBeGreaterThan(1);
      // It holds the fleet's tokens: only root reads it.
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const again = await knarr(['--state-dir', state, 'etcd', 'backup', file]);
      expect(again.code).toBe(4);
      expect(again.stderr).toMatch(/already exists\n  hint: name a new file, or pass --force/);
      expect((await knarr(['--state-dir', state, 'etcd', 'backup', file, '--force'])).code).toBe(0);

      await ctl(url, 'put', '/knarr/test/marker', 'v2');
      await ctl(url, 'put', '/knarr/test/after', 'x');
      const unconfirmed = await knarr(['--state-dir', state, 'etcd', 'restore', file]);
      expect(unconfirmed.code).toBe(2);
      expect(unconfirmed.stderr).toMatch(/pass --yes to confirm/);
      expect(await value(url, '/knarr/test/marker')).toBe('v2');

      const restored = await knarr(['--json', '--state-dir', state, 'etcd', 'restore', file, '--yes']);
      expect(restored.code, restored.stderr).toBe(0);
      const r = restored.json();
      expect(r).toMatchObject({ action: 'restored', running: true, healthy: true, endpoints: [url], dataDir: `${state}/etcd/data` });
      expect(r.pid).not.toBe(up.pid);
      expect(await value(url, '/knarr/test/marker')).toBe('v1');
      expect(await value(url, '/knarr/test/after')).toBe('');
      expect(r.previous).toMatch(new RegExp(`^${state}/etcd/data/member\\.before-restore-\\d{8}T\\d{9}Z$`));
      expect(existsSync(`${r.previous}/wal`)).toBe(true);
      expect(existsSync(`${state}/etcd/restore.json`)).toBe(false);
      expect(restoreLeftovers(`${state}/etcd/data`)).toEqual([]);
    });

    it('a damaged or missing snapshot changes nothing', async () => {
      const up = (await knarr(['--json', '--state-dir', state, 'etcd', 'up', ...ports])).json();
      const url = up.endpoints[0];
      await ctl(url, 'put', '/knarr/test/k', 'kept');
      const file = `${tmp.path}/good.db`;
      expect((await knarr(['--state-dir', state, 'etcd', 'backup', file])).code).toBe(0);
      const bytes = readFileSync(file);
      bytes[bytes.length >> 1] ^= 0xff;
      writeFileSync(`${tmp.path}/flipped.db`, bytes);
      writeFileSync(`${tmp.path}/garbage.db`, 'not a snapshot\n');
      for (const bad of ['flipped.db', 'garbage.db']) {
        const r = await knarr(['--state-dir', state, 'etcd', 'restore', `${tmp.path}/${bad}`, '--yes']);
        expect(r.code, bad).toBe(2);
        expect(r.stderr).toMatch(/(cannot be restored|is not an etcd snapshot).*\n  hint: .*nothing was changed/s);
      }
      const missing = await knarr(['--state-dir', state, 'etcd', 'restore', `${tmp.path}/nope.db`, '--yes']);
      expect(missing.code).toBe(3);
      const status = (await knarr(['--json', '--state-dir', state, 'etcd', 'status'])).json();
      expect(status).toMatchObject({ running: true, healthy: true, pid: up.pid });
      expect(await value(url, '/knarr/test/k')).toBe('kept');
      expect(restoreLeftovers(`${state}/etcd/data`)).toEqual([]);
      expect(readdirSync(`${state}/etcd/data`).filter((n) => n.startsWith('member.'))).toEqual([]);

      // A restore cut short before it stopped etcd swapped nothing: the next start drops its unpacked copy.
      const data = `${state}/etcd/data`;
      const gone = await execa('true');
      mkdirSync(`${data}/.restore-y/member`, { recursive: true });
      writeFileSync(
        `${state}/etcd/restore.json`,
        JSON.stringify({
          snapshot: file,
          dataDir: data,
          staged: `${data}/.restore-y`,
          aside: `${data}/member.before-restore-y`,
          pid: gone.pid,
          startedAt: new Date().toISOString(),
        }),
      );
      const up2 = await knarr(['--state-dir', state, 'etcd', 'up']);
      expect(up2.code, up2.stderr).toBe(0);
      expect(up2.stderr).toMatch(/cut short before it stopped etcd: dropped/);
      expect(readdirSync(data)).toEqual(['member']);
      expect(existsSync(`${state}/etcd/restore.json`)).toBe(false);
      expect(await value(url, '/knarr/test/k')).toBe('kept');
    });

    it('--dry-run shows the steps and changes nothing; an external --etcd is not restored', async () => {
      const up = (await knarr(['--json', '--state-dir', state, 'etcd', 'up', ...ports])).json();
      const file = `${tmp.path}/fleet.db`;
      expect((await knarr(['--state-dir', state, 'etcd', 'backup', file])).code).toBe(0);
      const dry = await knarr(['--dry-run', '--state-dir', state, 'etcd', 'restore', file]);
      expect(dry.code, dry.stderr).toBe(0);
      const lines = dry.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(new RegExp(`^etcdctl snapshot restore ${file} --data-dir ${state}/etcd/data/\\.restore-\\S+ --name knarr `));
      expect(lines[1]).toBe(`kill -TERM ${up.pid}`);
      expect(lines[2]).toMatch(new RegExp(`^mv ${state}/etcd/data/member ${state}/etcd/data/member\\.before-restore-`));
      expect((await knarr(['--json', '--state-dir', state, 'etcd', 'status'])).json()).toMatchObject({ running: true, pid: up.pid });
      expect(readdirSync(`${state}/etcd/data`)).toEqual(['member']);
      const external = await knarr(['--etcd', up.endpoints[0], '--state-dir', state, 'etcd', 'restore', file, '--yes']);
      expect(external.code).toBe(2);
      expect(external.stderr).toMatch(/manages this host's own etcd/);
    });

    it("a new host comes up with the snapshot's data; a restore cut short is finished by the next start", async () => {
      const up = (await knarr(['--json', '--state-dir', state, 'etcd', 'up', ...ports])).json();
      const url = up.endpoints[0];
      await ctl(url, 'put', '/knarr/test/fleet', 'old');
      const file = `${tmp.path}/fleet.db`;
      expect((await knarr(['--state-dir', state, 'etcd', 'backup', file])).code).toBe(0);
      await ctl(url, 'put', '/knarr/test/fleet', 'new');
      await knarr(['--state-dir', state, 'etcd', 'down']);

      const other = `${tmp.path}/other`;
      const otherPorts = ['--client-port', String(await freePort()), '--peer-port', String(await freePort())];
      try {
        const fresh = await knarr(['--json', '--state-dir', other, 'etcd', 'restore', file, ...otherPorts]);
        expect(fresh.code, fresh.stderr).toBe(0);
        expect(fresh.json()).toMatchObject({ action: 'restored', running: true, healthy: true, previous: null, dataDir: `${other}/etcd/data` });
        expect(await value(fresh.json().endpoints[0], '/knarr/test/fleet')).toBe('old');
      } finally {
        await knarr(['--state-dir', other, 'etcd', 'down']);
      }

      // Cut short after the snapshot was unpacked and the old data moved aside, before the new data moved in.
      const data = `${state}/etcd/data`;
      const peer = JSON.parse(readFileSync(`${state}/etcd/server.json`, 'utf8')).peerUrl;
      await execa(
        'etcdctl',
        [
          'snapshot',
          'restore',
          file,
          '--data-dir',
          `${data}/.restore-x`,
          '--name',
          'knarr',
          '--initial-cluster',
          `knarr=${peer}`,
          '--initial-advertise-peer-urls',
          peer,
        ],
        { env: { ETCDCTL_API: '3' } },
      );
      renameSync(`${data}/member`, `${data}/member.before-restore-x`);
      const journal = (pid: number, dataDir = data) =>
        writeFileSync(
          `${state}/etcd/restore.json`,
          JSON.stringify({
            snapshot: file,
            dataDir,
            staged: `${dataDir}/.restore-x`,
            aside: `${dataDir}/member.before-restore-x`,
            pid,
            startedAt: new Date().toISOString(),
          }),
        );
      // While the knarr process that restores lives, nothing starts etcd on the half-swapped data.
      const restorer = execa('node', ['-e', 'setTimeout(() => {}, 60000)', 'knarr'], { reject: false });
      try {
        journal(restorer.pid!);
        const blocked = await knarr(['--state-dir', state, 'etcd', 'up']);
        expect(blocked.code).toBe(4);
        expect(blocked.stderr).toMatch(new RegExp(`an etcd restore of .* is in progress \\(pid ${restorer.pid}\\)`));
      } finally {
        restorer.kill('SIGKILL');
        await restorer;
      }
      // A journal whose directories are not there (their pool not mounted) is not taken as done: etcd does not start empty.
      journal(restorer.pid!, `${tmp.path}/not-mounted`);
      const unmounted = await knarr(['--state-dir', state, 'etcd', 'up']);
      expect(unmounted.code).toBe(4);
      expect(unmounted.stderr).toMatch(/cannot be finished: neither .* is there\n  hint: mount the pool/);
      journal(restorer.pid!);
      const resumed = await knarr(['--json', '--state-dir', state, 'etcd', 'up']);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.stderr).toMatch(/finished a restore that was cut short/);
      expect(await value(url, '/knarr/test/fleet')).toBe('old');
      expect(existsSync(`${state}/etcd/restore.json`)).toBe(false);
      expect(readdirSync(data).sort()).toEqual(['member', 'member.before-restore-x']);
    });
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
      const pools = await store.list(fleetKeys('default').hostPools(hostname()));
      expect(pools.some((kv) => kv.key.endsWith(`/pools/${name}`))).toBe(true);
    } finally {
      await store.close();
    }
  });

  it.skipIf(!runDeadFuse)('after zfs-fuse died under the pool, init and up mount its datasets again: etcd never starts on the bare directory', async () => {
    const name = uniqueName('kd');
    pools.push(name);
    const root = `${state}/mnt/${name}`;
    const init = ['--state-dir', state, '--json', 'pool', 'init', '--name', name, '--loop-file', `${tmp.path}/p.img`, '--size', '256M'];
    expect((await knarr(init)).code).toBe(0);
    const up = await knarr(['--json', '--state-dir', state, 'etcd', 'up', ...ports]);
    expect(up.code, up.stderr).toBe(0);
    const url = up.json().endpoints[0];
    await execa('etcdctl', ['--endpoints', url, 'put', '/knarr/test/kept', 'on the pool'], { env: { ETCDCTL_API: '3' } });
    expect((await knarr(['--state-dir', state, 'etcd', 'down'])).code).toBe(0);

    // What a zfs-fuse that died leaves: the dataset unmounted and a FUSE mount over the pool whose daemon is gone.
    await zfsRetrying(['umount', `${name}/knarr-etcd`]);
    mkdirSync(`${tmp.path}/empty`);
    await execa('bindfs', ['-o', 'subtype=zfs,nonempty', `${tmp.path}/empty`, root]);
    await execa('pkill', ['-9', '-f', `bindfs .*${tmp.path}/empty`]);
    expect(() => readdirSync(root)).toThrow(/ENOTCONN|ECONNABORTED/);

    const again = await knarr(init);
    expect(again.code, again.stderr).toBe(0);
    expect(again.json()).toMatchObject({ action: 'exists', health: 'ONLINE' });
    expect((await mountAt(root))?.source).toBe(name);

    const back = await knarr(['--json', '--state-dir', state, 'etcd', 'up', ...ports]);
    expect(back.code, back.stderr).toBe(0);
    expect((await mountAt(`${root}/knarr-etcd`))?.source).toBe(`${name}/knarr-etcd`);
    const kept = await execa('etcdctl', ['--endpoints', url, 'get', '/knarr/test/kept', '--print-value-only'], { env: { ETCDCTL_API: '3' } });
    expect(kept.stdout).toBe('on the pool');
  });
});
