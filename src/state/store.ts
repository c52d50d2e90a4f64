import { StoreUnavailableError } from '../core/errors.js';

export interface KeyValue {
  key: string;
  value: string;
}

/** The fleet store: etcd, behind the few operations knarr needs. */
export interface Store {
  readonly endpoints: readonly string[];
  get(key: string): Promise<string | null>;
  put(key: string, value: string): Promise<void>;
  /** Writes only if the key does not exist, in one transaction; true when written. */
  createIfAbsent(key: string, value: string): Promise<boolean>;
  /** Increments a counter atomically (compare-and-swap on its revision); returns the new value. */
  increment(key: string): Promise<number>;
  delete(key: string): Promise<boolean>;
  deletePrefix(prefix: string): Promise<number>;
  list(prefix: string): Promise<KeyValue[]>;
  close(): Promise<void>;
}

function unavailable(endpoints: readonly string[], cause: unknown): StoreUnavailableError {
  const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
  return new StoreUnavailableError(`etcd at ${endpoints.join(',')} is not reachable: ${reason}`, {
    hint: 'check --etcd / KNARR_ETCD, or start the local etcd with: knarr etcd up',
    cause,
  });
}

/** Connects to etcd; the client library is loaded here only, so commands without a store start fast. */
export async function connectEtcd(endpoints: readonly string[], timeoutMs = 5000): Promise<Store> {
  const { Etcd3 } = await import('etcd3');
  const client = new Etcd3({
    hosts: [...endpoints],
    dialTimeout: timeoutMs,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
  });
  const guard = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      const name = (e as Error)?.constructor?.name ?? '';
      if (/Unavailable|DeadlineExceeded|ClientClosed|ClientRuntime|Cancelled/.test(name) || /ECONNREFUSED|deadline/i.test(String(e))) {
        throw unavailable(endpoints, e);
      }
      throw e;
    }
  };
  const store: Store = {
    endpoints,
    get: (key) => guard(() => client.get(key).string()),
    put: (key, value) => guard(async () => void (await client.put(key).value(value))),
    createIfAbsent: (key, value) =>
      guard(async () => {
        const r = await client.if(key, 'Create', '==', 0).then(client.put(key).value(value)).commit();
        return r.succeeded;
      }),
    increment: (key) =>
      guard(async () => {
        for (;;) {
          const res = await client.get(key).exec();
          const kv = res.kvs[0];
          const next = (kv ? Number(kv.value.toString()) : 0) + 1;
          const cond = kv ? client.if(key, 'Mod', '==', kv.mod_revision) : client.if(key, 'Create', '==', 0);
          const r = await cond.then(client.put(key).value(String(next))).commit();
          if (r.succeeded) return next;
        }
      }),
    delete: (key) => guard(async () => Number((await client.delete().key(key)).deleted) > 0),
    deletePrefix: (prefix) => guard(async () => Number((await client.delete().prefix(prefix)).deleted)),
    list: (prefix) =>
      guard(async () => {
        const kvs = await client.getAll().prefix(prefix).strings();
        return Object.entries(kvs)
          .map(([key, value]) => ({ key, value }))
          .sort((a, b) => a.key.localeCompare(b.key));
      }),
    close: async () => client.close(),
  };
  // Fail fast with a clear message instead of on the first real call.
  await guard(() => client.get('/knarr/').string());
  return store;
}
