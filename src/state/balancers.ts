import { fleetKeys } from './keys.js';
import type { Store } from './store.js';

/** What the agent of a host serves as an environment's balancer: `balancers/<host>/<env>`. */
export interface BalancerRecord {
  /** The environment's name, which is also its service's name. */
  env: string;
  /** The member it is, e.g. shop-balancer-1. */
  member: string;
  /** 0 until the serving agent listened; then the port it listens on (kept across agent restarts). */
  port: number;
  /** The backends: service names (job services such as shop-web-1-80), resolved per connection, or a node member's IP:PORT. */
  backends: string[];
  /** stopped: the listener is closed; lost: its host went down and another balancer replaced it, so the host's agent removes it. */
  state: 'running' | 'stopped' | 'lost';
}

/** A record as stored: its host, what it says, and its stored text (the guard of a compare-and-swap). */
export interface BalancerEntry {
  host: string;
  record: BalancerRecord;
  raw: string;
}

const STATES = new Set(['running', 'stopped', 'lost']);

/** The record in text, or null when it is not one (a foreign or damaged value is left alone, not served). */
export function parseBalancer(raw: string): BalancerRecord | null {
  try {
    const r = JSON.parse(raw) as Partial<BalancerRecord>;
    if (typeof r.env !== 'string' || typeof r.member !== 'string' || typeof r.state !== 'string' || !STATES.has(r.state)) return null;
    if (typeof r.port !== 'number' || !Number.isInteger(r.port) || r.port < 0 || r.port > 65535) return null;
    if (!Array.isArray(r.backends) || !r.backends.every((b) => typeof b === 'string')) return null;
    return { env: r.env, member: r.member, port: r.port, backends: r.backends, state: r.state };
  } catch {
    return null;
  }
}

/** The environments' balancer records, by the host whose agent serves them. */
export class BalancerRepo {
  private readonly keys;
  constructor(
    private readonly store: Store,
    fleet: string,
  ) {
    this.keys = fleetKeys(fleet);
  }

  async get(host: string, env: string): Promise<BalancerEntry | null> {
    const raw = await this.store.get(this.keys.balancer(host, env));
    const record = raw === null ? null : parseBalancer(raw);
    return record && raw !== null ? { host, record, raw } : null;
  }

  /** The records of one host (those that do not parse are left out). */
  async list(host: string): Promise<BalancerEntry[]> {
    const out: BalancerEntry[] = [];
    for (const kv of await this.store.list(this.keys.hostBalancers(host))) {
      const record = parseBalancer(kv.value);
      if (record) out.push({ host, record, raw: kv.value });
    }
    return out;
  }

  /** Every host's records. */
  async listAll(): Promise<BalancerEntry[]> {
    const out: BalancerEntry[] = [];
    for (const kv of await this.store.list(this.keys.balancers)) {
      const host = kv.key.slice(this.keys.balancers.length).split('/')[0]!;
      const record = parseBalancer(kv.value);
      if (record) out.push({ host, record, raw: kv.value });
    }
    return out;
  }

  put(host: string, record: BalancerRecord): Promise<void> {
    return this.store.put(this.keys.balancer(host, record.env), JSON.stringify(record));
  }

  /** Writes next over seen only if the stored record is still what seen read (a compare-and-swap); true when written. */
  putIfUnchanged(seen: BalancerEntry, next: BalancerRecord): Promise<boolean> {
    const key = this.keys.balancer(seen.host, seen.record.env);
    return this.store.transact([{ key, value: seen.raw }], [{ key, value: JSON.stringify(next) }], []);
  }

  delete(host: string, env: string): Promise<boolean> {
    return this.store.delete(this.keys.balancer(host, env));
  }

  /** Deletes the record only if it is still what seen read; true when deleted. */
  deleteIfUnchanged(seen: BalancerEntry): Promise<boolean> {
    const key = this.keys.balancer(seen.host, seen.record.env);
    return this.store.transact([{ key, value: seen.raw }], [], [key]);
  }
}
