import { fleetKeys } from './keys.js';
import type { Store } from './store.js';

/** What a host's agent serves for an environment: a port that spreads connections over the backends' services. */
export interface BalancerRecord {
  /** The environment, and the name of its service. */
  env: string;
  member: string;
  /** 0 until the serving agent listens; then its port, kept across restarts. */
  port: number;
  /** Services of the backends, resolved per connection. */
  backends: string[];
  /** lost: replaced after its host went down; that host's agent removes it when it is back. */
  state: 'running' | 'stopped' | 'lost';
}

export class BalancerRepo {
  private readonly keys;
  constructor(
    private readonly store: Store,
    fleet: string,
  ) {
    this.keys = fleetKeys(fleet);
  }

  async get(host: string, env: string): Promise<BalancerRecord | null> {
    const v = await this.store.get(this.keys.balancer(host, env));
    return v === null ? null : (JSON.parse(v) as BalancerRecord);
  }

  async getVersioned(host: string, env: string): Promise<{ record: BalancerRecord; modRevision: string } | null> {
    const v = await this.store.getVersioned(this.keys.balancer(host, env));
    return v === null ? null : { record: JSON.parse(v.value) as BalancerRecord, modRevision: v.modRevision };
  }

  async list(host: string): Promise<BalancerRecord[]> {
    return (await this.store.list(this.keys.hostBalancers(host))).map((kv) => JSON.parse(kv.value) as BalancerRecord);
  }

  put(host: string, rec: BalancerRecord): Promise<void> {
    return this.store.put(this.keys.balancer(host, rec.env), JSON.stringify(rec));
  }

  putIfUnchanged(host: string, rec: BalancerRecord, modRevision: string): Promise<boolean> {
    return this.store.putIfUnchanged(this.keys.balancer(host, rec.env), JSON.stringify(rec), modRevision);
  }

  async delete(host: string, env: string): Promise<void> {
    await this.store.delete(this.keys.balancer(host, env));
  }
}
