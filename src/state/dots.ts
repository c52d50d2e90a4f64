import type { CommitRecord, DotRecord } from '../core/dots.js';
import { ConflictError, NotFoundError } from '../core/errors.js';
import { recordEvent } from './events.js';
import { fleetKeys } from './keys.js';
import type { Store } from './store.js';

/** A named remote: its URL, and for a hub the files holding its token and the CA to trust. */
export interface RemoteRecord {
  url: string;
  tokenFile?: string;
  caFile?: string;
}

/** A remote's record: JSON, or a plain URL as knarr before hub remotes wrote it. */
export function parseRemoteRecord(value: string): RemoteRecord {
  if (!value.startsWith('{')) return { url: value };
  const raw = JSON.parse(value) as RemoteRecord;
  return {
    url: String(raw.url),
    ...(typeof raw.tokenFile === 'string' ? { tokenFile: raw.tokenFile } : {}),
    ...(typeof raw.caFile === 'string' ? { caFile: raw.caFile } : {}),
  };
}

/** Dot and commit records of one host in the fleet store; writes are skipped under --dry-run. */
export class DotRepo {
  private readonly keys;
  constructor(
    private readonly store: Store,
    private readonly fleet: string,
    private readonly host: string,
    private readonly dryRun: boolean,
  ) {
    this.keys = fleetKeys(fleet);
  }

  async get(name: string): Promise<DotRecord | null> {
    const v = await this.store.get(this.keys.hostDot(this.host, name));
    return v === null ? null : (JSON.parse(v) as DotRecord);
  }

  async list(): Promise<DotRecord[]> {
    return (await this.store.list(this.keys.hostDots(this.host))).map((kv) => JSON.parse(kv.value) as DotRecord);
  }

  /**
   * Rewrites the dot's record with change(current), compare-and-swap on its etcd revision: a write
   * by another command between the read and the write makes it read and apply change again.
   * change throws to refuse (a head that moved); returns the record written.
   */
  async update(name: string, change: (current: DotRecord) => DotRecord): Promise<DotRecord> {
    const key = this.keys.hostDot(this.host, name);
    for (let attempt = 1; ; attempt++) {
      const v = await this.store.getVersioned(key);
      if (!v) throw new NotFoundError(`dot ${name} was removed by another command meanwhile`);
      const next = change(JSON.parse(v.value) as DotRecord);
      if (this.dryRun || (await this.store.putIfUnchanged(key, JSON.stringify(next), v.modRevision))) return next;
      if (attempt >= 50) throw new ConflictError(`the record of dot ${name} kept changing under this command`, { hint: 'run it again' });
    }
  }

  /** Moves a branch head from `from` to `to`, only if it is still at `from` (compare-and-swap); a moved head is a conflict. */
  async moveHead(
    name: string,
    branch: string,
    from: string | null,
    to: string | null,
    extra: (current: DotRecord) => DotRecord = (d) => d,
  ): Promise<DotRecord> {
    return this.update(name, (cur) => {
      const now = cur.branches[branch]?.head ?? null;
      if (now !== from) {
        throw new ConflictError(`${name}@${branch} moved to ${now ?? 'no commit'} while this command worked from ${from ?? 'no commit'}`, {
          hint: 'another command changed the dot; look at knarr dot log and run it again',
        });
      }
      const base = extra(cur);
      const br = base.branches[branch] ?? { head: null, from: null, createdAt: new Date().toISOString() };
      return { ...base, branches: { ...base.branches, [branch]: { ...br, head: to } } };
    });
  }

  /** Creates the record only if no other writer did first; false when it already existed. */
  async create(dot: DotRecord): Promise<boolean> {
    if (this.dryRun) return true;
    return this.store.createIfAbsent(this.keys.hostDot(this.host, dot.name), JSON.stringify(dot));
  }

  async delete(name: string): Promise<void> {
    if (this.dryRun) return;
    await this.store.deletePrefix(this.keys.hostDotCommits(this.host, name));
    await this.store.delete(this.keys.hostDotHistory(this.host, name));
    await this.store.delete(this.keys.hostDot(this.host, name));
  }

  /** The history a clone came with (newest first); empty for a dot that is no clone. */
  async history(name: string): Promise<CommitRecord[]> {
    const v = await this.store.get(this.keys.hostDotHistory(this.host, name));
    return v === null ? [] : (JSON.parse(v) as CommitRecord[]);
  }

  async putHistory(name: string, commits: CommitRecord[]): Promise<void> {
    if (!this.dryRun) await this.store.put(this.keys.hostDotHistory(this.host, name), JSON.stringify(commits));
  }

  async deleteHistory(name: string): Promise<void> {
    if (!this.dryRun) await this.store.delete(this.keys.hostDotHistory(this.host, name));
  }

  async commits(name: string): Promise<Map<string, CommitRecord>> {
    const kvs = await this.store.list(this.keys.hostDotCommits(this.host, name));
    return new Map(kvs.map((kv) => [kv.key.slice(kv.key.lastIndexOf('/') + 1), JSON.parse(kv.value) as CommitRecord]));
  }

  async putCommit(c: CommitRecord): Promise<void> {
    if (!this.dryRun) await this.store.put(this.keys.hostDotCommit(this.host, c.dot, c.id), JSON.stringify(c));
  }

  async deleteCommit(dot: string, id: string): Promise<void> {
    if (!this.dryRun) await this.store.delete(this.keys.hostDotCommit(this.host, dot, id));
  }

  /** Notes what happened to a dot of this host in the fleet's event log (best effort; not under --dry-run). */
  async event(dot: string, event: string, message: string): Promise<void> {
    if (!this.dryRun) await recordEvent(this.store, this.fleet, { kind: 'dot', object: dot, host: this.host, event, message });
  }

  async getRemote(name: string): Promise<RemoteRecord | null> {
    const v = await this.store.get(this.keys.remote(this.host, name));
    return v === null ? null : parseRemoteRecord(v);
  }

  async listRemotes(): Promise<({ name: string } & RemoteRecord)[]> {
    return (await this.store.list(this.keys.remotes(this.host))).map((kv) => ({
      name: kv.key.slice(kv.key.lastIndexOf('/') + 1),
      ...parseRemoteRecord(kv.value),
    }));
  }

  async putRemote(name: string, remote: RemoteRecord): Promise<void> {
    if (!this.dryRun) await this.store.put(this.keys.remote(this.host, name), JSON.stringify(remote));
  }

  async deleteRemote(name: string): Promise<boolean> {
    return this.dryRun ? true : this.store.delete(this.keys.remote(this.host, name));
  }
}
