import type { JobSpec } from '../core/job-spec.js';
import { recordEvent } from './events.js';
import { fleetKeys } from './keys.js';
import type { Store } from './store.js';

/** What the operator asked for (proc): kept while the job exists, written before it starts. */
export interface JobIntent {
  spec: JobSpec;
  /** The host it is placed on; null while no host fits. */
  host: string | null;
  /** stopped after `knarr job stop`: nothing restarts it. */
  desired?: 'running' | 'stopped';
  /** Bumped by `knarr job restart`: a container of an older generation is made anew. */
  generation?: number;
  /** Placed by the scheduler and kept running by the hosts' agents (false: run inline by the CLI, no agent). */
  managed?: boolean;
  /** Run with no agent: the engine socket it runs on, so only an agent of that engine takes it over. */
  engine?: string;
  createdAt: string;
}

/** What runs (ps): written after the start, and kept current by the host's agent. */
export interface JobActual {
  host: string;
  container: string;
  state: 'running' | 'restarting' | 'stopped' | 'exited' | 'failed';
  startedAt: string;
  exitCode?: number;
  restarts?: number;
  generation?: number;
  error?: string;
}

export interface ServiceRecord {
  name: string;
  job: string;
  host: string;
  address: string;
  port: number;
  protocol: 'tcp' | 'udp';
}

/** One line of a job's history: kept after the job is removed, so a fixed job returns to its host. */
export interface JobEvent {
  at: string;
  host: string;
  event: 'placed' | 'started' | 'exited' | 'moved' | 'stopped' | 'removed' | 'failed' | 'restarted';
  detail?: string;
}

const parse = <T>(v: string | null): T | null => (v === null ? null : (JSON.parse(v) as T));

export const desiredState = (i: JobIntent) => i.desired ?? 'running';
export const generationOf = (i: JobIntent) => i.generation ?? 0;

/** A port's service: JOB-PORT for tcp, JOB-PORT-udp for udp, so one container port serves both apart. */
/** What ends the name of a udp port's service: `dns-53-udp`. */
export const UDP_SERVICE_SUFFIX = '-udp';
export const serviceName = (job: string, p: { container: number; protocol: string }) =>
  `${job}-${p.container}${p.protocol === 'udp' ? UDP_SERVICE_SUFFIX : ''}`;

