import type { CommitRecord, DotRecord } from '../core/dots.js';
import { fleetKeys } from './keys.js';
import type { Store } from './store.js';

/** Dot and commit records of one host in the fleet store; writes are skipped under --dry-run. */
export class DotRepo {
  private readonly keys;
  constructor(
    private readonly store: Store,
    fleet: string,
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

  async put(dot: DotRecord): Promise<void> {
    if (!this.dryRun) await this.store.put(this.keys.hostDot(this.host, dot.name), JSON.stringify(dot));
  }

  /** Creates the record only if no other writer did first; false when it already existed. */
  async create(dot: DotRecord): Promise<boolean> {
    if (this.dryRun) return true;
    return this.store.createIfAbsent(this.keys.hostDot(this.host, dot.name), JSON.stringify(dot));
  }

  async delete(name: string): Promise<void> {
    if (this.dryRun) return;
    await this.store.deletePrefix(this.keys.hostDotCommits(this.host, name));
    await this.store.delete(this.keys.hostDot(this.host, name));
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

  async getRemote(name: string): Promise<string | null> {
    return this.store.get(this.keys.remote(this.host, name));
  }

  async listRemotes(): Promise<{ name: string; url: string }[]> {
    return (await this.store.list(this.keys.remotes(this.host))).map((kv) => ({ name: kv.key.slice(kv.key.lastIndexOf('/') + 1), url: kv.value }));
  }

  async putRemote(name: string, url: string): Promise<void> {
    if (!this.dryRun) await this.store.put(this.keys.remote(this.host, name), url);
  }

  async deleteRemote(name: string): Promise<boolean> {
    return this.dryRun ? true : this.store.delete(this.keys.remote(this.host, name));
  }
}
