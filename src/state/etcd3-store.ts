import { setTimeout as sleep } from 'node:timers/promises';
import { rootCertificates } from 'node:tls';
import { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen, type IBackoff, isBrokenCircuitError, noop } from 'cockatiel';
import {
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  Etcd3,
  castGrpcError,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  GRPCUnauthenticatedError,
  isRecoverableError,
  type ICompare,
  type IOptions,
  type IKeyValue,
  type IRequestOp,
  type IWatchResponse,
  type Watcher,
} from 'etcd3';
import { FailureError, LeaseNotFoundError, StoreUnavailableError, UserError, ValidationError } from '../core/errors.js';
import { readSecret, type EtcdConnectOptions, type Guard, type KeyRange, type Store, type WatchEvent } from './store.js';

/** The agent's client takes the gateway client's settings; its call deadline defaults longer (an attempt per member and one more, at least 8 s). */
export type Etcd3Options = EtcdConnectOptions;

/** The TLS credentials and the etcd user the options name, read and checked before anything connects. */
function credentialsOf(opts: Etcd3Options): Pick<IOptions, 'credentials' | 'auth'> {
  if ((opts.cert == null) !== (opts.key == null))
    throw new ValidationError(opts.cert == null ? '--etcd-cert' : '--etcd-key', 'a client certificate needs both --etcd-cert and --etcd-key');
  const out: Pick<IOptions, 'credentials' | 'auth'> = {};
  if (opts.ca || opts.cert) {
    out.credentials = {
      // Without a CA file the system's CAs (Node's bundled roots) verify the members, as https does.
      rootCertificate: opts.ca ? readSecret(opts.ca, '--etcd-ca') : Buffer.from(rootCertificates.join('\n')),
      ...(opts.cert ? { certChain: readSecret(opts.cert, '--etcd-cert'), privateKey: readSecret(opts.key!, '--etcd-key') } : {}),
    };
  }
  if (opts.user) {
    let password = opts.password ?? null;
    if (password === null) {
      if (!opts.passwordFile)
        throw new ValidationError('--etcd-user', `etcd user ${opts.user} needs a password: give --etcd-password-file or KNARR_ETCD_PASSWORD`);
      password = readSecret(opts.passwordFile, '--etcd-password-file').toString('utf8').split('\n')[0]!.replace(/\r$/, '');
    }
    out.auth = { username: opts.user, password };
  }
  return out;
}

// A frozen member is noticed by HTTP/2 pings, no etcd request (an idle fleet pays nothing): etcd takes them every
// 5 s at most (--grpc-keepalive-min-time), so a watch on a frozen member moves within 6 s.
const KEEPALIVE_MS = 5000;
const KEEPALIVE_TIMEOUT_MS = 1000;

const enc = (s: string) => Buffer.from(s, 'utf8');
const rangeEnd = (prefix: string) => Buffer.from(prefixEndBytes(prefix));
const CREATE = 1;
const MOD = 2;
const VALUE = 3;
const EQUAL = 0;

