import { Agent, request } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { DryRunWriteError, FailureError, StoreUnavailableError } from '../core/errors.js';

/** etcd answered, but refused the request (too large, compacted...): another member would refuse it too. */
class EtcdRefused extends FailureError {
  constructor(status: number, path: string, text: string) {
    let message = text.trim().slice(0, 200);
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      /* plain text */
    }
    super(`etcd refused ${path} (${status}): ${message}`, { detail: { status, path } });
  }
}
import { onJsonLines } from '../core/streams.js';

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

function unavailable(endpoints: readonly string[], cause: unknown): StoreUnavailableError {
  const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
  return new StoreUnavailableError(`etcd at ${endpoints.join(',')} is not reachable: ${reason}`, {
    hint: 'check --etcd / KNARR_ETCD, or start the local etcd with: knarr etcd up',
    cause,
  });
}

/** A client certificate and the CA that signed the server's (PEM contents), for https:// endpoints. */
export interface StoreTls {
  ca: string;
  cert: string;
  key: string;
}

/** node:http or node:https by the endpoint's scheme, with the client certificate on https. */
function requestFor(url: string, tls: StoreTls | undefined) {
  return url.startsWith('https:')
    ? (o: import('node:https').RequestOptions, cb: (res: import('node:http').IncomingMessage) => void) => httpsRequest(url, { ...tls, ...o }, cb)
    : (o: import('node:http').RequestOptions, cb: (res: import('node:http').IncomingMessage) => void) => request(url, o, cb);
}

/**
 * Connects to etcd through its v3 JSON gateway (/v3/kv/...) with node's http client: no gRPC stack
 * to load, which keeps every store command's start-up short. Endpoints are tried in order.
 */
