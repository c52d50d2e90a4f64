import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { DryRunWriteError, FailureError, KnarrError, LeaseNotFoundError, StoreUnavailableError, UserError, ValidationError } from '../core/errors.js';
import { onJsonLines } from '../core/streams.js';

/** etcd answered, but refused the request (too large, compacted...): another member would refuse it too. */
class EtcdRefused extends FailureError {
  constructor(status: number, path: string, message: string) {
    super(`etcd refused ${path} (${status}): ${message}`, { detail: { status, path } });
  }
}

/** How connectEtcd reaches the members: TLS and etcd auth (files as the settings name them) and its deadlines. */
export interface EtcdConnectOptions {
  /** PEM CA file that signed the members' certificates (https:// endpoints); default: the system's CAs. */
  ca?: string | null;
  /** PEM client certificate file and its key, for an etcd started with --client-cert-auth. */
  cert?: string | null;
  key?: string | null;
  /** etcd auth: the user, and its password or a file whose first line is the password. */
  user?: string | null;
  password?: string | null;
  passwordFile?: string | null;
  /** One attempt on one endpoint, connecting included (default 1000 ms). */
  attemptTimeoutMs?: number;
  /** A whole call, across retries and endpoints (default 4000 ms). */
  deadlineMs?: number;
}

export interface KeyValue {
  key: string;
  value: string;
}

/** The fleet store: etcd, behind the few operations knarr needs. */
export interface Store {
  readonly endpoints: readonly string[];
  get(key: string): Promise<string | null>;
  /** With a lease, the key goes when the lease lapses. */
  put(key: string, value: string, lease?: string): Promise<void>;
  /** A lease of ttl seconds; its id is a decimal string (etcd's int64). */
  grantLease(ttlSeconds: number): Promise<string>;
  /** Renews the lease; false when it has already lapsed. */
  keepAlive(lease: string): Promise<boolean>;
  revokeLease(lease: string): Promise<void>;
  /** Writes only if the key does not exist, in one transaction; true when written. */
  createIfAbsent(key: string, value: string): Promise<boolean>;
  /** One transaction: when every guard holds, every put and delete (a key, or the keys from `from` up to `to`) is done; true when done. */
  transact(guards: Guard[], puts: { key: string; value: string; lease?: string; keepLease?: boolean }[], deletes: (string | KeyRange)[]): Promise<boolean>;
  /** Writes every key only if none of them exists, in one transaction; true when written. */
  createAllIfAbsent(entries: { key: string; value: string }[]): Promise<boolean>;
  /** Increments a counter atomically (compare-and-swap on its revision); returns the new value. */
  increment(key: string): Promise<number>;
  /** The value with its modification revision (for putIfUnchanged), or null. */
  getVersioned(key: string): Promise<{ value: string; modRevision: string } | null>;
  /** Writes only if the key was not modified since modRevision, in one transaction; true when written. */
  putIfUnchanged(key: string, value: string, modRevision: string, opts?: { keepLease?: boolean }): Promise<boolean>;
  /** Writes every put (each with its own lease, if any) only if guard was not modified since modRevision; one transaction. */
  putAllIfUnchanged(guard: string, modRevision: string, puts: { key: string; value: string; lease?: string }[]): Promise<boolean>;
  /**
   * Calls onChange with the keys that changed under prefix, as etcd reports them, until signal aborts.
   * Resolves when the watch is established; a broken watch is re-made and reported as a change of everything (key null).
   */
  watch(prefix: string, onChange: (events: WatchEvent[]) => void, signal: AbortSignal): Promise<void>;
  delete(key: string): Promise<boolean>;
  deletePrefix(prefix: string): Promise<number>;
  list(prefix: string): Promise<KeyValue[]>;
  close(): Promise<void>;
}

/** The keys from `from` (included) up to `to` (excluded). */
export interface KeyRange {
  from: string;
  to: string;
}

/** A condition of a transaction: the key's revision, its value, or its absence. */
export type Guard = { key: string; modRevision: string } | { key: string; value: string } | { key: string; absent: true };

