import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KnarrError, LeaseNotFoundError } from '../../src/core/errors.js';
import type { Store, WatchEvent } from '../../src/state/store.js';
import {
  restartMember,
  startAuthEtcd,
  startEtcdCluster,
  startTlsEtcd,
  type AuthEtcdInstance,
  type EtcdCluster,
  type EtcdMember,
  type TlsEtcdInstance,
} from './etcd.js';
import { uniqueName } from './tmp.js';

/** TLS and auth as a Store implementation takes them: PEM file paths, and an etcd user with its password (or password file). */
export interface StoreOptions {
  ca?: string;
  cert?: string;
  key?: string;
  user?: string;
  password?: string;
  passwordFile?: string;
}

/** Makes a connected Store of the implementation under test; rejects with a KnarrError when it cannot. */
export type StoreFactory = (endpoints: readonly string[], options: StoreOptions) => Promise<Store>;

/** What the implementation promises about time. */
export interface ContractLimits {
  /** A call with no member able to answer ends within this (the overall deadline, plus scheduling slack). */
  deadlineMs: number;
  /** A frozen first member costs a connect and a few calls at most this much more than a healthy cluster. */
  frozenExtraMs: number;
  /** A watch on a member that freezes sees a new event within this. */
  watchFailoverMs: number;
  /** The same, when the store also keeps a lease alive (as the agent does), counted from the write's answer. */
  keptWatchFailoverMs: number;
  /** The shortest lease kept alive (renewed every third of it, as the agent does) that a member frozen under it never lets lapse. */
  keptLeaseTtlSeconds: number;
}

