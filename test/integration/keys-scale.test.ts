import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext, loadConfig } from '../../src/cli/context.js';
import type { DotRecord } from '../../src/core/dots.js';
import type { HostRecord } from '../../src/core/hosts.js';
import { isTerminal, newOp, type OpRecord } from '../../src/core/ops.js';
import { OpRunner } from '../../src/ops/runner.js';
import { ClusterRepo } from '../../src/state/clusters.js';
import { DotRepo } from '../../src/state/dots.js';
import { HostRepo } from '../../src/state/hosts.js';
import { fleetKeys, SCHEMA_VERSION } from '../../src/state/keys.js';
import { migrateFleet } from '../../src/state/migrate.js';
import { OpRepo } from '../../src/state/ops.js';
import { connectEtcd, type KeyValue, type Store } from '../../src/state/store.js';
import { spawnAgent } from '../harness/agent.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const bin = new URL('../../bin/knarr', import.meta.url).pathname;
const run = integration('keys that scale', haveTools('etcd'), 'etcd is not installed (Debian package etcd-server)');

/** The real store, with every key or prefix read and every key a read returned recorded. */
function counted(real: Store): { store: Store; asked: string[]; returned: string[] } {
  const asked: string[] = [];
  const returned: string[] = [];
  const store = new Proxy(real, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        const out = await v.apply(target, args);
        if (prop === 'list') {
          asked.push(String(args[0]));
          returned.push(...(out as KeyValue[]).map((kv) => kv.key));
        } else if (prop === 'get' || prop === 'getVersioned') {
          asked.push(String(args[0]));
          if (out !== null) returned.push(String(args[0]));
        }
        return out;
      };
    },
  });
  return { store, asked, returned };
}

const host = (name: string): HostRecord => ({ name, address: '127.0.0.1', tags: [] }) as unknown as HostRecord;
const dot = (name: string): DotRecord => ({ name, branches: {} }) as unknown as DotRecord;