export interface WatchEvent {
  /** null after the watch was re-made: anything may have changed. */
  key: string | null;
  deleted: boolean;
  /** What was written (absent for a delete, or after the watch was re-made). */
  value?: string;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

/** The first key after every key that starts with prefix (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): string {
  const buf = Buffer.from(prefix, 'utf8');
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i]! < 0xff) {
      const end = Buffer.from(buf.subarray(0, i + 1));
      end[i]! += 1;
      return end.toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64');
}

interface RawKv {
  key?: string;
  value?: string;
  mod_revision?: string;
  create_revision?: string;
}

/** Why one attempt on one endpoint failed, and whether another attempt may do better. */
interface Failure {
  reason: string;
  /** The request may have reached etcd (and been applied) before it failed. */
  ambiguous: boolean;
  /** A setting is wrong (TLS, scheme): retrying will not help. */
  config?: 'server-cert' | 'client-cert' | 'scheme';
  /** The auth token expired: authenticate again, then retry. */
  reauth?: boolean;
  /** No answer in time: says less than an earlier, more specific reason. */
  silent?: boolean;
}

class AttemptFailed extends Error {
  constructor(readonly failure: Failure) {
    super(failure.reason);
  }
}

const NOT_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
const SERVER_CERT = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** A network or TLS error of one attempt, as a Failure. */
function networkFailure(e: unknown, sent: boolean, secure: boolean): Failure {
  const err = e as NodeJS.ErrnoException;
  const code = err.code ?? '';
  const reason = err.message?.split('\n')[0] ?? String(e);
  if (SERVER_CERT.has(code)) return { reason: `its certificate is not trusted (${code})`, ambiguous: false, config: 'server-cert' };
  if (/ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|HANDSHAKE_FAILURE)/.test(code))
    return { reason: `it refused this client's certificate (${code})`, ambiguous: false, config: 'client-cert' };
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG/.test(code) || /wrong version number/.test(reason))
    return { reason: 'it does not speak TLS', ambiguous: false, config: 'scheme' };
  if (NOT_CONNECTED.has(code)) return { reason, ambiguous: false };
  if (code === 'ETIMEDOUT') return { reason, ambiguous: sent, silent: true };
  // etcd with TLS on its client port closes a plain-http connection without a word.
  if (!secure && reason === 'socket hang up') return { reason: 'it closed the connection (if it serves https, write https://)', ambiguous: sent };
  // A plain-http etcd answers a TLS hello with a reset, as often as with a closed connection.
  if (secure && code === 'ECONNRESET') return { reason: 'it reset the connection (if it serves plain http, write http://)', ambiguous: sent };
  if (secure && /before secure TLS connection was established/.test(reason))
    return { reason: 'it closed the connection in the TLS handshake (if it serves plain http, write http://)', ambiguous: false };
  return { reason, ambiguous: sent };
}

/** etcd's message in a gateway error answer ({"error": ..., "message": ..., "code": ...}), or the text. */
function etcdMessage(text: string): string {
  try {
    const j = JSON.parse(text) as { message?: string; error?: string };
    return (j.message ?? j.error ?? text).trim();
  } catch {
    return text.trim().slice(0, 200);
  }
}

const RETRIED = /leader changed|too many requests|timed out|no leader|not capable|unavailable|server stopped|not started|raft/i;

