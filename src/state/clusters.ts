import { subnetAddress, userSubnet, type ClusterRecord } from '../core/cluster.js';
import { ConflictError } from '../core/errors.js';
import { fleetKeys } from './keys.js';
import type { Store } from './store.js';

/** A base image on a host: its rootfs on the pool, read-only under every node that uses it. */
export interface ImageRecord {
  name: string;
  host: string;
  pool: string;
  rootfs: string;
  source: string;
  createdAt: string;
}

/** The user's subnet was given back (their last cluster went) while a create was taking addresses in it. */
export class SubnetReleased extends ConflictError {
  constructor() {
    super("the user's subnet was released meanwhile");
  }
}

/** Images, clusters, users' subnets and the addresses taken in them, in the fleet store. */
export class ClusterRepo {
  private readonly keys;
  constructor(
    readonly store: Store,
    fleet: string,
  ) {
    this.keys = fleetKeys(fleet);
  }
  async image(host: string, name: string): Promise<ImageRecord | null> {
    const v = await this.store.get(this.keys.hostImage(host, name));
    return v === null ? null : (JSON.parse(v) as ImageRecord);
  }
  async images(host: string): Promise<ImageRecord[]> {
    return (await this.store.list(this.keys.hostImages(host))).map((kv) => JSON.parse(kv.value) as ImageRecord);
  }
  putImage(i: ImageRecord): Promise<void> {
    return this.store.put(this.keys.hostImage(i.host, i.name), JSON.stringify(i));
  }
  async removeImage(host: string, name: string): Promise<void> {
    await this.store.delete(this.keys.hostImage(host, name));
  }
  async get(user: string, name: string): Promise<ClusterRecord | null> {
    const v = await this.store.get(this.keys.cluster(user, name));
    return v === null ? null : (JSON.parse(v) as ClusterRecord);
  }
  async list(): Promise<ClusterRecord[]> {
    return (await this.store.list(this.keys.clusters)).map((kv) => JSON.parse(kv.value) as ClusterRecord);
  }
  create(c: ClusterRecord): Promise<boolean> {
    return this.store.createIfAbsent(this.keys.cluster(c.user, c.name), JSON.stringify(c));
  }
  put(c: ClusterRecord): Promise<void> {
    return this.store.put(this.keys.cluster(c.user, c.name), JSON.stringify({ ...c, updatedAt: new Date().toISOString() }));
  }
  /**
   * Changes the record with a compare-and-swap, read again when another writer (another host's part of an
   * operation) changed it meanwhile; fn returns null for no change. The record as it is after, or null when gone.
   */
  async update(user: string, name: string, fn: (c: ClusterRecord) => ClusterRecord | null): Promise<ClusterRecord | null> {
    const key = this.keys.cluster(user, name);
    for (;;) {
      const cur = await this.store.getVersioned(key);
      if (!cur) return null;
      const next = fn(JSON.parse(cur.value) as ClusterRecord);
      if (next === null) return JSON.parse(cur.value) as ClusterRecord;
      const stamped = { ...next, updatedAt: new Date().toISOString() };
      if (await this.store.transact([{ key, modRevision: cur.modRevision }], [{ key, value: JSON.stringify(stamped) }], [])) return stamped;
    }
  }
  async remove(user: string, name: string): Promise<void> {
    await this.store.delete(this.keys.cluster(user, name));
  }

  /** A new cluster id, unique in the fleet. */
  nextId(): Promise<number> {
    return this.store.increment(this.keys.counter('cluster'));
  }

  /** The user's /24: kept once given; the first free one in the fleet's network otherwise (one transaction per try). */
  async ensureSubnet(network: string, user: string): Promise<string> {
    const { store, keys } = this;
    const held = await store.get(keys.userSubnet(user));
    if (held) return held;
    for (let i = 1; i <= 254; i++) {
      const cidr = userSubnet(network, i);
      if (!(await store.createIfAbsent(keys.subnet(cidr), user))) continue;
      if (await store.createIfAbsent(keys.userSubnet(user), cidr)) return cidr;
      // Another create for this user won the user's key meanwhile: give this subnet back.
      await store.delete(keys.subnet(cidr));
      return (await store.get(keys.userSubnet(user)))!;
    }
    throw new ConflictError(`no free /24 left in ${network}`, { hint: 'set a larger cluster.network, or delete clusters of users that are gone' });
  }