export async function connectEtcd(endpoints: readonly string[], timeoutMs = 5000, tls?: StoreTls): Promise<Store> {
  const agent = endpoints[0]?.startsWith('https:') ? new HttpsAgent({ keepAlive: true, maxSockets: 8, ...tls }) : new Agent({ keepAlive: true, maxSockets: 8 });
  let current = 0;
  const once = (endpoint: string, path: string, body: unknown): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const data = JSON.stringify(body);
      const req = requestFor(`${endpoint}${path}`, tls)(
        { method: 'POST', agent, timeout: timeoutMs, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode !== 200) return reject(new EtcdRefused(res.statusCode ?? 0, path, text));
            try {
              resolve(JSON.parse(text));
            } catch (e) {
              reject(e);
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs}ms`)));
      req.on('error', reject);
      req.end(data);
    });
  const call = async <T>(path: string, body: unknown): Promise<T> => {
    let last: unknown;
    for (let tried = 0; tried < endpoints.length; tried++) {
      const endpoint = endpoints[(current + tried) % endpoints.length]!;
      try {
        const r = (await once(endpoint, path, body)) as T;
        current = (current + tried) % endpoints.length;
        return r;
      } catch (e) {
        // An HTTP answer means etcd is there but refused: not a reason to try another member.
        if (e instanceof EtcdRefused) throw e;
        last = e;
      }
    }
    throw unavailable(endpoints, last);
  };
  const range = (key: string, prefix: boolean) =>
    call<{ kvs?: RawKv[] }>('/v3/kv/range', prefix ? { key: b64(key), range_end: prefixEnd(key) } : { key: b64(key) });
  const txnAll = async (compare: unknown[], puts: { key: string; value: string; lease?: string; keepLease?: boolean }[]) =>
    (
      await call<{ succeeded?: boolean }>('/v3/kv/txn', {
        compare,
        success: puts.map((p) => ({
          request_put: { key: b64(p.key), value: b64(p.value), ...(p.lease ? { lease: p.lease } : {}), ...(p.keepLease ? { ignore_lease: true } : {}) },
        })),
      })
    ).succeeded === true;
  const txn = (compare: unknown[], put: { key: string; value: string; keepLease?: boolean }) => txnAll(compare, [put]);

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
      const r = await call<{ result?: { TTL?: string } }>('/v3/lease/keepalive', { ID: lease });
      return Number(r.result?.TTL ?? 0) > 0;
    },
    async revokeLease(lease) {
      await call('/v3/lease/revoke', { ID: lease }).catch(() => undefined);
    },
    async transact(guards, puts, deletes) {
      const compare = guards.map((g) =>
        'modRevision' in g
          ? { key: b64(g.key), target: 'MOD', result: 'EQUAL', mod_revision: g.modRevision }
          : 'value' in g
            ? { key: b64(g.key), target: 'VALUE', result: 'EQUAL', value: b64(g.value) }
            : { key: b64(g.key), target: 'CREATE', result: 'EQUAL', create_revision: '0' },
      );
      const success = [
        ...puts.map((p) => ({
          request_put: { key: b64(p.key), value: b64(p.value), ...(p.lease ? { lease: p.lease } : {}), ...(p.keepLease ? { ignore_lease: true } : {}) },
        })),
        ...deletes.map((k) => ({ request_delete_range: typeof k === 'string' ? { key: b64(k) } : { key: b64(k.from), range_end: b64(k.to) } })),
      ];
      return (await call<{ succeeded?: boolean }>('/v3/kv/txn', { compare, success })).succeeded === true;
    },
    createAllIfAbsent: (entries) =>
      txnAll(
        entries.map((e) => ({ key: b64(e.key), target: 'CREATE', result: 'EQUAL', create_revision: '0' })),
        entries,
      ),
    createIfAbsent: (key, value) => txn([{ key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }], { key, value }),
    async increment(key) {
      for (;;) {
        const kv = (await range(key, false)).kvs?.[0];
        const next = (kv ? Number(unb64(kv.value)) : 0) + 1;
        const cond = kv
          ? { key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: kv.mod_revision }
          : { key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' };
        if (await txn([cond], { key, value: String(next) })) return next;
      }
    },
    async getVersioned(key) {
      const kv = (await range(key, false)).kvs?.[0];
      return kv ? { value: unb64(kv.value), modRevision: kv.mod_revision ?? '0' } : null;
    },
    // keepLease: the key stays under the lease its writer gave it (another host's join record).
    putIfUnchanged: (key, value, modRevision, opts) =>
      txn([{ key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: modRevision }], { key, value, keepLease: opts?.keepLease }),
    putAllIfUnchanged: (guard, modRevision, puts) => txnAll([{ key: b64(guard), target: 'MOD', result: 'EQUAL', mod_revision: modRevision }], puts),
    watch: (prefix, onChange, signal) => watchPrefix(endpoints, prefix, onChange, signal, tls),
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
      agent.destroy();
    },
  };
  // Fail fast with a clear message instead of on the first real call.
  try {
    await range('/knarr/', false);
  } catch (e) {
    agent.destroy();
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
  result?: { created?: boolean; canceled?: boolean; events?: { type?: string; kv?: RawKv }[] };
  error?: { message?: string };
}

/**
 * A watch through the JSON gateway: one long POST to /v3/watch whose answer is a stream of JSON
 * objects, one per line. On a broken stream it reconnects (after a pause) and reports key null.
 */
function watchPrefix(
  endpoints: readonly string[],
  prefix: string,
  onChange: (events: WatchEvent[]) => void,
  signal: AbortSignal,
  tls?: StoreTls,
): Promise<void> {
  let attempt = 0;
  return new Promise((resolveFirst, rejectFirst) => {
    let established = false;
    const connect = () => {
      if (signal.aborted) return resolveFirst();
      const endpoint = endpoints[attempt++ % endpoints.length]!;
      const body = JSON.stringify({ create_request: { key: b64(prefix), range_end: prefixEnd(prefix) } });
      const req = requestFor(`${endpoint}/v3/watch`, tls)(
        { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          if (res.statusCode !== 200 && !established) {
            res.resume();
            return rejectFirst(unavailable(endpoints, new Error(`etcd answered ${res.statusCode} to /v3/watch`)));
          }
          onJsonLines(res, (value) => {
            const msg = value as RawWatchResponse;
            if (msg.result?.created) {
              if (!established) {
                established = true;
                resolveFirst();
              } else onChange([{ key: null, deleted: false }]);
            }
            const events = msg.result?.events ?? [];
            if (events.length > 0) onChange(events.map((e) => ({ key: unb64(e.kv?.key), deleted: e.type === 'DELETE' })));
            // etcd ended the watch (compaction, a leader change, an error): a new one, and everything may have changed.
            if (msg.result?.canceled || msg.error) req.destroy();
          });
          res.on('end', retry);
          res.on('error', retry);
        },
      );
      const abort = () => req.destroy();
      signal.addEventListener('abort', abort, { once: true });
      req.on('error', (e) => {
        signal.removeEventListener('abort', abort);
        if (!established && attempt >= endpoints.length * 3) return rejectFirst(unavailable(endpoints, e));
        retry();
      });
      req.on('close', () => signal.removeEventListener('abort', abort));
      req.end(body);
    };
    let retrying = false;
    const retry = () => {
      // Aborted before the watch was made: the caller must not wait forever.
      if (signal.aborted) return resolveFirst();
      // Never made after a few tries round the endpoints: the caller hears so instead of waiting.
      if (!established && attempt >= endpoints.length * 3) return rejectFirst(unavailable(endpoints, new Error('the watch was never set up')));
      if (retrying) return;
      retrying = true;
      setTimeout(() => {
        retrying = false;
        connect();
      }, 500).unref();
    };
    connect();
  });
}