// A renewal on a frozen member costs an attempt (1 s) before it goes elsewhere, and a frozen leader an election (1-2 s) before
// any renewal lands: 3 s lapsed under CI's load; 5 s is half the agent's default lease (10 s).
const DEFAULT_LIMITS: ContractLimits = { deadlineMs: 6000, frozenExtraMs: 1500, watchFailoverMs: 6000, keptWatchFailoverMs: 7000, keptLeaseTtlSeconds: 5 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function closing<T>(store: Store, use: (s: Store) => Promise<T>): Promise<T> {
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

/** Every call of the port, once, under a fresh prefix: they must all succeed. */
async function everyCall(store: Store): Promise<void> {
  const p = `/knarr/${uniqueName('c')}/`;
  await store.put(`${p}a`, '1');
  expect(await store.get(`${p}a`)).toBe('1');
  expect(await store.createIfAbsent(`${p}b`, '2')).toBe(true);
  expect(await store.createIfAbsent(`${p}b`, '3')).toBe(false);
  expect(await store.increment(`${p}n`)).toBe(1);
  const v = await store.getVersioned(`${p}a`);
  expect(await store.putIfUnchanged(`${p}a`, '4', v!.modRevision)).toBe(true);
  expect(await store.transact([{ key: `${p}a`, value: '4' }], [{ key: `${p}c`, value: '5' }], [`${p}b`])).toBe(true);
  expect((await store.list(p)).map((kv) => kv.key)).toEqual([`${p}a`, `${p}c`, `${p}n`]);
  const lease = await store.grantLease(30);
  await store.put(`${p}l`, 'x', lease);
  expect(await store.keepAlive(lease)).toBe(true);
  await store.revokeLease(lease);
  expect(await store.get(`${p}l`)).toBeNull();
  const ac = new AbortController();
  const seen: WatchEvent[] = [];
  await store.watch(p, (e) => seen.push(...e), ac.signal);
  await store.put(`${p}w`, 'w');
  for (let i = 0; i < 50 && !seen.some((e) => e.key === `${p}w`); i++) await sleep(100);
  ac.abort();
  expect(seen.some((e) => e.key === `${p}w`)).toBe(true);
  expect(await store.deletePrefix(p)).toBe(4);
}

/** The error a factory or call rejected with: a KnarrError, with how long it took. */
async function failure(work: () => Promise<unknown>): Promise<{ err: KnarrError; ms: number }> {
  const t = Date.now();
  const err = await work().then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KnarrError);
  return { err: err as KnarrError, ms: Date.now() - t };
}

/**
 * The Store port's contract, against real etcd: TLS, auth, a 3-member cluster losing one member (killed
 * or frozen) and two, watches across a member's restart, and lease expiry. Call it from a test file with
 * the implementation's factory; each describe starts its own etcd.
 */
export function storeContract(name: string, factory: StoreFactory, limits: Partial<ContractLimits> = {}): void {
  const lim = { ...DEFAULT_LIMITS, ...limits };

  describe(`${name}: TLS with client certificates`, () => {
    let etcd: TlsEtcdInstance;
    beforeAll(async () => {
      etcd = await startTlsEtcd();
    }, 60_000);
    afterAll(() => etcd?.stop());

    it('works over https with the CA and a client certificate', async () => {
      const c = etcd.certs;
      await closing(await factory([etcd.url], { ca: c.ca, cert: c.clientCert, key: c.clientKey }), everyCall);
    });

    it('a wrong CA is refused clearly, naming the endpoint and --etcd-ca', async () => {
      const c = etcd.certs;
      const { err, ms } = await failure(() => factory([etcd.url], { ca: c.otherCa, cert: c.clientCert, key: c.clientKey }));
      expect([2, 6]).toContain(err.exitCode);
      expect(err.message).toContain(etcd.url);
      expect(`${err.message} ${err.hint}`).toMatch(/--etcd-ca/);
      expect(ms).toBeLessThan(lim.deadlineMs);
    });

    it('a missing client certificate, or one of another CA, is refused clearly, naming --etcd-cert', async () => {
      const c = etcd.certs;
      for (const opts of [{ ca: c.ca }, { ca: c.ca, cert: c.strangerCert, key: c.strangerKey }]) {
        const { err, ms } = await failure(async () => closing(await factory([etcd.url], opts), (s) => s.get('/knarr/x')));
        expect([2, 6]).toContain(err.exitCode);
        expect(err.message).toContain(etcd.url);
        expect(`${err.message} ${err.hint}`).toMatch(/--etcd-cert/);
        expect(ms).toBeLessThan(lim.deadlineMs);
      }
    });
  });

  describe(`${name}: etcd auth`, () => {
    let etcd: AuthEtcdInstance;
    beforeAll(async () => {
      // Tokens that lapse in 2 s: a client must authenticate again by itself.
      etcd = await startAuthEtcd(2);
    }, 60_000);
    afterAll(() => etcd?.stop());

    it('works with a user and password, and with a password file', async () => {
      await closing(await factory([etcd.url], { user: etcd.user, password: etcd.password }), everyCall);
      await closing(await factory([etcd.url], { user: etcd.user, passwordFile: etcd.passwordFile }), (s) => s.get('/knarr/x'));
    });

    it('authenticates again when its token lapses', async () => {
      await closing(await factory([etcd.url], { user: etcd.user, password: etcd.password }), async (s) => {
        await s.put('/knarr/auth-ttl', 'a');
        await sleep(3500);
        await s.put('/knarr/auth-ttl', 'b');
        expect(await s.get('/knarr/auth-ttl')).toBe('b');
      });
    }, 20_000);

    it('a wrong password, or no user, is a clear error', async () => {
      const wrong = await failure(async () => closing(await factory([etcd.url], { user: etcd.user, password: 'nope' }), (s) => s.get('/knarr/x')));
      expect(wrong.err.exitCode).toBe(2);
      expect(wrong.err.message).toMatch(/wrong user or password/);
      const none = await failure(async () => closing(await factory([etcd.url], {}), (s) => s.get('/knarr/x')));
      expect(none.err.exitCode).toBe(2);
      expect(`${none.err.message} ${none.err.hint}`).toMatch(/--etcd-user/);
    });
  });

  describe(`${name}: a 3-member cluster`, () => {
    let cluster: EtcdCluster;
    beforeAll(async () => {
      cluster = await startEtcdCluster(3);
    }, 60_000);
    afterAll(async () => {
      await cluster?.stop();
    });
    const healAll = async () => {
      for (const m of cluster.members) m.thaw();
      for (const m of cluster.members) if (!m.running) await restartMember(m);
    };
    /** Kills each member in turn and runs work while it is down; the member starts again (then settleMs pass) whatever work did. */
    const eachMemberKilled = async (work: (m: EtcdMember) => Promise<unknown>, settleMs = 0) => {
      for (const m of cluster.members) {
        await m.kill();
        try {
          await work(m);
        } finally {
          await restartMember(m);
        }
        await sleep(settleMs);
      }
    };
    /** One store watching prefix, another to write, and the keys the watch saw; afterwards the watch ends, the cluster heals, both close. */
    const watching = async (prefix: string, work: (w: { writer: Store; seen: Set<string>; watch: AbortController }) => Promise<void>) => {
      const watcher = await factory(cluster.endpoints, {});
      const writer = await factory(cluster.endpoints, {});
      const seen = new Set<string>();
      const watch = new AbortController();
      try {
        await watcher.watch(
          prefix,
          (events) => {
            for (const e of events) if (e.key) seen.add(e.key);
          },
          watch.signal,
        );
        await work({ writer, seen, watch });
      } finally {
        watch.abort();
        await healAll();
        await watcher.close();
        await writer.close();
      }
    };

    it('with any one member killed, every call still succeeds', async () => {
      await eachMemberKilled(async () => closing(await factory(cluster.endpoints, {}), everyCall));
    }, 120_000);

    it('a store whose member is killed under it goes on with the others', async () => {
      await closing(await factory(cluster.endpoints, {}), async (s) => {
        await s.put('/knarr/under', '1');
        await eachMemberKilled(async (m) => {
          await s.put('/knarr/under', m.name);
          expect(await s.get('/knarr/under')).toBe(m.name);
        });
      });
    }, 120_000);

    // Timed: connect, five puts, a get and a list, with the endpoints in the given order.
    const timedWork = async (endpoints: readonly string[]) => {
      const t = Date.now();
      await closing(await factory(endpoints, {}), async (s) => {
        const k = `/knarr/${uniqueName('frozen')}`;
        for (let i = 0; i < 5; i++) await s.put(k, String(i));
        expect(await s.get(k)).toBe('4');
        await s.list('/knarr/');
      });
      return Date.now() - t;
    };

    it('with the first endpoint frozen (SIGSTOP, a follower), a connect and calls cost less than 1.5 s more', async () => {
      const leader = await cluster.leader();
      const follower = cluster.members.find((m) => m !== leader)!;
      const endpoints = [follower.url, ...cluster.endpoints.filter((e) => e !== follower.url)];
      const healthy = await timedWork(endpoints);
      follower.freeze();
      try {
        const frozen = await timedWork(endpoints);
        expect(frozen - healthy).toBeLessThan(lim.frozenExtraMs);
      } finally {
        follower.thaw();
      }
    }, 60_000);

    it('with the leader frozen as the first endpoint, calls succeed once the others elect a new one', async () => {
      const leader = await cluster.leader();
      const endpoints = [leader.url, ...cluster.endpoints.filter((e) => e !== leader.url)];
      const healthy = await timedWork(endpoints);
      leader.freeze();
      try {
        const frozen = await timedWork(endpoints);
        // The test cluster's election timeout is 1 s, randomized up to 2 s: that much is etcd's, not the client's.
        expect(frozen - healthy).toBeLessThan(2000 + lim.frozenExtraMs);
      } finally {
        leader.thaw();
      }
    }, 60_000);

    it('with two members killed, a call is a clear exit-6 error within the deadline, and a transaction is whole or absent', async () => {
      const s = await factory(cluster.endpoints, {});
      const p = `/knarr/${uniqueName('half')}/`;
      try {
        await cluster.members[0]!.kill();
        await cluster.members[1]!.kill();
        const get = await failure(() => s.get(`${p}a`));
        expect(get.err.exitCode).toBe(6);
        for (const e of cluster.endpoints) expect(get.err.message).toContain(e);
        expect(get.ms).toBeLessThan(lim.deadlineMs);
        const puts = Array.from({ length: 20 }, (_, i) => ({ key: `${p}${i}`, value: 'v'.repeat(1000) }));
        const txn = await failure(() => s.transact([], puts, []));
        expect(txn.err.exitCode).toBe(6);
        expect(txn.ms).toBeLessThan(lim.deadlineMs);
        const connect = await failure(() => factory(cluster.endpoints, {}));
        expect(connect.err.exitCode).toBe(6);
        expect(connect.ms).toBeLessThan(lim.deadlineMs);
      } finally {
        await healAll();
      }
      await closing(await factory(cluster.endpoints, {}), async (fresh) => {
        const n = (await fresh.list(p)).length;
        expect([0, 20]).toContain(n);
      });
      await s.close();
    }, 120_000);

    it('a watch loses no event across a restart of each member, checked by sequence numbers', async () => {
      const p = `/knarr/${uniqueName('seq')}/`;
      await watching(p, async ({ writer, seen, watch }) => {
        let n = 0;
        const writing = (async () => {
          while (!watch.signal.aborted) {
            await writer.put(`${p}${String(n).padStart(5, '0')}`, String(n)).then(
              () => n++,
              () => undefined,
            );
            await sleep(20);
          }
        })();
        // The watch's member is one of them: each one in turn goes away and comes back.
        await eachMemberKilled(() => sleep(700), 500);
        const written = n;
        const until = Date.now() + 10_000;
        while (Date.now() < until && [...Array(written).keys()].some((i) => !seen.has(`${p}${String(i).padStart(5, '0')}`))) await sleep(200);
        watch.abort();
        await writing;
        const missing = [...Array(written).keys()].filter((i) => !seen.has(`${p}${String(i).padStart(5, '0')}`));
        expect(written).toBeGreaterThan(20);
        expect(missing).toEqual([]);
      });
    }, 120_000);

    it('a watch whose member freezes moves on to another and sees the next event', async () => {
      const p = `/knarr/${uniqueName('fz')}/`;
      await watching(p, async ({ writer, seen }) => {
        for (const m of cluster.members) {
          m.freeze();
          try {
            const key = `${p}${m.name}`;
            await writer.put(key, '1');
            const t = Date.now();
            while (!seen.has(key) && Date.now() - t < lim.watchFailoverMs) await sleep(100);
            expect(seen.has(key), `event written while ${m.name} was frozen`).toBe(true);
          } finally {
            m.thaw();
          }
          await sleep(500);
        }
      });
    }, 120_000);

    it('a member that freezes under a kept lease and an open watch: the lease never lapses, the watch sees the next event', async () => {
      const p = `/knarr/${uniqueName('kept')}/`;
      const s = await factory(cluster.endpoints, {});
      const writer = await factory([...cluster.endpoints].reverse(), {});
      const seen = new Set<string>();
      const ac = new AbortController();
      const lapsed: string[] = [];
      const lease = await s.grantLease(lim.keptLeaseTtlSeconds);
      await s.put(`${p}alive`, 'x', lease);
      // As the agent keeps its lease: a renewal every third of the TTL, one at a time, and one failed tried again within a second.
      const renewals: string[] = [];
      const keeping = (async () => {
        while (!ac.signal.aborted) {
          const t = Date.now();
          const failed = await s.keepAlive(lease).then(
            (ok) => {
              if (!ok) lapsed.push(new Date().toISOString());
              return false;
            },
            (e: Error) => (renewals.push(`failed after ${Date.now() - t} ms: ${e.message}`), true),
          );
          await sleep(failed ? 1000 : (lim.keptLeaseTtlSeconds * 1000) / 3);
        }
      })();
      const took: Record<string, number> = {};
      const wrote: Record<string, number> = {};
      try {
        await s.watch(
          p,
          (events) => {
            for (const e of events) if (e.key) seen.add(e.key);
          },
          ac.signal,
        );
        for (const m of cluster.members) {
          m.freeze();
          const t = Date.now();
          try {
            const key = `${p}${m.name}`;
            await writer.put(key, '1');
            const written = Date.now();
            while (!seen.has(key) && Date.now() - written < lim.keptWatchFailoverMs + 2000) await sleep(50);
            // From the write's answer: a frozen leader's election (1-2 s here) holds the write itself up, which is etcd's.
            took[m.name] = Date.now() - written;
            wrote[m.name] = written - t;
            expect(await writer.get(`${p}alive`), `the lease's key while ${m.name} was frozen (renewals: ${renewals.join('; ') || 'none failed'})`).toBe('x');
          } finally {
            m.thaw();
          }
          await sleep(1000);
        }
        console.info(`kept lease and watch, a member frozen: written after (ms) ${JSON.stringify(wrote)}, then seen after ${JSON.stringify(took)}`);
        for (const [name, ms] of Object.entries(took)) expect(ms, `event written while ${name} was frozen`).toBeLessThan(lim.keptWatchFailoverMs);
        expect(lapsed).toEqual([]);
        expect(await s.keepAlive(lease)).toBe(true);
      } finally {
        ac.abort();
        await keeping;
        await healAll();
        await s.close();
        await writer.close();
      }
    }, 120_000);

    it('a lease not kept alive lapses: its key goes, keepAlive says false, a write under it is LeaseNotFoundError', async () => {
      await closing(await factory(cluster.endpoints, {}), async (s) => {
        const key = `/knarr/${uniqueName('lease')}`;
        const lease = await s.grantLease(lim.keptLeaseTtlSeconds);
        await s.put(key, 'x', lease);
        expect(await s.get(key)).toBe('x');
        const until = Date.now() + 10_000;
        while ((await s.get(key)) !== null && Date.now() < until) await sleep(200);
        expect(await s.get(key)).toBeNull();
        expect(await s.keepAlive(lease)).toBe(false);
        const err = await s.put(key, 'y', lease).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(LeaseNotFoundError);
        expect(await s.get(key)).toBeNull();
      });
    }, 30_000);
  });
}