describe.skipIf(!run)('host records apart from host data, the pending index of operations, and the move from schema 1', () => {
  let etcd: EtcdInstance;
  let store: Store;
  let other: Store;
  beforeAll(async () => {
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
    other = await connectEtcd([etcd.url]);
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await other?.close();
    await etcd?.stop();
  });

  const dump = async (fleet: string) => Object.fromEntries((await store.list(fleetKeys(fleet).root)).map((kv) => [kv.key, kv.value]));

  it("HostRepo.list reads the bare host records and liveness keys only, however much data each host has; each host's data still reads right", async () => {
    const fleet = uniqueName('ks');
    const keys = fleetKeys(fleet);
    for (const h of ['h1', 'h2', 'h3']) {
      await new HostRepo(store, fleet).put(host(h));
      const dots = new DotRepo(store, fleet, h, false);
      for (let i = 0; i < 5; i++) {
        expect(await dots.create(dot(`${h}-d${i}`))).toBe(true);
        await dots.putCommit({ dot: `${h}-d${i}`, id: `c${i}`, parent: null, message: 'm', at: new Date().toISOString() } as never);
      }
      await dots.putRemote('origin', { url: `file:///srv/${h}` });
      await store.put(keys.hostPool(h, 'p'), JSON.stringify({ name: 'p' }));
      await store.put(keys.ambassador(h, 'web-80'), '30080');
      await new ClusterRepo(store, fleet).putImage({ host: h, name: 'base' } as never);
    }
    await new HostRepo(store, fleet).markAlive('h1', '0', {});
    const c = counted(store);
    const listed = await new HostRepo(c.store, fleet).list();
    expect(listed.map((h) => [h.host.name, h.up]).sort()).toEqual([
      ['h1', true],
      ['h2', false],
      ['h3', false],
    ]);
    expect(c.asked.sort()).toEqual([keys.alive, keys.hosts].sort());
    expect(c.returned.sort()).toEqual([keys.hostAlive('h1'), keys.host('h1'), keys.host('h2'), keys.host('h3')].sort());

    const dots2 = new DotRepo(store, fleet, 'h2', false);
    expect((await dots2.list()).map((d) => d.name).sort()).toEqual(['h2-d0', 'h2-d1', 'h2-d2', 'h2-d3', 'h2-d4']);
    expect([...(await dots2.commits('h2-d3')).keys()]).toEqual(['c3']);
    expect(await dots2.listRemotes()).toEqual([{ name: 'origin', url: 'file:///srv/h2' }]);
    expect((await new ClusterRepo(store, fleet).images('h3')).map((i) => i.name)).toEqual(['base']);
    expect(await store.get(keys.ambassador('h2', 'web-80'))).toBe('30080');
    // Nothing but the records under hosts/.
    expect((await store.list(keys.hosts)).map((kv) => kv.key).sort()).toEqual([keys.host('h1'), keys.host('h2'), keys.host('h3')]);
  });

  it('a fleet in the schema 1 layout is moved on the first run, nothing lost; a second run (or two at once) changes nothing', async () => {
    const fleet = uniqueName('km');
    const keys = fleetKeys(fleet);
    const old = `/knarr/${fleet}/hosts`;
    const queued = newOp(1, 'cluster.create', { user: 'u', name: 'c' }, 'h1');
    const ended: OpRecord = { ...newOp(2, 'cluster.delete', { user: 'u', name: 'c' }, 'h1'), status: 'done' };
    const layout1: Record<string, string> = {
      [keys.schema]: '1',
      [`${old}/h1`]: JSON.stringify(host('h1')),
      [`${old}/h2`]: JSON.stringify(host('h2')),
      [`${old}/h1/pools/p`]: '{"name":"p"}',
      [`${old}/h1/dots/d`]: JSON.stringify(dot('d')),
      [`${old}/h1/dot-commits/d/c1`]: '{"id":"c1"}',
      [`${old}/h1/dot-history/e`]: '[]',
      [`${old}/h1/remotes/origin`]: 'file:///srv',
      [`${old}/h2/images/base`]: '{"host":"h2","name":"base"}',
      [`${old}/h2/ambassadors/web-80`]: '30080',
      // A key the new version wrote already (a newer value): it is kept, the old one goes.
      [`${old}/h2/remotes/hub`]: 'file:///old',
      [keys.remote('h2', 'hub')]: 'file:///new',
      [keys.op(queued.id)]: JSON.stringify(queued),
      [keys.op(ended.id)]: JSON.stringify(ended),
    };
    for (const [k, v] of Object.entries(layout1)) await store.put(k, v);

    const first = await migrateFleet(store, fleet);
    expect(first).toEqual({ from: '1', moved: 7, indexed: 1, current: true });
    const after = await dump(fleet);
    expect(after).toEqual({
      [keys.schema]: SCHEMA_VERSION,
      [keys.host('h1')]: layout1[`${old}/h1`],
      [keys.host('h2')]: layout1[`${old}/h2`],
      [keys.hostPool('h1', 'p')]: '{"name":"p"}',
      [keys.hostDot('h1', 'd')]: JSON.stringify(dot('d')),
      [keys.hostDotCommit('h1', 'd', 'c1')]: '{"id":"c1"}',
      [keys.hostDotHistory('h1', 'e')]: '[]',
      [keys.remote('h1', 'origin')]: 'file:///srv',
      [keys.hostImage('h2', 'base')]: '{"host":"h2","name":"base"}',
      [keys.ambassador('h2', 'web-80')]: '30080',
      [keys.remote('h2', 'hub')]: 'file:///new',
      [keys.op(queued.id)]: JSON.stringify(queued),
      [keys.op(ended.id)]: JSON.stringify(ended),
      [keys.opPending('h1', queued.id)]: '',
    });
    // The repositories read the moved data.
    expect((await new DotRepo(store, fleet, 'h1', false).list()).map((d) => d.name)).toEqual(['d']);
    expect((await new OpRepo(store, fleet).pending('h1')).map((p) => p.id)).toEqual([queued.id]);

    const c = counted(store);
    expect(await migrateFleet(c.store, fleet)).toEqual({ from: SCHEMA_VERSION, moved: 0, indexed: 0, current: true });
    expect(c.asked).toEqual([keys.schema]);
    expect(await dump(fleet)).toEqual(after);

    // Two agents starting at once on the old layout: each key moved once, the same end.
    const fleet2 = uniqueName('km');
    for (const [k, v] of Object.entries(layout1)) await store.put(k.replace(`/knarr/${fleet}/`, `/knarr/${fleet2}/`), v.replaceAll(fleet, fleet2));
    const both = await Promise.all([migrateFleet(store, fleet2), migrateFleet(other, fleet2)]);
    expect(both[0]!.moved + both[1]!.moved).toBe(7);
    expect(both.every((m) => m.current)).toBe(true);
    const after2 = await dump(fleet2);
    expect(Object.fromEntries(Object.entries(after2).map(([k, v]) => [k.replace(`/knarr/${fleet2}/`, `/knarr/${fleet}/`), v]))).toEqual(after);
  });

  it('a fresh fleet records the current schema; a newer one is left alone', async () => {
    const fleet = uniqueName('kf');
    expect(await migrateFleet(store, fleet)).toEqual({ from: null, moved: 0, indexed: 0, current: true });
    expect(await store.get(fleetKeys(fleet).schema)).toBe(SCHEMA_VERSION);
    await store.put(fleetKeys(fleet).schema, '99');
    expect(await migrateFleet(store, fleet)).toEqual({ from: '99', moved: 0, indexed: 0, current: false });
    expect(await store.get(fleetKeys(fleet).schema)).toBe('99');
  });

  it('the pending index follows submit, claim, done and cancel, and stays exact under two concurrent submitters', async () => {
    const fleet = uniqueName('ko');
    const repo = new OpRepo(store, fleet);
    const a = await repo.submit('cluster.create', { user: 'u', name: 'a' }, 'h1');
    const b = await repo.submit('cluster.create', { user: 'u', name: 'b' }, 'h1');
    const elsewhere = await repo.submit('cluster.create', { user: 'u', name: 'x' }, 'h2');
    const child = await repo.submitAs(await repo.reserve(), 'cluster.node', {}, 'h1', a.id);
    expect(await repo.pending('h1')).toEqual([
      { id: a.id, parent: null },
      { id: b.id, parent: null },
      { id: child.id, parent: a.id },
    ]);
    expect(await repo.pending('h2')).toEqual([{ id: elsewhere.id, parent: null }]);

    const lease = await store.grantLease(30);
    expect(await repo.claim(a.id, 'r:1', lease)).not.toBeNull();
    expect((await repo.pending('h1')).map((p) => p.id)).toContain(a.id);
    await repo.update(child.id, (o) => ({ ...o, status: 'done' }));
    await repo.update(a.id, (o) => ({ ...o, status: 'done' }), 'r:1');
    await repo.update(b.id, (o) => ({ ...o, status: 'cancelled' }));
    expect(await repo.pending('h1')).toEqual([]);
    // A progress write keeps the entry; only an end removes it.
    await new OpRepo(other, fleet).update(elsewhere.id, (o) => ({ ...o, progress: { done: 1, total: 2, message: 'half' } }));
    expect(await repo.pending('h2')).toEqual([{ id: elsewhere.id, parent: null }]);
    await store.revokeLease(lease);

    // Two submitters at once, on two connections: every operation has its entry, no more, no less.
    const [r1, r2] = [new OpRepo(store, fleet), new OpRepo(other, fleet)];
    const made = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? r1 : r2).submit('cluster.create', { user: 'u', name: `n${i}` }, i % 3 ? 'h1' : 'h2')),
    );
    expect(new Set(made.map((o) => o.id)).size).toBe(40);
    await Promise.all(made.filter((_, i) => i % 4 === 0).map((o) => (o.id.endsWith('2') ? r1 : r2).update(o.id, (x) => ({ ...x, status: 'cancelled' }))));
    const all = await repo.list();
    for (const h of ['h1', 'h2']) {
      const want = all.filter((o) => o.host === h && !isTerminal(o.status)).map((o) => o.id);
      expect((await repo.pending(h)).map((p) => p.id)).toEqual(want);
    }
    // The fleet-wide view (the one-operation-per-cluster check) reads the same index: every host's, top-level, not ended.
    const open = all.filter((o) => o.parent === null && !isTerminal(o.status)).map((o) => o.id);
    expect((await repo.pendingTopLevel()).map((o) => o.id).sort()).toEqual(open.sort());
  });

  it('an entry whose operation ended without it leaving (an older writer) is dropped by the runner, a live one stays', async () => {
    const fleet = uniqueName('kd');
    const keys = fleetKeys(fleet);
    const repo = new OpRepo(store, fleet);
    const live = await repo.submit('cluster.create', { user: 'u', name: 'a' }, 'h1');
    const ended = await repo.submit('cluster.create', { user: 'u', name: 'b' }, 'h1');
    await store.put(keys.op(ended.id), JSON.stringify({ ...ended, status: 'done' }));
    await store.put(keys.opPending('h1', 'op-999999'), '');
    expect(await repo.forgetIfEnded('h1', live.id)).toBe(false);
    expect(await repo.forgetIfEnded('h1', ended.id)).toBe(true);
    expect(await repo.forgetIfEnded('h1', 'op-999999')).toBe(true);
    expect(await repo.pending('h1')).toEqual([{ id: live.id, parent: null }]);
  });

  it('an agent of the new version started on a schema 1 fleet moves its keys, then runs the operation that was queued there', async () => {
    const fleet = uniqueName('ku');
    const keys = fleetKeys(fleet);
    const old = `/knarr/${fleet}/hosts`;
    const queued = newOp(1, 'no.such-kind', {}, 'h1');
    await store.put(keys.schema, '1');
    await store.put(`${old}/h1/dots/d`, JSON.stringify(dot('d')));
    await store.put(`${old}/h1/pools/p`, '{"name":"p"}');
    await store.put(keys.op(queued.id), JSON.stringify(queued));
    const tmp = await tempDir('knarr-keys-upgrade-');
    const agent = spawnAgent({ etcd: etcd.url, fleet, stateDir: `${tmp.path}/state`, name: 'h1', listen: `127.0.0.1:${await freePort()}` });
    try {
      await eventually(async () => {
        const op = JSON.parse((await store.get(keys.op(queued.id)))!) as OpRecord;
        expect(isTerminal(op.status)).toBe(true);
      }, 20_000);
      expect(await store.get(keys.schema)).toBe(SCHEMA_VERSION);
      expect((await store.list(keys.hosts)).map((kv) => kv.key)).toEqual([keys.host('h1')]);
      expect(await store.get(keys.hostDot('h1', 'd'))).toBe(JSON.stringify(dot('d')));
      expect(await store.get(keys.hostPool('h1', 'p'))).toBe('{"name":"p"}');
      expect(await new OpRepo(store, fleet).pending('h1')).toEqual([]);
    } finally {
      expect((await agent.stop('SIGTERM')).log).toMatch(/keys moved to schema 2 \(2 host keys, 1 pending operations\)/);
      await tmp.cleanup();
    }
  }, 60_000);

  it("a runner's drain reads its host's pending entries and those operations only: not the fleet's others, not the ended ones", async () => {
    const fleet = uniqueName('kr');
    const keys = fleetKeys(fleet);
    for (let n = 1; n <= 40; n++) {
      const o = newOp(n, 'cluster.create', { user: 'u', name: `c${n}` }, n % 2 ? 'h1' : 'h2');
      await store.put(keys.op(o.id), JSON.stringify(n % 2 ? { ...o, status: 'done' } : o));
    }
    await store.put(keys.counter('op'), '40');
    const repo = new OpRepo(store, fleet);
    const mine = [await repo.submit('no.such-kind', {}, 'h1'), await repo.submit('no.such-kind', {}, 'h1')];
    const tmp = await tempDir('knarr-keys-drain-');
    const env = { ...process.env, KNARR_STATE_DIR: `${tmp.path}/state`, KNARR_ETCD: etcd.url, KNARR_FLEET: fleet };
    const config = await loadConfig({}, env, tmp.path);
    const ctx = createContext(config, { stderr: new PassThrough(), stderrIsTTY: false, env, cwd: tmp.path, signal: new AbortController().signal });
    const lease = await store.grantLease(30);
    const c = counted(store);
    try {
      await new OpRunner(
        ctx,
        c.store,
        'h1',
        'test',
        () => lease,
        () => undefined,
      ).drain();
      for (const o of mine) expect(isTerminal((await repo.get(o.id))!.status)).toBe(true);
      expect(c.asked.filter((k) => k.endsWith('/'))).toEqual([keys.opsPending('h1')]);
      const ops = c.returned.filter((k) => k.startsWith(keys.ops));
      expect([...new Set(ops)].sort()).toEqual(mine.map((o) => keys.op(o.id)));
      expect(await repo.pending('h1')).toEqual([]);
    } finally {
      await store.revokeLease(lease);
      await tmp.cleanup();
    }
  });

  it("the CLI's first command on a schema 1 fleet (no agent, no etcd up) moves it; under --dry-run it changes nothing", async () => {
    const fleet = uniqueName('kc');
    const keys = fleetKeys(fleet);
    await store.put(keys.schema, '1');
    await store.put(`/knarr/${fleet}/hosts/h9/remotes/origin`, 'file:///srv');
    const dry = await execa(bin, ['--etcd', etcd.url, '--fleet', fleet, '--dry-run', 'op', 'list'], { reject: false });
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(await store.get(keys.schema)).toBe('1');
    const ran = await execa(bin, ['--etcd', etcd.url, '--fleet', fleet, 'op', 'list'], { reject: false });
    expect(ran.exitCode, ran.stderr).toBe(0);
    expect(await store.get(keys.schema)).toBe(SCHEMA_VERSION);
    expect(await store.get(keys.remote('h9', 'origin'))).toBe('file:///srv');
    expect(await store.list(`/knarr/${fleet}/hosts/`)).toEqual([]);
  });
});