function prefixEndBytes(prefix: string): Uint8Array {
  const buf = Buffer.from(prefix, 'utf8');
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i]! < 0xff) {
      const end = Buffer.from(buf.subarray(0, i + 1));
      end[i]! += 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

/** The flag to look at when a TLS handshake failed: whose certificate was refused. */
function tlsHint(reason: string): string | null {
  if (/certificate required|bad certificate|alert.*(certificate|handshake)|unknown ca.*alert|sslv3 alert/i.test(reason))
    return 'give a client certificate the members accept with --etcd-cert and --etcd-key (KNARR_ETCD_CERT, KNARR_ETCD_KEY)';
  if (/self.signed|unable to (verify|get (local )?issuer)|certificate verify failed|CERT_|unknown ca/i.test(reason))
    return "give the CA that signed the members' certificates with --etcd-ca (KNARR_ETCD_CA)";
  if (/wrong version number|packet length too long|http_request/i.test(reason))
    return 'the endpoint serves plain http: write it http://HOST:PORT in --etcd / KNARR_ETCD';
  return null;
}

/**
 * The member itself failed (no answer in time, connection lost): skip it for a while. Not a stream we cancelled, nor
 * etcd's own "no leader", "leader changed" or "request timed out", which every member says during an election.
 */
const memberFailed = (e: Error) => e instanceof GRPCDeadlineExceededError || (e instanceof GRPCUnavailableError && !/etcdserver:/.test(e.message));

/** A member that did not answer, or answered "unavailable" (no leader, leader changed): another may answer. */
const transient = (e: unknown) => e instanceof Error && (isRecoverableError(e) || isBrokenCircuitError(e));

/**
 * The store through etcd's gRPC API with the etcd3 package, for the long-running agent: one connection per member
 * kept open, leases renewed over a keepalive stream, watches that resume from the last revision they delivered on
 * another member. Each attempt has a deadline; a member that missed one is skipped for a while (a circuit breaker,
 * tried again after 1 s, then up to 8 s), so a frozen member costs one deadline, not one per call.
 */
export async function connectEtcd3(endpoints: readonly string[], opts: Etcd3Options = {}): Promise<Store> {
  const attemptMs = opts.attemptTimeoutMs ?? 1000;
  // A daemon's call had better ride out an election (a member in it holds writes until the deadline) than fail fast.
  const budgetMs = opts.deadlineMs ?? Math.max(8000, attemptMs * (endpoints.length + 1));
  const { credentials, auth } = credentialsOf(opts);
  const client = new Etcd3({
    hosts: [...endpoints],
    ...(credentials ? { credentials } : {}),
    ...(auth ? { auth: { ...auth, callOptions: () => ({ deadline: Date.now() + attemptMs }) } } : {}),
    dialTimeout: attemptMs,
    // Streams (watch, keepalive) live long: their liveness is the HTTP/2 ping below, not a deadline.
    defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + attemptMs }),
    // A fleet's lists outgrow gRPC's 4 MiB default (10,000 job intents are about 4.5 MB): etcd itself sends up to 2 GiB.
    grpcOptions: { 'grpc.keepalive_time_ms': KEEPALIVE_MS, 'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS, 'grpc.max_receive_message_length': -1 },
    faultHandling: {
      // One member: nowhere else to go, so no breaker (it would only refuse calls the member could answer).
      host: () =>
        endpoints.length < 2
          ? noop
          : circuitBreaker(handleWhen(memberFailed), {
              halfOpenAfter: new ExponentialBackoff({ initialDelay: 1000, maxDelay: 8000 }),
              breaker: new ConsecutiveBreaker(1),
            }),
      // Retries are ours (below), with a pause and an overall deadline.
      global: noop,
      // The package calls next() on it first: a factory, whatever its declared type says.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }) as unknown as IBackoff<unknown>,
    },
  });

  const unavailable = (cause: unknown) => {
    const reason = (cause as Error)?.message?.split('\n')[0] ?? String(cause);
    return new StoreUnavailableError(`etcd at ${endpoints.join(',')} is not reachable: ${reason}`, {
      hint: tlsHint(reason) ?? 'check --etcd / KNARR_ETCD, or start the local etcd with: knarr etcd up',
      cause,
      detail: { endpoints: [...endpoints] },
    });
  };
  const typed = (what: string, e: unknown): Error => {
    const message = (e as Error).message;
    if (e instanceof EtcdAuthenticationFailedError)
      return new UserError(`etcd at ${endpoints.join(',')} refused ${what}: wrong user or password (${message})`, {
        hint: 'check --etcd-user and --etcd-password-file (KNARR_ETCD_USER, KNARR_ETCD_PASSWORD)',
        cause: e,
      });
    if (e instanceof GRPCUnauthenticatedError || e instanceof EtcdPermissionDeniedError || /user name is empty|invalid auth token/.test(message))
      return new UserError(`etcd at ${endpoints.join(',')} refused ${what}: ${message}`, {
        hint: opts.user
          ? `give user ${opts.user} a role that may use the fleet's keys`
          : 'this etcd requires a user: give --etcd-user and --etcd-password-file',
        cause: e,
      });
    const lease = /requested lease not found/.test(message) ? /lease (\d+)/.exec(what)?.[1] : undefined;
    if (lease !== undefined || /requested lease not found/.test(message)) return new LeaseNotFoundError(lease ?? '?', { cause: e });
    if (transient(e)) return unavailable(e);
    return new FailureError(`etcd refused ${what}: ${message}`, { cause: e });
  };
  /** Tries the call on the members until one answers or the budget is spent; "unavailable" answers are tried again. */
  const call = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    const until = Date.now() + budgetMs;
    for (let pause = 50; ; pause = Math.min(pause * 2, 500)) {
      try {
        return await fn();
      } catch (e) {
        if (!transient(e) || Date.now() + pause >= until) throw typed(what, e);
        await sleep(pause);
      }
    }
  };

  const range = (key: string, prefix: boolean) =>
    call(`a read of ${key}`, () => client.kv.range(prefix ? { key: enc(key), range_end: rangeEnd(key) } : { key: enc(key) }));
  const putOp = (p: { key: string; value: string; lease?: string; keepLease?: boolean }): IRequestOp => ({
    request_put: { key: enc(p.key), value: enc(p.value), ...(p.lease ? { lease: p.lease } : {}), ...(p.keepLease ? { ignore_lease: true } : {}) },
  });
  const compareOf = (g: Guard): ICompare =>
    'modRevision' in g
      ? { key: enc(g.key), target: MOD, result: EQUAL, mod_revision: g.modRevision }
      : 'value' in g
        ? { key: enc(g.key), target: VALUE, result: EQUAL, value: enc(g.value) }
        : { key: enc(g.key), target: CREATE, result: EQUAL, create_revision: 0 };
  const txn = async (what: string, compare: ICompare[], success: IRequestOp[]) =>
    (await call(what, () => client.kv.txn({ compare, success, failure: [] }))).succeeded === true;
  const absent = (key: string): Guard => ({ key, absent: true });
  const keepAlive = leaseKeeper(client, attemptMs);

  const store: Store = {
    endpoints,
    async get(key) {
      const kv = (await range(key, false)).kvs[0];
      return kv ? kv.value.toString('utf8') : null;
    },
    async put(key, value, lease) {
      await call(`a write of ${key}${lease ? ` under lease ${lease}` : ''}`, () =>
        client.kv.put({ key: enc(key), value: enc(value), ...(lease ? { lease } : {}) }),
      );
    },
    async grantLease(ttlSeconds) {
      return (await call('a new lease', () => client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 }))).ID;
    },
    async keepAlive(lease) {
      return call(`a renewal of lease ${lease}`, () => keepAlive.renew(lease));
    },
    async revokeLease(lease) {
      await call(`the revocation of lease ${lease}`, () => client.leaseClient.leaseRevoke({ ID: lease })).catch(() => undefined);
    },
    transact: (guards, puts, deletes) =>
      txn(`a transaction on ${[...puts.map((p) => p.key), ...deletes.map((d) => (typeof d === 'string' ? d : d.from))].join(', ')}`, guards.map(compareOf), [
        ...puts.map(putOp),
        ...deletes.map((k: string | KeyRange) => ({
          request_delete_range: typeof k === 'string' ? { key: enc(k) } : { key: enc(k.from), range_end: enc(k.to) },
        })),
      ]),
    createAllIfAbsent: (entries) =>
      txn(
        `the creation of ${entries.map((e) => e.key).join(', ')}`,
        entries.map((e) => compareOf(absent(e.key))),
        entries.map((e) => putOp(e)),
      ),
    createIfAbsent: (key, value) => txn(`the creation of ${key}`, [compareOf(absent(key))], [putOp({ key, value })]),
    async increment(key) {
      for (;;) {
        const kv = (await range(key, false)).kvs[0];
        const next = (kv ? Number(kv.value.toString('utf8')) : 0) + 1;
        const guard: Guard = kv ? { key, modRevision: kv.mod_revision } : absent(key);
        if (await txn(`an increment of ${key}`, [compareOf(guard)], [putOp({ key, value: String(next) })])) return next;
      }
    },
    async getVersioned(key) {
      const kv = (await range(key, false)).kvs[0];
      return kv ? { value: kv.value.toString('utf8'), modRevision: kv.mod_revision } : null;
    },
    putIfUnchanged: (key, value, modRevision, o) =>
      txn(`a write of ${key}`, [compareOf({ key, modRevision })], [putOp({ key, value, keepLease: o?.keepLease })]),
    putAllIfUnchanged: (guard, modRevision, puts) =>
      txn(`a write of ${puts.map((p) => p.key).join(', ')}`, [compareOf({ key: guard, modRevision })], puts.map(putOp)),
    watch: (prefix, onChange, signal) => watchPrefix(client, prefix, onChange, signal, budgetMs, unavailable),
    async delete(key) {
      return Number((await call(`a delete of ${key}`, () => client.kv.deleteRange({ key: enc(key) }))).deleted) > 0;
    },
    async deletePrefix(prefix) {
      return Number((await call(`a delete under ${prefix}`, () => client.kv.deleteRange({ key: enc(prefix), range_end: rangeEnd(prefix) }))).deleted);
    },
    async list(prefix) {
      return (await range(prefix, true)).kvs
        .map((kv: IKeyValue) => ({ key: kv.key.toString('utf8'), value: kv.value.toString('utf8') }))
        .sort((a, b) => a.key.localeCompare(b.key));
    },
    async close() {
      keepAlive.close();
      client.close();
    },
  };
  // Fail fast with a clear message instead of on the first real call.
  try {
    await range('/knarr/', false);
  } catch (e) {
    client.close();
    throw e;
  }
  return store;
}