  /**
   * The address each container holds in the user's subnet: the one it holds already (a resumed run),
   * else free ones, all taken in one transaction (retried when another create took one meanwhile).
   * With record, a new cluster's record is written in that transaction, with the addresses it plans.
   */
  async ensureAddresses(
    subnet: string,
    user: string,
    containers: string[],
    record?: (ips: Map<string, string>) => ClusterRecord,
  ): Promise<Map<string, string>> {
    const { store, keys } = this;
    const also = record
      ? (ips: Map<string, string>) => {
          const c = record(ips);
          return { key: keys.cluster(c.user, c.name), value: JSON.stringify(c) };
        }
      : undefined;
    // With a new cluster's record: only while the user still holds the subnet, and the hold is written anew (a release that looked before fails).
    const hold = also ? { key: keys.userSubnet(user), value: subnet } : null;
    const prefix = keys.userAddresses(user);
    for (;;) {
      const taken = await store.list(prefix);
      const held = new Map(taken.map((kv) => [kv.value, kv.key.slice(prefix.length)]));
      const used = new Set(held.values());
      const fresh: { key: string; value: string }[] = [];
      for (let n = 2; n <= 254 && fresh.length < containers.filter((c) => !held.has(c)).length; n++) {
        const ip = subnetAddress(subnet, n);
        if (!used.has(ip)) fresh.push({ key: keys.userAddress(user, ip), value: '' });
      }
      const wanting = containers.filter((c) => !held.has(c));
      if (fresh.length < wanting.length)
        throw new ConflictError(`subnet ${subnet} of user ${user} is full`, { hint: "scale in or delete some of the user's clusters" });
      for (const [i, c] of wanting.entries()) fresh[i]!.value = c;
      const planned = new Map(held);
      for (const f of fresh.slice(0, wanting.length)) planned.set(f.value, f.key.slice(prefix.length));
      // A key written in the same transaction (a new cluster's record) is created with its addresses or not at all.
      const extra = also ? [also(planned)] : [];
      const writes = [...fresh.slice(0, wanting.length), ...extra];
      if (writes.length === 0) return planned;
      const written = hold
        ? await store.transact([...writes.map((w) => ({ key: w.key, absent: true as const })), hold], [...writes, hold], [])
        : await store.createAllIfAbsent(writes);
      if (written) return planned;
      for (const e of extra) if ((await store.get(e.key)) !== null) throw new ConflictError(`${e.key.split('/').slice(-2).join('/')} already exists`);
      if (hold && (await store.get(hold.key)) !== hold.value) throw new SubnetReleased();
    }
  }

  /** The containers holding an address in the user's subnet. */
  async addressHolders(user: string): Promise<string[]> {
    return (await this.store.list(this.keys.userAddresses(user))).map((kv) => kv.value);
  }

  /** Gives back the addresses the user's containers that match hold. */
  async releaseAddresses(user: string, match: (container: string) => boolean): Promise<void> {
    for (const kv of await this.store.list(this.keys.userAddresses(user))) if (match(kv.value)) await this.store.delete(kv.key);
  }

  /** Gives the user's subnet back once the user has no cluster left (the user's data stays). */
  async releaseSubnetIfUnused(user: string): Promise<void> {
    const { store, keys } = this;
    // Read before the clusters: a create that writes its record after this read also rewrites the hold, and the release below fails.
    const held = await store.getVersioned(keys.userSubnet(user));
    if (!held) return;
    if ((await this.list()).some((c) => c.user === user)) return;
    // Both keys at once, only if no create took the subnet meanwhile.
    await store.transact([{ key: keys.userSubnet(user), modRevision: held.modRevision }], [], [keys.userSubnet(user), keys.subnet(held.value)]);
  }
}
