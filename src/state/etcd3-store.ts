import { setTimeout as sleep } from 'node:timers/promises';
import { rootCertificates } from 'node:tls';
import { CircuitState, circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen, isBrokenCircuitError, noop } from 'cockatiel';
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

// A frozen member under a store that keeps no lease is noticed by HTTP/2 pings, no etcd request: etcd takes them every
// 5 s at most (--grpc-keepalive-min-time). An agent's lease renewals notice it sooner (its streams share the member).
const KEEPALIVE_MS = 5000;
const KEEPALIVE_TIMEOUT_MS = 1000;
// The most a watch waits before opening again on another member, after failures in a row.
const MAX_REOPEN_PAUSE_MS = 2000;

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

/** A member that missed a deadline and did not answer a status request either: a frozen process, not an election. */
class SilentMemberError extends GRPCUnavailableError {}

/**
 * The member itself failed (connection lost, or silent): skip it. Not a stream we cancelled, nor etcd's own "no
 * leader", "leader changed" or "request timed out", which every member says during an election; nor a missed
 * deadline alone, which a member without a leader misses too (the status probe tells them apart).
 */
const memberFailed = (e: Error) => e instanceof GRPCUnavailableError && !/etcdserver:/.test(e.message);

// How long a member that missed a deadline has to answer a status request (answered locally, leader or not).
const PROBE_MS = 250;

/** A member that did not answer, or answered "unavailable" (no leader, leader changed): another may answer. */
const transient = (e: unknown) => e instanceof Error && (isRecoverableError(e) || isBrokenCircuitError(e));

/**
 * The store through etcd's gRPC API with the etcd3 package, for the long-running agent: one connection per member
 * kept open, leases renewed over a keepalive stream, watches that resume from the last revision they delivered on
 * another member. Calls and streams go to the first member that has not failed, in the order of the endpoints. Each
 * attempt has a deadline; a member that missed one (or a lease renewal) is skipped until no other answers (a circuit
 * breaker), and every stream on it moves at once, so a frozen member costs one deadline, not one per call.
 */
export async function connectEtcd3(endpoints: readonly string[], opts: Etcd3Options = {}): Promise<Store> {
  const attemptMs = opts.attemptTimeoutMs ?? 1000;
  // A daemon's call had better ride out an election (a member in it holds writes until the deadline) than fail fast.
  const budgetMs = opts.deadlineMs ?? Math.max(8000, attemptMs * (endpoints.length + 1));
  const { credentials, auth } = credentialsOf(opts);
  // The breakers are made with the client, and probe its members only later, once members is set.
  let members: MemberStreams;
  const client = new Etcd3({
    hosts: [...endpoints],
    ...(credentials ? { credentials } : {}),
    ...(auth ? { auth: { ...auth, callOptions: () => ({ deadline: Date.now() + attemptMs }) } } : {}),
    dialTimeout: attemptMs,
    // Streams (watch, keepalive) live long: their liveness is the lease renewals and the HTTP/2 pings below, not a deadline.
    defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + attemptMs }),
    // A fleet's lists outgrow gRPC's 4 MiB default (10,000 job intents are about 4.5 MB): etcd itself sends up to 2 GiB.
    grpcOptions: { 'grpc.keepalive_time_ms': KEEPALIVE_MS, 'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS, 'grpc.max_receive_message_length': -1 },
    faultHandling: {
      // One member: nowhere else to go, so no breaker (it would only refuse calls the member could answer).
      host: (endpoint) => (endpoints.length < 2 ? noop : (probingBreaker(() => members.silent(endpoint)) as unknown as typeof noop)),
      // Retries are ours (below), with a pause and an overall deadline.
      global: noop,
    },
  });

  members = memberStreams(client);

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
  // A renewal is answered in milliseconds: 0.4 of an attempt (and a 0.25 s probe) leaves a 2 s lease time to renew elsewhere.
  const keepAlive = leaseKeeper(members, Math.max(100, Math.floor(attemptMs * 0.4)));

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
    watch: (prefix, onChange, signal) => watchPrefix(members, prefix, onChange, signal, { budgetMs, attemptMs }, unavailable),
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
      members.close();
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

