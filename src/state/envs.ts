import type { EnvHistoryEntry, EnvRecord } from '../core/env.js';
import { fleetKeys } from './keys.js';
import type { Store } from './store.js';

/** Environments in the fleet store: each record changed only by compare-and-swap, its history in lines of their own. */
export class EnvRepo {
  private readonly keys;
  private seq = 0;
  constructor(
    private readonly store: Store,
    fleet: string,
  ) {
    this.keys = fleetKeys(fleet);
  }

  async get(name: string): Promise<EnvRecord | null> {
    const v = await this.store.get(this.keys.env(name));
    return v === null ? null : (JSON.parse(v) as EnvRecord);
  }

  async list(): Promise<EnvRecord[]> {
    return (await this.store.list(this.keys.envs)).map((kv) => JSON.parse(kv.value) as EnvRecord);
  }

  /** False when an environment of that name exists. */
  create(env: EnvRecord): Promise<boolean> {
    return this.store.createIfAbsent(this.keys.env(env.name), JSON.stringify(env));
  }

  /** Applies fn to the record as it is now, again if another writer got in first; null from fn changes nothing. Null when there is no record. */
  async update(name: string, fn: (e: EnvRecord) => EnvRecord | null): Promise<EnvRecord | null> {
    const key = this.keys.env(name);
    for (;;) {
      const cur = await this.store.getVersioned(key);
      if (!cur) return null;
      const next = fn(JSON.parse(cur.value) as EnvRecord);
      if (next === null) return JSON.parse(cur.value) as EnvRecord;
      if (await this.store.putIfUnchanged(key, JSON.stringify(next), cur.modRevision)) return next;
    }
  }

  /** The record and its history. */
  async remove(name: string): Promise<void> {
    await this.store.delete(this.keys.env(name));
    await this.store.deletePrefix(this.keys.envHistory(name));
  }

  async addHistory(name: string, e: Omit<EnvHistoryEntry, 'at'>): Promise<EnvHistoryEntry> {
    const at = new Date().toISOString();
    const entry = { at, ...e };
    // Time first so the list reads in order; the suffix keeps two lines of one millisecond apart.
    await this.store.put(`${this.keys.envHistory(name)}${at}-${process.pid}-${String(this.seq++).padStart(6, '0')}`, JSON.stringify(entry));
    return entry;
  }

  async history(name: string): Promise<EnvHistoryEntry[]> {
    return (await this.store.list(this.keys.envHistory(name))).map((kv) => JSON.parse(kv.value) as EnvHistoryEntry);
  }

  /** Calls onLine with each history line written from now on, until signal aborts. */
  followHistory(name: string, onLine: (e: EnvHistoryEntry) => void, signal: AbortSignal): Promise<void> {
    return this.store.watch(
      this.keys.envHistory(name),
      (changes) => {
        for (const c of changes) if (c.key !== null && !c.deleted && c.value !== undefined) onLine(JSON.parse(c.value) as EnvHistoryEntry);
      },
      signal,
    );
  }
}
