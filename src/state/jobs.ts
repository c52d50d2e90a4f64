import type { JobSpec } from '../core/job-spec.js';
import { fleetKeys } from './keys.js';
import type { Store } from './store.js';

/** What the operator asked for: kept while the job exists, written before it starts. */
export interface JobIntent {
  spec: JobSpec;
  host: string;
  createdAt: string;
}

/** What runs: written after the start. */
export interface JobActual {
  host: string;
  container: string;
  state: 'running' | 'stopped' | 'exited';
  startedAt: string;
}

export interface ServiceRecord {
  name: string;
  job: string;
  host: string;
  address: string;
  port: number;
  protocol: 'tcp' | 'udp';
}

const parse = <T>(v: string | null): T | null => (v === null ? null : (JSON.parse(v) as T));

/** Jobs' intent (proc), actual state (ps) and services in the fleet store. */
export class JobRepo {
  private readonly keys;
  constructor(
    private readonly store: Store,
    fleet: string,
  ) {
    this.keys = fleetKeys(fleet);
  }

  /** False when a job of that name already exists anywhere in the fleet. */
  createIntent(name: string, intent: JobIntent): Promise<boolean> {
    return this.store.createIfAbsent(this.keys.job(name), JSON.stringify(intent));
  }
  async intent(name: string): Promise<JobIntent | null> {
    return parse(await this.store.get(this.keys.job(name)));
  }
  async intents(): Promise<JobIntent[]> {
    return (await this.store.list(this.keys.jobs)).map((kv) => JSON.parse(kv.value) as JobIntent);
  }
  async actual(name: string): Promise<JobActual | null> {
    return parse(await this.store.get(this.keys.psEntry(name)));
  }
  putActual(name: string, a: JobActual): Promise<void> {
    return this.store.put(this.keys.psEntry(name), JSON.stringify(a));
  }
  putService(s: ServiceRecord): Promise<void> {
    return this.store.put(this.keys.service(s.name), JSON.stringify(s));
  }
  async services(): Promise<ServiceRecord[]> {
    return (await this.store.list(this.keys.services)).map((kv) => JSON.parse(kv.value) as ServiceRecord);
  }
  /** The job and everything recorded for it. */
  async remove(name: string): Promise<void> {
    for (const s of (await this.services()).filter((x) => x.job === name)) await this.store.delete(this.keys.service(s.name));
    await this.store.delete(this.keys.psEntry(name));
    await this.store.delete(this.keys.job(name));
  }
}