/** A bidirectional gRPC stream as @grpc/grpc-js hands it over. */
interface DuplexStream<Req, Res> {
  write(req: Req): boolean;
  cancel(): void;
  on(event: 'data', fn: (res: Res) => void): unknown;
  on(event: 'error', fn: (e: Error) => void): unknown;
  on(event: 'end', fn: () => void): unknown;
}

/** One member in the etcd3 package's pool (not exported): its gRPC clients and its circuit breaker. */
interface Member {
  host: string;
  faultHandling: { state?: CircuitState; onBreak?: (fn: () => void) => unknown };
  getServiceClient(name: 'Lease' | 'Watch' | 'Maintenance'): {
    leaseKeepAlive(meta: unknown, opts: object): DuplexStream<{ ID: string }, { ID: string; TTL: string }>;
    watch(meta: unknown, opts: object): DuplexStream<object, IWatchResponse>;
    status(req: object, meta: unknown, opts: object, done: (e: Error | null) => void): unknown;
  };
}

/** The etcd3 package's connection pool (not exported). */
interface Pool {
  hosts: Member[];
  authenticator: { getMetadata(): Promise<unknown> };
  markFailed(resource: unknown, error: Error): void;
  shuffledHosts(): Generator<Member>;
}

/** A stream open on a member, ended (to be opened again elsewhere) when that member is found failed. */
interface OnMember {
  member: Member;
  drop(): void;
}

/**
 * A member's circuit breaker: it opens on a lost connection, or on a missed deadline when the member then does not
 * answer a status request either (frozen). A member that only has no leader (an election) is not skipped for it.
 */
function probingBreaker(silent: () => Promise<string | null>) {
  const inner = circuitBreaker(handleWhen(memberFailed), {
    halfOpenAfter: new ExponentialBackoff({ initialDelay: 1000, maxDelay: 8000 }),
    breaker: new ConsecutiveBreaker(1),
  });
  return {
    get state() {
      return inner.state;
    },
    onBreak: inner.onBreak,
    async execute<T>(fn: () => PromiseLike<T> | T): Promise<T> {
      try {
        return await inner.execute(fn);
      } catch (e) {
        const host = e instanceof GRPCDeadlineExceededError ? await silent() : null;
        if (host !== null) await inner.execute(() => Promise.reject(new SilentMemberError(`etcd member ${host} answers nothing`))).catch(() => undefined);
        throw e;
      }
    },
  };
}

/**
 * Where the store's streams (watches, lease renewals) and calls go: the first member, in the order of the endpoints,
 * whose breaker is closed. All streams share it, so a renewal that goes unanswered (a frozen member) moves the watches
 * too: a member marked failed by any call ends every stream on it, and they open again on the next member, at once.
 */