/** The stream of a LeaseKeepAlive call, as @grpc/grpc-js hands it over. */
interface KeepAliveStream {
  write(req: { ID: string }): boolean;
  cancel(): void;
  on(event: 'data', fn: (res: { ID: string; TTL: string }) => void): unknown;
  on(event: 'error', fn: (e: Error) => void): unknown;
  on(event: 'end', fn: () => void): unknown;
}

/** The etcd3 package's connection pool (not exported): a stream of our own still goes through its members' breakers. */
interface Pool {
  withConnection<T>(
    service: string,
    fn: (c: { resource: unknown; client: { leaseKeepAlive(meta: unknown, opts: object): KeepAliveStream }; metadata: unknown }) => T,
  ): Promise<T>;
  markFailed(resource: unknown, error: Error): void;
}

/**
 * Renews leases over one LeaseKeepAlive stream (etcd has no single-request renewal): each renewal waits for its
 * answer up to the deadline, else the stream's member is marked failed and the stream dropped; the next opens elsewhere.
 */
function leaseKeeper(client: Etcd3, attemptMs: number) {
  const pool = (client as unknown as { pool: Pool }).pool;
  type Open = { resource: unknown; stream: KeepAliveStream };
  let current: Promise<Open> | null = null;
  const waiting = new Map<string, ((ttl: number | Error) => void)[]>();
  const settle = (id: string, outcome: number | Error) => {
    const ws = waiting.get(id) ?? [];
    waiting.delete(id);
    for (const w of ws) w(outcome);
  };
  /** Ends the stream; with failed, its member counts a failure (and is skipped for a while). */
  const drop = (s: Promise<Open>, e: Error, failed: boolean) => {
    if (current !== s) return;
    current = null;
    void s.then(
      (o) => {
        if (failed) pool.markFailed(o.resource, e);
        o.stream.cancel();
      },
      () => undefined,
    );
    for (const id of [...waiting.keys()]) settle(id, e);
  };
  const open = () => {
    if (current) return current;
    const s = pool.withConnection('Lease', ({ resource, client: c, metadata }) => ({ resource, stream: c.leaseKeepAlive(metadata, {}) }));
    current = s;
    s.then(
      (o) => {
        o.stream.on('data', (res) => settle(String(res.ID), Number(res.TTL)));
        o.stream.on('error', (e) => drop(s, castGrpcError(e), true));
        o.stream.on('end', () => drop(s, new GRPCUnavailableError('the lease keepalive stream ended'), false));
      },
      (e: Error) => drop(s, e, false),
    );
    return s;
  };
  return {
    async renew(lease: string): Promise<boolean> {
      const s = open();
      const live = (await s).stream;
      const answer = new Promise<number | Error>((resolve) => {
        const ws = waiting.get(lease) ?? [];
        ws.push(resolve);
        waiting.set(lease, ws);
      });
      live.write({ ID: lease });
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<Error>((resolve) => {
        timer = setTimeout(() => resolve(new Error(`no keepalive answer within ${attemptMs}ms`)), attemptMs);
      });
      const outcome = await Promise.race([answer, deadline]);
      clearTimeout(timer);
      if (outcome instanceof Error) {
        // A silent member: marked failed, and the caller's retry goes elsewhere.
        const e = new GRPCDeadlineExceededError(outcome.message);
        drop(s, e, true);
        throw e;
      }
      return outcome > 0;
    },
    close() {
      if (current) drop(current, new Error('the store was closed'), false);
    },
  };
}

