import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseNotFoundError, StoreUnavailableError } from '../../src/core/errors.js';
import { connectEtcd3 } from '../../src/state/etcd3-store.js';
import type { Store, WatchEvent } from '../../src/state/store.js';
import { restartMember, startEtcd, startEtcdCluster, type EtcdCluster, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the etcd3 store on one member', () => {
  let etcd: EtcdInstance;
  let store: Store;
  beforeAll(async () => {
    etcd = await startEtcd();
    store = await connectEtcd3([etcd.url]);
  });
  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
  });

  it('reads, writes, lists and deletes', async () => {
    await store.put('/t/a', 'one');
    await store.put('/t/b', 'two');
    await store.put('/tz', 'outside');
    expect(await store.get('/t/a')).toBe('one');
    expect(await store.get('/t/none')).toBeNull();
    expect(await store.list('/t/')).toEqual([
      { key: '/t/a', value: 'one' },
      { key: '/t/b', value: 'two' },
    ]);
    expect(await store.delete('/t/a')).toBe(true);
    expect(await store.delete('/t/a')).toBe(false);
    expect(await store.deletePrefix('/t/')).toBe(1);
    expect(await store.get('/tz')).toBe('outside');
  });

  it('guards writes with transactions', async () => {
    expect(await store.createIfAbsent('/c/x', '1')).toBe(true);
    expect(await store.createIfAbsent('/c/x', '2')).toBe(false);
    expect(
      await store.createAllIfAbsent([
        { key: '/c/y', value: 'y' },
        { key: '/c/x', value: 'x' },
      ]),
    ).toBe(false);
    expect(await store.get('/c/y')).toBeNull();
    const v = await store.getVersioned('/c/x');
    expect(v?.value).toBe('1');
    expect(await store.putIfUnchanged('/c/x', '3', v!.modRevision)).toBe(true);
    expect(await store.putIfUnchanged('/c/x', '4', v!.modRevision)).toBe(false);
    const now = await store.getVersioned('/c/x');
    expect(await store.putAllIfUnchanged('/c/x', now!.modRevision, [{ key: '/c/p', value: 'p' }])).toBe(true);
    expect(
      await store.transact(
        [
          { key: '/c/x', value: '3' },
          { key: '/c/q', absent: true },
        ],
        [{ key: '/c/q', value: 'q' }],
        ['/c/p', { from: '/c/y', to: '/c/z' }],
      ),
    ).toBe(true);
    expect(await store.list('/c/')).toEqual([
      { key: '/c/q', value: 'q' },
      { key: '/c/x', value: '3' },
    ]);
    expect(await store.transact([{ key: '/c/x', value: 'not it' }], [{ key: '/c/r', value: 'r' }], [])).toBe(false);
    expect(await store.get('/c/r')).toBeNull();
  });

  it('increments a counter from concurrent callers without losing one', async () => {
    const got = await Promise.all(Array.from({ length: 20 }, () => store.increment('/n/counter')));
    expect([...got].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('keeps a lease alive over its stream, and its keys go when it lapses or is revoked', async () => {
    const lease = await store.grantLease(2);
    await store.put('/l/kept', 'x', lease);
    for (let i = 0; i < 4; i++) {
      await sleep(800);
      expect(await store.keepAlive(lease)).toBe(true);
    }
    expect(await store.get('/l/kept')).toBe('x');
    const short = await store.grantLease(1);
    await store.put('/l/lapses', 'y', short);
    await eventually(async () => expect(await store.get('/l/lapses')).toBeNull(), 5000);
    expect(await store.keepAlive(short)).toBe(false);
    await store.revokeLease(lease);
    expect(await store.get('/l/kept')).toBeNull();
    expect(await store.keepAlive(lease)).toBe(false);
    // A write under a lapsed lease is refused with etcd's reason, not reported as an unreachable store.
    const late = await store.put('/l/late', 'z', short).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(LeaseNotFoundError);
    expect((late as LeaseNotFoundError).lease).toBe(short);
  });

  it('watches a prefix until aborted', async () => {
    const seen: WatchEvent[] = [];
    const ac = new AbortController();
    await store.watch('/w/', (evs) => seen.push(...evs), ac.signal);
    await store.put('/w/a', '1');
    await store.put('/other', '1');
    await store.delete('/w/a');
    await eventually(
      async () =>
        expect(seen).toEqual([
          { key: '/w/a', deleted: false, value: '1' },
          { key: '/w/a', deleted: true },
        ]),
      5000,
    );
    ac.abort();
    await sleep(200);
    await store.put('/w/b', '1');
    await sleep(300);
    expect(seen).toHaveLength(2);
    // A watch asked for after the abort (an agent stopped while starting) is no watch, and does not hold its caller.
    await store.watch('/w/', () => seen.push({ key: 'late', deleted: false }), ac.signal);
    await store.put('/w/c', '1');
    await sleep(300);
    expect(seen).toHaveLength(2);
  });

  it('names the endpoints when no member answers', async () => {
    const t0 = Date.now();
    const failed = connectEtcd3(['http://127.0.0.1:9'], { attemptTimeoutMs: 500, deadlineMs: 1500 });
    await expect(failed).rejects.toThrow(StoreUnavailableError);
    await expect(failed).rejects.toThrow(/etcd at http:\/\/127\.0\.0\.1:9 is not reachable/);
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});

describe('the etcd3 store on three members', () => {
  let cluster: EtcdCluster;
  let store: Store;
  let writer: Store;
  beforeAll(async () => {
    cluster = await startEtcdCluster(3);
    store = await connectEtcd3(cluster.endpoints);
    writer = await connectEtcd3(cluster.endpoints);
  });
  afterAll(async () => {
    // Never leave a member stopped: thawed (and killed) by stop().
    await store?.close();
    await writer?.close();
    await cluster?.stop();
  });

  it('a watch misses no event while each member in turn is killed and restarted, twice round', async () => {
    const seen = new Set<number>();
    let nulls = 0;
    const ac = new AbortController();
    await store.watch(
      '/seq/',
      (evs) => {
        for (const e of evs) {
          if (e.key === null) nulls++;
          else if (!e.deleted) seen.add(Number(e.key.slice('/seq/'.length)));
        }
      },
      ac.signal,
    );
    let n = 0;
    let writing = true;
    const writes = (async () => {
      while (writing) {
        await writer.put(`/seq/${String(n).padStart(6, '0')}`, 'x');
        n++;
      }
    })();
    // Twice round: the watch's own member is among those killed, at least once after it moved.
    for (let k = 0; k < 6; k++) {
      const m = cluster.members[k % 3]!;
      await sleep(300);
      await m.kill();
      await sleep(1500);
      await restartMember(m);
    }
    await sleep(300);
    writing = false;
    await writes;
    await eventually(async () => expect(seen.size).toBe(n), 20_000);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    // Resumed, not re-made: no "anything may have changed".
    expect(nulls).toBe(0);
    ac.abort();
  }, 120_000);

  it('a frozen first member costs one deadline, then calls go elsewhere; the lease and the watch carry on', async () => {
    const lease = await store.grantLease(10);
    const seen: string[] = [];
    const ac = new AbortController();
    await store.watch('/frozen/', (evs) => seen.push(...evs.map((e) => e.key ?? 'null')), ac.signal);
    cluster.members[0]!.freeze();
    try {
      const timings: number[] = [];
      for (let i = 0; i < 10; i++) {
        const t0 = Date.now();
        await store.put(`/frozen/${i}`, 'x', lease);
        expect(await store.get(`/frozen/${i}`)).toBe('x');
        expect(await store.keepAlive(lease)).toBe(true);
        timings.push(Date.now() - t0);
      }
      // At most a deadline or two (1 s each) spent on the frozen member, and the rest at once.
      expect(timings.reduce((a, b) => a + b, 0)).toBeLessThan(8000);
      expect(timings.filter((t) => t > 1000).length).toBeLessThanOrEqual(2);
      // The watch, if it was on the frozen member, is re-made elsewhere once its pings go unanswered.
      await eventually(async () => expect(new Set(seen).size).toBe(10), 15_000);
      expect(seen).not.toContain('null');
    } finally {
      cluster.members[0]!.thaw();
      ac.abort();
    }
  }, 60_000);

  it('with two members killed, a call ends with the store unavailable within its deadline and nothing is written', async () => {
    const short = await connectEtcd3(cluster.endpoints, { attemptTimeoutMs: 1000, deadlineMs: 4000 });
    try {
      const leader = await cluster.leader();
      const other = cluster.members.find((m) => m !== leader)!;
      await other.kill();
      await leader.kill();
      const t0 = Date.now();
      await expect(short.put('/twokilled', 'x')).rejects.toThrow(StoreUnavailableError);
      expect(Date.now() - t0).toBeLessThan(6000);
      await restartMember(leader);
      await restartMember(other);
      await eventually(async () => expect(await short.get('/twokilled')).toBeNull(), 20_000);
    } finally {
      await short.close();
    }
  }, 90_000);
});