function memberStreams(client: Etcd3) {
  const pool = (client as unknown as { pool: Pool }).pool;
  const open = new Set<OnMember>();
  const healthy = (m: Member) => m.faultHandling.state === undefined || m.faultHandling.state === CircuitState.Closed;
  const brokeAt = new Map<Member, number>();
  let closed = false;
  for (const m of pool.hosts)
    m.faultHandling.onBreak?.(() => {
      brokeAt.set(m, Date.now());
      for (const s of [...open]) if (s.member === m) s.drop();
    });
  // Calls try the healthy members first, in order: a member that failed is tried again only when no other answers.
  pool.shuffledHosts = function* () {
    for (;;) {
      const ordered = [...pool.hosts.filter(healthy), ...pool.hosts.filter((m) => !healthy(m))];
      for (const m of ordered) yield m;
    }
  };
  return {
    /** The member a new stream opens on: the first healthy one; with none healthy, the one that failed longest ago. */
    pick(): Member {
      return pool.hosts.find(healthy) ?? [...pool.hosts].sort((a, b) => (brokeAt.get(a) ?? 0) - (brokeAt.get(b) ?? 0))[0]!;
    },
    metadata: () => pool.authenticator.getMetadata(),
    track(s: OnMember): () => void {
      open.add(s);
      return () => open.delete(s);
    },
    /** The member of endpoint when it answers no status request (frozen), else null. */
    async silent(endpoint: string): Promise<string | null> {
      const m = pool.hosts.find((h) => h.host === endpoint.replace(/^https?:\/\//, ''));
      return m && !(await this.answers(m, PROBE_MS)) ? m.host : null;
    },
    /** Whether the member answers a status request within ms: it does while it has no leader, a frozen one does not. */
    async answers(member: Member, ms: number): Promise<boolean> {
      const metadata = await pool.authenticator.getMetadata();
      return new Promise((resolve) => member.getServiceClient('Maintenance').status({}, metadata, { deadline: Date.now() + ms }, (e) => resolve(e === null)));
    },
    /** The member did not answer in time, or its connection failed: its breaker opens, which ends its streams. */
    failed(member: Member, e: Error) {
      pool.markFailed(member, e);
    },
    /** Whether the store was closed: a stream dropped then is not opened again. */
    get closed() {
      return closed;
    },
    close() {
      closed = true;
      for (const s of [...open]) s.drop();
    },
  };
}
type MemberStreams = ReturnType<typeof memberStreams>;

/**
 * Renews leases over one LeaseKeepAlive stream (etcd has no single-request renewal): each renewal waits for its
 * answer up to answerMs, else the stream's member is marked failed (which moves the watches off it too) and the
 * stream dropped; the caller's retry opens the next one on another member.
 */
function leaseKeeper(members: MemberStreams, answerMs: number) {
  type Open = { member: Member; stream: DuplexStream<{ ID: string }, { ID: string; TTL: string }>; untrack: () => void };
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
        o.untrack();
        o.stream.cancel();
        if (failed) members.failed(o.member, e);
      },
      () => undefined,
    );
    for (const id of [...waiting.keys()]) settle(id, e);
  };
  const open = () => {
    if (current) return current;
    const s = (async (): Promise<Open> => {
      const member = members.pick();
      const stream = member.getServiceClient('Lease').leaseKeepAlive(await members.metadata(), {});
      const untrack = members.track({ member, drop: () => drop(s, new GRPCUnavailableError(`etcd member ${member.host} failed`), false) });
      return { member, stream, untrack };
    })();
    current = s;
    s.then(
      (o) => {
        o.stream.on('data', (res) => settle(String(res.ID), Number(res.TTL)));
        o.stream.on('error', (e) => {
          const err = castGrpcError(e);
          drop(s, err, memberFailed(err));
        });
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
        timer = setTimeout(() => resolve(new GRPCDeadlineExceededError(`no keepalive answer within ${answerMs}ms`)), answerMs);
      });
      const outcome = await Promise.race([answer, deadline]);
      clearTimeout(timer);
      if (outcome instanceof GRPCDeadlineExceededError) {
        const { member } = await s;
        // A member that still answers lost its leader (an election): it is kept, but the stream goes, since etcd renews a
        // stream's leases one after the other and this one may wait for the old leader for seconds; the caller tries again.
        if (current === s && (await members.answers(member, PROBE_MS))) {
          const e = new GRPCUnavailableError(`etcd member ${member.host} did not renew lease ${lease} in time (an election?)`);
          drop(s, e, false);
          throw e;
        }
        // A silent member: marked failed, which moves every stream off it, and the caller's retry goes elsewhere.
        drop(s, new SilentMemberError(`etcd member ${member.host} answers nothing`), true);
        throw outcome;
      }
      if (outcome instanceof Error) throw outcome;
      return outcome > 0;
    },
    close() {
      if (current) drop(current, new Error('the store was closed'), false);
    },
  };
}

/**
 * A watch on prefix that survives its member: on a broken stream, a member found failed by any call, or no answer to
 * its creation within the attempt deadline, it opens again on another member and resumes from the revision after
 * the last event delivered, so nothing in the gap is lost. Only when that revision was compacted away is a fresh
 * watch made, reported as a change of everything (key null).
 */