/**
 * A watch on prefix that survives its member: on a broken stream the etcd3 package re-opens it on a member that
 * answers, and it resumes from the revision after the last event delivered, so nothing in the gap is lost. Only when
 * that revision was compacted away is a fresh watch made, reported as a change of everything (key null).
 */
function watchPrefix(
  client: Etcd3,
  prefix: string,
  onChange: (events: WatchEvent[]) => void,
  signal: AbortSignal,
  budgetMs: number,
  unavailable: (cause: unknown) => Error,
): Promise<void> {
  return new Promise((resolve, reject) => {
    // Aborted already (the agent stopping while it starts): no watch, and the caller goes on.
    if (signal.aborted) return resolve();
    let next: bigint | null = null;
    let established = false;
    let current: Watcher | null = null;
    let over = false;
    const start = () => {
      if (signal.aborted || over) return;
      // Its own stream: a watch etcd cancels (compaction) must not hold up the others on a shared stream.
      const builder = client.namespace('').watch().prefix(prefix);
      if (next !== null) builder.startRevision(next.toString());
      const w = builder.watcher();
      current = w;
      // etcd3 would resume from the revision the member was at when the watch was made, past events not yet delivered.
      const pin = () => {
        if (next !== null) (w as unknown as { request: { start_revision: string } }).request.start_revision = next.toString();
      };
      w.on('connected', (res: IWatchResponse) => {
        if (next === null) next = BigInt(res.header.revision) + 1n;
        pin();
        if (!established) {
          established = true;
          resolve();
        }
      });
      w.on('data', (res: IWatchResponse) => {
        const events = res.events ?? [];
        if (events.length > 0) {
          next = BigInt(events[events.length - 1]!.kv.mod_revision) + 1n;
          pin();
          onChange(
            events.map((e) => {
              const key = e.kv.key.toString('utf8');
              return String(e.type).toLowerCase() === 'delete' ? { key, deleted: true } : { key, deleted: false, value: e.kv.value.toString('utf8') };
            }),
          );
        } else {
          // A progress notice: etcd sends it only once the watch has delivered everything up to its revision.
          const seen = BigInt(res.header.revision) + 1n;
          if (next === null || seen > next) next = seen;
          pin();
        }
      });
      w.on('error', () => {
        // Cancelled by etcd (its start revision compacted): resume from now, and everything may have changed.
        void w.cancel().catch(() => undefined);
        next = null;
        if (established) onChange([{ key: null, deleted: false }]);
        setTimeout(start, 200).unref();
      });
    };
    const giveUp = setTimeout(() => {
      if (established) return;
      over = true;
      signal.removeEventListener('abort', abort);
      void current?.cancel().catch(() => undefined);
      current = null;
      reject(unavailable(new Error(`the watch on ${prefix} was not set up within ${budgetMs}ms`)));
    }, budgetMs);
    giveUp.unref();
    const abort = () => {
      clearTimeout(giveUp);
      void current?.cancel().catch(() => undefined);
      current = null;
      if (!established) resolve();
    };
    signal.addEventListener('abort', abort, { once: true });
    start();
  });
}