/** A TLS or password file the settings name, read at connect; a file that cannot be read is a usage error naming its setting. */
export function readSecret(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ValidationError(field, `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The lease a request names, for LeaseNotFoundError. */
function leaseOf(body: unknown): string {
  const found = /"(?:lease|ID)":"?(\d+)/.exec(JSON.stringify(body));
  return found?.[1] ?? '?';
}

function unavailable(endpoints: readonly string[], failures: ReadonlyMap<string, Failure>, cause?: unknown): StoreUnavailableError {
  const each = [...failures].map(([endpoint, f]) => `${endpoint}: ${f.reason}`).join('; ');
  const config = [...failures.values()].find((f) => f.config)?.config;
  const hint =
    config === 'server-cert'
      ? "give the CA that signed the members' certificates with --etcd-ca (KNARR_ETCD_CA)"
      : config === 'client-cert'
        ? 'give a client certificate the members accept with --etcd-cert and --etcd-key (KNARR_ETCD_CERT, KNARR_ETCD_KEY)'
        : config === 'scheme'
          ? 'the endpoint serves plain http: write it http://HOST:PORT in --etcd / KNARR_ETCD'
          : 'check --etcd / KNARR_ETCD, or start the local etcd with: knarr etcd up';
  return new StoreUnavailableError(`etcd at ${endpoints.join(',')} is not reachable${each ? `: ${each}` : ''}`, {
    hint,
    cause,
    detail: { endpoints: [...endpoints] },
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The members behind one client: TLS, the auth token, and the member that answered last, which every
 * call tries first. Each attempt has a deadline (connect and answer), each call another.
 */
class Gateway {
  readonly attemptTimeoutMs: number;
  readonly deadlineMs: number;
  /** The endpoint that answered last: tried first. */
  preferred = 0;
  /** When each endpoint last answered a call (with the quorum behind it): a watch's check skips a member heard from lately. */
  readonly heard = new Map<string, number>();
  private readonly tls: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  private readonly http = new HttpAgent({ keepAlive: true, maxSockets: 8 });
  private readonly https: import('node:https').Agent | null;
  private readonly streams: import('node:https').Agent | null;
  private readonly user: string | null;
  private readonly password: string | null;
  private token: Promise<string> | null = null;
  /** After close, no call starts or retries: a best-effort write left behind must not outlive its command. */
  private closed = false;

  constructor(
    readonly endpoints: readonly string[],
    opts: EtcdConnectOptions,
    /** node:https, loaded only when an endpoint is https (it costs start-up time). */
    private readonly tlsModule: typeof import('node:https') | null,
  ) {
    this.attemptTimeoutMs = opts.attemptTimeoutMs ?? 1000;
    this.deadlineMs = opts.deadlineMs ?? 4000;
    if ((opts.cert == null) !== (opts.key == null))
      throw new ValidationError(opts.cert == null ? '--etcd-cert' : '--etcd-key', 'a client certificate needs both --etcd-cert and --etcd-key');
    this.tls = {
      ...(opts.ca ? { ca: readSecret(opts.ca, '--etcd-ca') } : {}),
      ...(opts.cert ? { cert: readSecret(opts.cert, '--etcd-cert') } : {}),
      ...(opts.key ? { key: readSecret(opts.key, '--etcd-key') } : {}),
    };
    this.https = tlsModule ? new tlsModule.Agent({ keepAlive: true, maxSockets: 8, ...this.tls }) : null;
    this.streams = tlsModule ? new tlsModule.Agent({ keepAlive: false, ...this.tls }) : null;
    this.user = opts.user ?? null;
    let password = opts.password ?? null;
    if (this.user !== null && password === null) {
      if (!opts.passwordFile)
        throw new ValidationError('--etcd-user', `etcd user ${this.user} needs a password: give --etcd-password-file or KNARR_ETCD_PASSWORD`);
      password = readSecret(opts.passwordFile, '--etcd-password-file').toString('utf8').split('\n')[0]!.replace(/\r$/, '');
    }
    this.password = password;
  }

  /** Forgets the auth token: the next call authenticates again. */
  dropToken(): void {
    this.token = null;
  }

  close(): void {
    this.closed = true;
    this.http.destroy();
    this.https?.destroy();
    this.streams?.destroy();
  }

  /** A POST to one endpoint; the response goes to onResponse, failures to onError (a Failure or a typed error), once. */
  open(endpoint: string, path: string, body: unknown, token: string | null, stream: boolean): { req: ClientRequest; sent: () => boolean } {
    const data = JSON.stringify(body);
    const secure = endpoint.startsWith('https:');
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) };
    if (token !== null) headers.authorization = token;
    const req = (secure ? this.tlsModule!.request : httpRequest)(`${endpoint}${path}`, {
      method: 'POST',
      headers,
      agent: secure ? (stream ? this.streams! : this.https!) : stream ? false : this.http,
      ...(secure && stream ? this.tls : {}),
    });
    let connected = false;
    req.on('socket', (s: Socket) => {
      if (!s.connecting) connected = true;
      else s.once(secure ? 'secureConnect' : 'connect', () => (connected = true));
    });
    req.end(data);
    return { req, sent: () => connected };
  }

  /** One request to one endpoint within timeoutMs: etcd's answer, or AttemptFailed, or a typed error that another member would give too. */
  attempt(endpoint: string, path: string, body: unknown, token: string | null, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const { req, sent } = this.open(endpoint, path, body, token, false);
      const timer = setTimeout(() => {
        const e = Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
        req.destroy(e);
      }, timeoutMs);
      const fail = (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof KnarrError || e instanceof AttemptFailed ? e : new AttemptFailed(networkFailure(e, sent(), endpoint.startsWith('https:'))));
      };
      req.on('error', fail);
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode === 200) {
            try {
              const value = JSON.parse(text);
              this.heard.set(endpoint, Date.now());
              return resolve(value);
            } catch (e) {
              return fail(e);
            }
          }
          reject(this.refusal(endpoint, res.statusCode ?? 0, path, text, body));
        });
      });
    });
  }

  /** What a non-200 answer means: retry elsewhere, authenticate again, or a typed error. */
  refusal(endpoint: string, status: number, path: string, text: string, body: unknown): Error {
    const message = etcdMessage(text);
    if (/lease not found/i.test(message)) return new LeaseNotFoundError(leaseOf(body));
    if (/invalid auth token|auth token.*(expired|invalid)/i.test(message)) return new AttemptFailed({ reason: message, ambiguous: false, reauth: true });
    if (/authentication failed|invalid user ID or password/i.test(message))
      return new UserError(`etcd at ${endpoint} refused user ${this.user ?? '(none)'}: wrong user or password`, {
        hint: 'check --etcd-user and its password (--etcd-password-file or KNARR_ETCD_PASSWORD)',
      });
    if (/authentication is not enabled/i.test(message))
      return new UserError(`etcd at ${endpoint} has no auth enabled, but --etcd-user names ${this.user ?? 'a user'}`, {
        hint: 'leave out --etcd-user (KNARR_ETCD_USER), or enable auth in etcd',
      });
    if (/user name is empty/i.test(message))
      return new UserError(`etcd at ${endpoint} requires etcd auth (${message})`, {
        hint: 'give the user with --etcd-user and its password with --etcd-password-file or KNARR_ETCD_PASSWORD',
      });
    if (/permission denied/i.test(message))
      return new UserError(`etcd user ${this.user ?? '(none)'} may not ${path} (${message})`, {
        hint: "grant the user a role over the fleet's keys (etcdctl role grant-permission)",
      });
    if (status === 400 && /HTTP request to an HTTPS server/i.test(text))
      return new AttemptFailed({ reason: 'it serves https', ambiguous: false, config: 'scheme' });
    if (status === 503 || status === 504 || RETRIED.test(message))
      return new AttemptFailed({ reason: `${status} ${message}`, ambiguous: !/too many requests|no leader/i.test(message) });
    return new EtcdRefused(status, path, message);
  }

  /** The auth token (null without etcd auth), asked for once and shared by concurrent calls. */
  auth(deadline: number): Promise<string | null> {
    if (this.user === null) return Promise.resolve(null);
    this.token ??= this.request<{ token: string }>('/v3/auth/authenticate', { name: this.user, password: this.password }, deadline, false).then(
      (r) => r.value.token,
    );
    const t = this.token;
    t.catch(() => {
      if (this.token === t) this.token = null;
    });
    return t;
  }

  /** A call: tried on the preferred member, then the others, with backoff, until the deadline; ambiguous when an attempt may have been applied. */
  async request<T>(path: string, body: unknown, deadline = Date.now() + this.deadlineMs, withToken = true): Promise<{ value: T; ambiguous: boolean }> {
    const failures = new Map<string, Failure>();
    let ambiguous = false;
    let reauthed = false;
    for (let round = 0; ; round++) {
      // Each round starts one member further on, and a member silent earlier in this call goes last: a frozen member must not
      // take every round's longer patience while the others, after an election, would answer.
      const order = this.endpoints.map((_, i) => (this.preferred + round + i) % this.endpoints.length);
      order.sort((a, b) => Number(failures.get(this.endpoints[a]!)?.silent ?? false) - Number(failures.get(this.endpoints[b]!)?.silent ?? false));
      for (let i = 0; i < order.length; i++) {
        const index = order[i]!;
        const endpoint = this.endpoints[index]!;
        const left = deadline - Date.now();
        if (left <= 0) break;
        if (this.closed) throw new StoreUnavailableError(`the client of etcd at ${this.endpoints.join(',')} was closed during ${path}`);
        try {
          const token = withToken ? await this.auth(deadline) : null;
          // One member: nowhere to fail over to, so it gets the whole deadline; several: each round gives them longer (a slow cluster still answers).
          const patience = this.endpoints.length === 1 ? left : Math.min(this.attemptTimeoutMs * 2 ** round, left);
          const value = (await this.attempt(endpoint, path, body, token, patience)) as T;
          this.preferred = index;
          return { value, ambiguous };
        } catch (e) {
          if (e instanceof StoreUnavailableError) throw e;
          if (!(e instanceof AttemptFailed)) throw e;
          if (e.failure.reauth && !reauthed) {
            // The token lapsed: one new one, then the same member again.
            reauthed = true;
            this.token = null;
            i--;
            continue;
          }
          // A member that said why it failed keeps that reason over a later silence (cut short by the deadline).
          if (!e.failure.silent || !failures.has(endpoint) || failures.get(endpoint)!.silent) failures.set(endpoint, e.failure);
          ambiguous ||= e.failure.ambiguous;
        }
      }
      // Every member refuses our TLS or scheme: no retry will change that.
      if (failures.size === this.endpoints.length && [...failures.values()].every((f) => f.config)) throw unavailable(this.endpoints, failures);
      const left = deadline - Date.now();
      if (left <= 0) throw unavailable(this.endpoints, failures);
      await sleep(Math.min(50 * 2 ** round, 500, left));
    }
  }

  async call<T>(path: string, body: unknown): Promise<T> {
    return (await this.request<T>(path, body)).value;
  }

  /**
   * The member to start with: the first endpoint, and each other one 150 ms later while none has answered;
   * the first to answer at all (even with an error) becomes the preferred one. A frozen first member costs little.
   */
  async pickMember(): Promise<void> {
    if (this.endpoints.length < 2) return;
    // Serializable: a member answers it alone, even while the members elect a leader.
    const body = { key: b64('/knarr/'), count_only: true, serializable: true };
    const pending: ClientRequest[] = [];
    let won = false;
    await new Promise<void>((resolve) => {
      let left = this.endpoints.length;
      const done = () => {
        if (--left === 0) resolve();
      };
      this.endpoints.forEach((endpoint, index) => {
        setTimeout(() => {
          if (won) return done();
          const { req } = this.open(endpoint, '/v3/kv/range', body, null, false);
          pending.push(req);
          const timer = setTimeout(() => req.destroy(), this.attemptTimeoutMs);
          req.on('error', () => (clearTimeout(timer), done()));
          req.on('response', (res: IncomingMessage) => {
            clearTimeout(timer);
            res.resume();
            if (!won && (res.statusCode ?? 500) < 500) {
              won = true;
              this.preferred = index;
              for (const other of pending) if (other !== req) other.destroy();
              resolve();
            }
            done();
          });
        }, index * 150);
      });
    });
  }
}

/**
 * Connects to etcd through its v3 JSON gateway (/v3/kv/...) with node's http(s) client: no gRPC stack
 * to load, which keeps every store command's start-up short. Calls go to the member that answered last,
 * fail over to the others with backoff, and end within a deadline (exit 6 naming the endpoints).
 * A number for opts is the old form: the deadline of a call.
 */
export async function connectEtcd(endpoints: readonly string[], opts: EtcdConnectOptions | number = {}): Promise<Store> {
  const options = typeof opts === 'number' ? { attemptTimeoutMs: Math.min(1000, opts), deadlineMs: opts } : opts;
  const gw = new Gateway(endpoints, options, endpoints.some((e) => e.startsWith('https:')) ? await import('node:https') : null);
  const call = <T>(path: string, body: unknown) => gw.call<T>(path, body);
  const range = (key: string, prefix: boolean) =>
    call<{ kvs?: RawKv[] }>('/v3/kv/range', prefix ? { key: b64(key), range_end: prefixEnd(key) } : { key: b64(key) });
  type Put = { key: string; value: string; lease?: string; keepLease?: boolean };
  const putOp = (p: Put) => ({
    request_put: { key: b64(p.key), value: b64(p.value), ...(p.lease ? { lease: p.lease } : {}), ...(p.keepLease ? { ignore_lease: true } : {}) },
  });
  // The failure branch reads the keys back: after an attempt that may have been applied, a failed guard may be our own write.
  const txnRequest = async (compare: unknown[], puts: Put[], deletes: unknown[] = []): Promise<boolean> => {
    const { value, ambiguous } = await gw.request<{ succeeded?: boolean; responses?: { response_range?: { kvs?: RawKv[] } }[] }>('/v3/kv/txn', {
      compare,
      success: [...puts.map(putOp), ...deletes],
      failure: puts.map((p) => ({ request_range: { key: b64(p.key) } })),
    });
    if (value.succeeded === true) return true;
    if (!ambiguous || puts.length === 0) return false;
    const found = (value.responses ?? []).map((r) => r.response_range?.kvs?.[0]);
    return found.length === puts.length && found.every((kv, i) => kv && unb64(kv.value) === puts[i]!.value && kv.mod_revision === found[0]!.mod_revision);
  };
  const txn = (compare: unknown[], put: Put) => txnRequest(compare, [put]);
  const absent = (key: string) => ({ key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' });
  const unchanged = (key: string, rev: string | undefined) => ({ key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: rev });

  const store: Store = {
    endpoints,
    async get(key) {
      const kv = (await range(key, false)).kvs?.[0];
      return kv ? unb64(kv.value) : null;
    },
    async put(key, value, lease) {
      await call('/v3/kv/put', { key: b64(key), value: b64(value), ...(lease ? { lease } : {}) });
    },
    async grantLease(ttlSeconds) {
      return (await call<{ ID: string }>('/v3/lease/grant', { TTL: ttlSeconds })).ID;
    },
    async keepAlive(lease) {
      try {
        const r = await call<{ result?: { TTL?: string } }>('/v3/lease/keepalive', { ID: lease });
        return Number(r.result?.TTL ?? 0) > 0;
      } catch (e) {
        if (e instanceof LeaseNotFoundError) return false;
        throw e;
      }
    },
    async revokeLease(lease) {
      await call('/v3/lease/revoke', { ID: lease }).catch(() => undefined);
    },
    transact: (guards, puts, deletes) =>
      txnRequest(
        guards.map((g) =>
          'modRevision' in g
            ? unchanged(g.key, g.modRevision)
            : 'value' in g
              ? { key: b64(g.key), target: 'VALUE', result: 'EQUAL', value: b64(g.value) }
              : absent(g.key),
        ),
        puts,
        deletes.map((k) => ({ request_delete_range: typeof k === 'string' ? { key: b64(k) } : { key: b64(k.from), range_end: b64(k.to) } })),
      ),
    createAllIfAbsent: (entries) =>
      txnRequest(
        entries.map((e) => absent(e.key)),
        entries,
      ),
    createIfAbsent: (key, value) => txn([absent(key)], { key, value }),
    async increment(key) {
      for (;;) {
        const kv = (await range(key, false)).kvs?.[0];
        const next = (kv ? Number(unb64(kv.value)) : 0) + 1;
        if (await txn([kv ? unchanged(key, kv.mod_revision) : absent(key)], { key, value: String(next) })) return next;
      }
    },
    async getVersioned(key) {
      const kv = (await range(key, false)).kvs?.[0];
      return kv ? { value: unb64(kv.value), modRevision: kv.mod_revision ?? '0' } : null;
    },
    // keepLease: the key stays under the lease its writer gave it (another host's join record).
    putIfUnchanged: (key, value, modRevision, opts) => txn([unchanged(key, modRevision)], { key, value, keepLease: opts?.keepLease }),
    putAllIfUnchanged: (guard, modRevision, puts) => txnRequest([unchanged(guard, modRevision)], puts),
    watch: (prefix, onChange, signal) => watchPrefix(gw, prefix, onChange, signal),
    async delete(key) {
      return Number((await call<{ deleted?: string }>('/v3/kv/deleterange', { key: b64(key) })).deleted ?? 0) > 0;
    },
    async deletePrefix(prefix) {
      return Number((await call<{ deleted?: string }>('/v3/kv/deleterange', { key: b64(prefix), range_end: prefixEnd(prefix) })).deleted ?? 0);
    },
    async list(prefix) {
      return ((await range(prefix, true)).kvs ?? []).map((kv) => ({ key: unb64(kv.key), value: unb64(kv.value) })).sort((a, b) => a.key.localeCompare(b.key));
    },
    async close() {
      gw.close();
    },
  };
  // Fail fast with a clear message instead of on the first real call.
  try {
    const deadline = Date.now() + gw.deadlineMs;
    await gw.pickMember();
    await gw.request('/v3/kv/range', { key: b64('/knarr/') }, deadline);
  } catch (e) {
    gw.close();
    throw e;
  }
  return store;
}

/**
 * The store as --dry-run sees it: reads pass through, every write (and every lease) is refused with
 * DryRunWriteError, so a command that forgot to plan fails loudly instead of changing the fleet.
 */
export function readOnlyStore(store: Store): Store {
  const refuse = (what: string) => (key?: unknown) => Promise.reject(new DryRunWriteError(`${what}${typeof key === 'string' ? ` ${key}` : ''} in etcd`));
  return {
    endpoints: store.endpoints,
    get: (key) => store.get(key),
    getVersioned: (key) => store.getVersioned(key),
    list: (prefix) => store.list(prefix),
    watch: (prefix, onChange, signal) => store.watch(prefix, onChange, signal),
    close: () => store.close(),
    put: refuse('write'),
    grantLease: refuse('take a lease'),
    keepAlive: refuse('renew a lease'),
    revokeLease: refuse('revoke a lease'),
    createIfAbsent: refuse('create'),
    transact: (_guards, puts, deletes) => refuse('change')([...puts.map((p) => p.key), ...deletes.map((d) => (typeof d === 'string' ? d : d.from))].join(', ')),
    createAllIfAbsent: (entries) => refuse('create')(entries.map((e) => e.key).join(', ')),
    increment: refuse('increment'),
    putIfUnchanged: refuse('write'),
    putAllIfUnchanged: (_guard, _rev, puts) => refuse('write')(puts.map((p) => p.key).join(', ')),
    delete: refuse('delete'),
    deletePrefix: refuse('delete every key under'),
  };
}

interface RawWatchResponse {
  result?: {
    header?: { revision?: string };
    created?: boolean;
    canceled?: boolean;
    compact_revision?: string;
    cancel_reason?: string;
    events?: { type?: string; kv?: RawKv }[];
  };
  error?: { message?: string };
}

/** How often a watch checks that its member still answers, and how long it gives it. */
const WATCH_CHECK_MS = 2000;

/**
 * A watch through the JSON gateway: one long POST to /v3/watch whose answer is a stream of JSON objects,
 * one per line. A broken stream, or a member that stops answering a periodic read, is left for the next
 * member, resuming after the last revision seen: no event is lost. Only a compacted gap reports key null.
 */
function watchPrefix(gw: Gateway, prefix: string, onChange: (events: WatchEvent[]) => void, signal: AbortSignal): Promise<void> {
  const n = gw.endpoints.length;
  return new Promise((resolveFirst, rejectFirst) => {
    let established = false;
    let lastRevision: number | null = null;
    let index = gw.preferred;
    let current: (() => void) | null = null;
    let failures = new Map<string, Failure>();
    const firstDeadline = Date.now() + gw.deadlineMs;
    let round = 0;
    signal.addEventListener(
      'abort',
      () => {
        current?.();
        resolveFirst();
      },
      { once: true },
    );

    const connect = async () => {
      if (signal.aborted) return;
      const endpoint = gw.endpoints[index % n]!;
      let token: string | null = null;
      try {
        token = await gw.auth(Date.now() + gw.deadlineMs);
      } catch (e) {
        if (!established) return rejectFirst(e);
        return broken(endpoint, { reason: (e as Error).message, ambiguous: false });
      }
      if (signal.aborted) return;
      const create = {
        key: b64(prefix),
        range_end: prefixEnd(prefix),
        progress_notify: true,
        ...(lastRevision !== null ? { start_revision: String(lastRevision + 1) } : {}),
      };
      const { req } = gw.open(endpoint, '/v3/watch', { create_request: create }, token, true);
      let ended = false;
      let checker: NodeJS.Timeout | null = null;
      const patience = n === 1 ? gw.deadlineMs : gw.attemptTimeoutMs;
      const createTimer = setTimeout(() => end({ reason: `no answer within ${patience} ms`, ambiguous: false }), patience);
      const end = (why: Failure | null) => {
        if (ended) return;
        ended = true;
        clearTimeout(createTimer);
        if (checker) clearInterval(checker);
        req.destroy();
        if (why) broken(endpoint, why);
      };
      current = () => end(null);
      req.on('error', (e) => end(networkFailure(e, true, endpoint.startsWith('https:'))));
      req.on('response', (res: IncomingMessage) => {
        if (res.statusCode !== 200) {
          res.resume();
          return end({ reason: `etcd answered ${res.statusCode} to /v3/watch`, ambiguous: false });
        }
        onJsonLines(res, (value) => {
          if (ended) return;
          const msg = value as RawWatchResponse;
          const r = msg.result;
          if (msg.error || !r) {
            if (/auth token/i.test(msg.error?.message ?? '')) gw.dropToken();
            return end({ reason: msg.error?.message ?? 'the watch ended', ambiguous: false });
          }
          if (r.created) {
            clearTimeout(createTimer);
            gw.preferred = index % n;
            failures = new Map();
            round = 0;
            if (lastRevision === null) lastRevision = Number(r.header?.revision ?? 0);
            // A frozen or cut-off member keeps the stream open and says nothing: check that it still answers.
            checker = setInterval(async () => {
              if (Date.now() - (gw.heard.get(endpoint) ?? 0) < WATCH_CHECK_MS) return;
              try {
                await gw.attempt(
                  endpoint,
                  '/v3/kv/range',
                  { key: b64(prefix), count_only: true },
                  await gw.auth(Date.now() + gw.deadlineMs),
                  gw.attemptTimeoutMs,
                );
              } catch (e) {
                // A lapsed token is ours to renew, not the member's fault.
                if (e instanceof AttemptFailed && e.failure.reauth) gw.dropToken();
                else if (e instanceof AttemptFailed) end({ reason: `stopped answering: ${e.message}`, ambiguous: false });
              }
            }, WATCH_CHECK_MS);
            if (!established) {
              established = true;
              resolveFirst();
            }
          }
          if (r.canceled) {
            // The revisions we missed are compacted: start again from now, and anything may have changed.
            if (r.compact_revision && Number(r.compact_revision) > 0) {
              lastRevision = null;
              onChange([{ key: null, deleted: false }]);
            }
            return end({ reason: `etcd ended the watch${r.cancel_reason ? `: ${r.cancel_reason}` : ''}`, ambiguous: false });
          }
          const events = r.events ?? [];
          if (events.length > 0) {
            gw.heard.set(endpoint, Date.now());
            for (const e of events) lastRevision = Math.max(lastRevision ?? 0, Number(e.kv?.mod_revision ?? 0));
            onChange(
              events.map((e) =>
                e.type === 'DELETE' ? { key: unb64(e.kv?.key), deleted: true } : { key: unb64(e.kv?.key), deleted: false, value: unb64(e.kv?.value) },
              ),
            );
          } else if (!r.created && r.header?.revision) lastRevision = Math.max(lastRevision ?? 0, Number(r.header.revision));
        });
        res.on('end', () => end({ reason: 'the watch stream ended', ambiguous: false }));
        res.on('error', (e) => end(networkFailure(e, true, endpoint.startsWith('https:'))));
      });
    };

    const broken = (endpoint: string, why: Failure) => {
      if (signal.aborted) return resolveFirst();
      failures.set(endpoint, why);
      if (!established && (Date.now() >= firstDeadline || (failures.size === n && [...failures.values()].every((f) => f.config))))
        return rejectFirst(unavailable(gw.endpoints, failures));
      index++;
      // A pause only after a whole round of members failed.
      const pause = index % n === gw.preferred % n ? Math.min(100 * 2 ** round++, 1000) : 0;
      setTimeout(() => void connect(), pause);
    };
    void connect();
  });
}