function watchPrefix(
  members: MemberStreams,
  prefix: string,
  onChange: (events: WatchEvent[]) => void,
  signal: AbortSignal,
  limits: { budgetMs: number; attemptMs: number },
  unavailable: (cause: unknown) => Error,
): Promise<void> {
  return new Promise((resolve, reject) => {
    // Aborted already (the agent stopping while it starts): no watch, and the caller goes on.
    if (signal.aborted) return resolve();
    let next: bigint | null = null;
    let established = false;
    let over = false;
    let pause = 100;
    let current: (() => void) | null = null;
    const start = async () => {
      if (signal.aborted || over || members.closed) return;
      const member = members.pick();
      let stream: DuplexStream<object, IWatchResponse>;
      try {
        stream = member.getServiceClient('Watch').watch(await members.metadata(), {});
      } catch {
        // No token (auth failed everywhere) or a closed client: try again after a pause, until the budget ends.
        setTimeout(() => void start(), (pause = Math.min(pause * 2, MAX_REOPEN_PAUSE_MS))).unref();
        return;
      }
      let ended = false;
      /** Ends this stream; the watch opens again (after a pause if it failed) unless it was stopped. */
      const end = (failure: Error | null) => {
        if (ended) return;
        ended = true;
        clearTimeout(created);
        untrack();
        if (current === stop) current = null;
        stream.cancel();
        if (failure && memberFailed(failure)) members.failed(member, failure);
        if (signal.aborted || over || members.closed) return;
        const wait = failure ? pause : 0;
        pause = Math.min(pause * 2, MAX_REOPEN_PAUSE_MS);
        setTimeout(() => void start(), wait).unref();
      };
      const stop = () => {
        ended = true;
        clearTimeout(created);
        untrack();
        stream.cancel();
      };
      current = stop;
      const untrack = members.track({ member, drop: () => end(null) });
      // A member that takes the stream but never answers is left: skipped too if it answers no status request (frozen).
      let answered = false;
      const created = setTimeout(() => {
        void members.answers(member, PROBE_MS).then((alive) => {
          if (answered) return;
          const what = `no answer from ${member.host} to a watch within ${limits.attemptMs}ms`;
          end(alive ? new GRPCDeadlineExceededError(what) : new SilentMemberError(what));
        });
      }, limits.attemptMs);
      stream.on('data', (res) => {
        if (ended) return;
        if (res.canceled) {
          // Cancelled by etcd (its start revision compacted): resume from now, and everything may have changed.
          next = null;
          if (established) onChange([{ key: null, deleted: false }]);
          end(new Error(`etcd cancelled the watch on ${prefix}: ${String(res.cancel_reason ?? '')}`));
          return;
        }
        if (res.created) {
          answered = true;
          clearTimeout(created);
          pause = 100;
          if (next === null) next = BigInt(res.header.revision) + 1n;
          if (!established) {
            established = true;
            clearTimeout(giveUp);
            resolve();
          }
          return;
        }
        const events = res.events ?? [];
        if (events.length > 0) {
          next = BigInt(events[events.length - 1]!.kv.mod_revision) + 1n;
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
        }
      });
      stream.on('error', (e) => end(castGrpcError(e)));
      stream.on('end', () => end(new GRPCUnavailableError('the watch stream ended')));
      stream.write({
        create_request: {
          key: enc(prefix),
          range_end: rangeEnd(prefix),
          progress_notify: true,
          ...(next !== null ? { start_revision: next.toString() } : {}),
        },
      });
    };
    const giveUp = setTimeout(() => {
      if (established) return;
      over = true;
      signal.removeEventListener('abort', abort);
      current?.();
      current = null;
      reject(unavailable(new Error(`the watch on ${prefix} was not set up within ${limits.budgetMs}ms`)));
    }, limits.budgetMs);
    giveUp.unref();
    const abort = () => {
      clearTimeout(giveUp);
      current?.();
      current = null;
      if (!established) resolve();
    };
    signal.addEventListener('abort', abort, { once: true });
    void start();
  });
}
