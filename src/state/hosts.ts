import { ConflictError } from '../core/errors.js';
import type { HostRecord } from '../core/hosts.js';
import { fleetKeys } from './keys.js';
import type { Store } from './store.js';

/** Host records and their liveness keys in the fleet store. */
export class HostRepo {
  private readonly keys;
  constructor(
    private readonly store: Store,
    fleet: string,
  ) {
    this.keys = fleetKeys(fleet);
  }

  async list(): Promise<{ host: HostRecord; up: boolean }[]> {
    const [records, alive] = await Promise.all([this.store.list(this.keys.hosts), this.store.list(this.keys.alive)]);
    const up = new Set(alive.map((kv) => kv.key.slice(this.keys.alive.length)));
    // Only the host records themselves, not the keys filed under each host.
    return records
      .filter((kv) => !kv.key.slice(this.keys.hosts.length).includes('/'))
      .map((kv) => JSON.parse(kv.value) as HostRecord)
      .map((host) => ({ host, up: up.has(host.name) }));
  }

  async get(name: string): Promise<{ host: HostRecord; up: boolean } | null> {
    const v = await this.store.get(this.keys.host(name));
    if (v === null) return null;
    return { host: JSON.parse(v) as HostRecord, up: (await this.store.get(this.keys.hostAlive(name))) !== null };
  }

  /**
   * Rewrites a host's record from the one stored, in a compare-and-swap loop: an operator's drain or
   * tag and the agent's refresh never overwrite each other. change gets null when there is no record;
   * it returns null to write nothing. Resolves to what was written (or null).
   */
  async update(name: string, change: (previous: HostRecord | null) => HostRecord | null): Promise<HostRecord | null> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.store.getVersioned(this.keys.host(name));
      const next = change(current === null ? null : (JSON.parse(current.value) as HostRecord));
      if (next === null) return null;
      const value = JSON.stringify(next);
      const written =
        current === null
          ? await this.store.createIfAbsent(this.keys.host(name), value)
          : await this.store.putIfUnchanged(this.keys.host(name), value, current.modRevision);
      if (written) return next;
      if (attempt >= 20)
        throw new ConflictError(`host ${name}: its record kept changing under this write (${attempt + 1} tries)`, {
          hint: 'another writer keeps changing it; try again',
        });
    }
  }

  put(host: HostRecord): Promise<void> {
    return this.store.put(this.keys.host(host.name), JSON.stringify(host));
  }

  markAlive(name: string, lease: string, info: unknown): Promise<void> {
    return this.store.put(this.keys.hostAlive(name), JSON.stringify(info), lease);
  }

  async remove(name: string): Promise<void> {
    // The records filed under the host (its pools, its dots) stay: its disks still hold that data.
    await this.store.delete(this.keys.hostAlive(name));
    await this.store.delete(this.keys.host(name));
  }
}