/** Jobs' intent (proc), actual state (ps), history and services in the fleet store. */
export class JobRepo {
  private readonly keys;
  private seq = 0;
  constructor(
    private readonly store: Store,
    private readonly fleet: string,
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
  /**
   * Changes the intent only if nobody else changed it since it was read (two agents moving one
   * job: one wins). change returns null to leave it. Returns the new intent, or null when nothing was written.
   */
  /** Rewrites the intent if nothing else did meanwhile and, for a move, only while each host in downHosts is still down. */
  async updateIntent(name: string, change: (i: JobIntent) => JobIntent | null, downHosts: string[] = []): Promise<JobIntent | null> {
    const current = await this.store.getVersioned(this.keys.job(name));
    if (!current) return null;
    const next = change(JSON.parse(current.value) as JobIntent);
    if (!next) return null;
    const key = this.keys.job(name);
    const guards = [{ key, modRevision: current.modRevision }, ...downHosts.map((h) => ({ key: this.keys.hostAlive(h), absent: true as const }))];
    return (await this.store.transact(guards, [{ key, value: JSON.stringify(next) }], [])) ? next : null;
  }
  /**
   * Places (or moves) a job as a listing showed it: the intent with its new host and a line of its history, in one
   * transaction guarded by the intent as listed (and, for a move, each host in downHosts still down). Null when the
   * intent is not as listed any more (changed meanwhile, or written in another form): the caller reads it again.
   */
  async placeListed(seen: JobIntent, host: string, e: Omit<JobEvent, 'at'>, downHosts: string[] = []): Promise<JobIntent | null> {
    const key = this.keys.job(seen.spec.name);
    const next = { ...seen, host };
    const at = new Date().toISOString();
    const guards = [{ key, value: JSON.stringify(seen) }, ...downHosts.map((h) => ({ key: this.keys.hostAlive(h), absent: true as const }))];
    const puts = [
      { key, value: JSON.stringify(next) },
      { key: `${this.keys.jobHistory(seen.spec.name)}${at}-${process.pid}-${this.seq++}`, value: JSON.stringify({ at, ...e }) },
    ];
    return (await this.store.transact(guards, puts, [])) ? next : null;
  }
  async actual(name: string): Promise<JobActual | null> {
    return parse(await this.store.get(this.keys.psEntry(name)));
  }
  async actuals(): Promise<Map<string, JobActual>> {
    return new Map((await this.store.list(this.keys.ps)).map((kv) => [kv.key.slice(this.keys.ps.length), JSON.parse(kv.value) as JobActual]));
  }
  putActual(name: string, a: JobActual): Promise<void> {
    return this.store.put(this.keys.psEntry(name), JSON.stringify(a));
  }
  /**
   * Writes the actual state only while the intent still holds (placed here, same generation), in one transaction
   * guarded by the intent's revision: an agent's slow pass on a stale listing never overwrites the report of the
   * host the job moved to. False when the intent no longer holds.
   */
  async putActualWhile(name: string, a: JobActual, holds: (i: JobIntent) => boolean): Promise<boolean> {
    const key = this.keys.job(name);
    for (let tries = 0; tries < 5; tries++) {
      const current = await this.store.getVersioned(key);
      if (!current || !holds(JSON.parse(current.value) as JobIntent)) return false;
      const puts = [{ key: this.keys.psEntry(name), value: JSON.stringify(a) }];
      if (await this.store.transact([{ key, modRevision: current.modRevision }], puts, [])) return true;
    }
    return false;
  }
  putService(s: ServiceRecord): Promise<void> {
    return this.store.put(this.keys.service(s.name), JSON.stringify(s));
  }
  async service(name: string): Promise<ServiceRecord | null> {
    return parse(await this.store.get(this.keys.service(name)));
  }
  async services(): Promise<ServiceRecord[]> {
    return (await this.store.list(this.keys.services)).map((kv) => JSON.parse(kv.value) as ServiceRecord);
  }
  /**
   * Registers one service per port of the job, reached at address on host. A port the engine picked (host port 0) is
   * taken from published (`80/tcp` → the host port); one not known there gets no service.
   */
  async putServices(spec: JobSpec, host: string, address: string, published: ReadonlyMap<string, number> = new Map()): Promise<void> {
    for (const p of spec.ports) {
      const port = p.host === 0 ? published.get(`${p.container}/${p.protocol}`) : p.host;
      if (port === undefined) continue;
      await this.putService({ name: serviceName(spec.name, p), job: spec.name, host, address, port, protocol: p.protocol });
    }
  }
  async addEvent(name: string, e: Omit<JobEvent, 'at'>): Promise<void> {
    await this.addHistory(name, e);
    await recordEvent(this.store, this.fleet, { kind: 'job', object: name, host: e.host === '-' ? null : e.host, event: e.event, message: e.detail ?? '' });
  }
  /** A line of the job's history only, not of the fleet's event log (many jobs placed at once get one fleet event together). */
  async addHistory(name: string, e: Omit<JobEvent, 'at'>): Promise<void> {
    const at = new Date().toISOString();
    // Time first so the list reads in order; the suffix keeps two events of one millisecond apart.
    await this.store.put(`${this.keys.jobHistory(name)}${at}-${process.pid}-${this.seq++}`, JSON.stringify({ at, ...e }));
  }
  /** An event of the fleet's log about jobs, best effort. */
  fleetEvent(host: string, event: string, object: string, message: string): Promise<void> {
    return recordEvent(this.store, this.fleet, { kind: 'job', object, host, event, message });
  }
  async history(name: string): Promise<JobEvent[]> {
    return (await this.store.list(this.keys.jobHistory(name))).map((kv) => JSON.parse(kv.value) as JobEvent);
  }
  /** Hosts the job started on, newest first: the scheduler's stickiness and a fixed job's home. */
  async pastHosts(name: string): Promise<string[]> {
    const started = (await this.history(name)).filter((e) => e.event === 'started').reverse();
    return [...new Set(started.map((e) => e.host))];
  }
  /** The job and everything recorded for it, except its history. */
  async remove(name: string): Promise<void> {
    await this.removeRecords(name);
    await this.store.delete(this.keys.job(name));
  }
  /** A job's actual state and services (its intent stays). */
  async removeRecords(name: string): Promise<void> {
    for (const s of (await this.services()).filter((x) => x.job === name)) await this.store.delete(this.keys.service(s.name));
    await this.store.delete(this.keys.psEntry(name));
  }
}
