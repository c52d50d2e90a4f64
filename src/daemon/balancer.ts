import { connect, createServer, type Server, type Socket } from 'node:net';
import { EVENT_WRITE_TIMEOUT_MS } from '../core/events.js';
import { EnvRepo } from '../state/envs.js';
import { BalancerRepo, type BalancerEntry, type BalancerRecord } from '../state/balancers.js';
import { bounded, recordEvent } from '../state/events.js';
import type { ServiceRecord } from '../state/jobs.js';
import { fleetKeys } from '../state/keys.js';
import type { Store } from '../state/store.js';

/** A backend that does not accept a connection within this long is skipped for the next one. */
export const BACKEND_CONNECT_MS = 2000;
/** A client whose backend closed gets this long to read what is left and close its side. */
const CLIENT_LINGER_MS = 30_000;

export interface BalancersOptions {
  /** This host: its agent serves the records under balancers/<host>/. */
  host: string;
  fleet: string;
  /** Where other hosts reach this host: the address the environments' services name. */
  advertise: string;
  /** How long a backend may take to accept a connection before the next one is tried. */
  connectTimeoutMs?: number;
}

/** One environment's balancer served here: its listener, the record it serves, and the connections open through it. */
interface Served {
  server: Server;
  port: number;
  record: BalancerRecord;
  /** The next backend in round robin. */
  next: number;
  clients: Set<Socket>;
}

/**
 * The environments' balancers this host's agent serves (the records under balancers/<host>/): for each
 * running record a TCP listener on all addresses, which sends each client to the next of its backends in
 * round robin (a backend's address read from its service at that moment; one that refuses or does not
 * answer in time is skipped), and the environment's service pointing here. A stopped record closes the
 * listener, a deleted one too; a lost one (another balancer replaced it while this host was down) is
 * removed here, the collector's part. The records are read again on every change and at each agent sweep.
 */
export class Balancers {
  private readonly served = new Map<string, Served>();
  private readonly repo: BalancerRepo;
  private readonly keys;
  private running: Promise<void> | null = null;
  private dirty = false;
  private closed = false;
  private waiters: (() => void)[] = [];
  private readonly connectMs: number;

  constructor(
    private readonly opts: BalancersOptions,
    private readonly store: Store,
    private readonly log: (line: string) => void,
  ) {
    this.repo = new BalancerRepo(store, opts.fleet);
    this.keys = fleetKeys(opts.fleet);
    this.connectMs = opts.connectTimeoutMs ?? BACKEND_CONNECT_MS;
  }

  /** Watches this host's records until signal aborts, and serves what they say now. */
  async start(signal: AbortSignal): Promise<void> {
    await this.store.watch(this.keys.hostBalancers(this.opts.host), () => void this.sync(), signal);
    await this.sync();
  }

  /** The port this host serves env on, or null. */
  portOf(env: string): number | null {
    return this.served.get(env)?.port ?? null;
  }

  /** Reads this host's records and serves what they say; resolves after a pass that started after this call. Calls during a pass fold into one more. */
  sync(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.dirty = true;
      if (!this.running) this.running = this.loop();
    });
  }

  private async loop(): Promise<void> {
    while (this.dirty && !this.closed) {
      this.dirty = false;
      const waiters = this.waiters;
      this.waiters = [];
      try {
        await this.pass();
      } catch (e) {
        this.log(`balancer: ${(e as Error).message}; trying again at the next sweep`);
      }
      for (const w of waiters) w();
    }
    this.running = null;
    // Asked for after the last pass began, and closed meanwhile: nobody is left waiting.
    for (const w of this.waiters.splice(0)) w();
  }

  private async pass(): Promise<void> {
    const entries = await this.repo.list(this.opts.host);
    const seen = new Set<string>();
    for (const entry of entries) {
      seen.add(entry.record.env);
      try {
        if (entry.record.state === 'running') await this.serve(entry);
        else if (entry.record.state === 'stopped') await this.unserve(entry.record.env);
        else await this.collect(entry);
      } catch (e) {
        this.log(`balancer ${entry.record.env}: ${(e as Error).message}; trying again at the next sweep`);
      }
    }
    // A record deleted: its listener goes.
    for (const env of [...this.served.keys()]) if (!seen.has(env)) await this.unserve(env);
    // A record deleted while this agent was away (its environment destroyed meanwhile) left its service pointing here: it goes.
    for (const kv of await this.store.list(this.keys.services)) {
      let s: Partial<ServiceRecord>;
      try {
        s = JSON.parse(kv.value) as Partial<ServiceRecord>;
      } catch {
        continue;
      }
      if (s.job === '' && s.host === this.opts.host && typeof s.name === 'string' && !seen.has(s.name)) await this.dropService(s.name, null);
    }
  }

  /** Listens for a running record (on its port, or a free one written back) and points the environment's service here. */
  private async serve(entry: BalancerEntry): Promise<void> {
    const { record } = entry;
    let s = this.served.get(record.env);
    if (s && record.port !== 0 && record.port !== s.port) {
      // The record names another port than the one served: the listener moves there.
      this.shut(record.env, s);
      s = undefined;
    }
    if (!s) {
      const opened = await this.listen(record.env, record.port);
      s = { ...opened, record, next: 0 };
      this.served.set(record.env, s);
      this.log(`balancer: serving environment ${record.env} (${record.member}) on port ${s.port}, backends ${record.backends.join(', ') || 'none'}`);
    }
    s.record = record;
    if (record.port !== s.port) {
      // Written back by compare-and-swap: a record changed meanwhile is read again (its watch says so), not overwritten.
      if (!(await this.repo.putIfUnchanged(entry, { ...record, port: s.port }))) return;
      s.record = { ...record, port: s.port };
    }
    const service: ServiceRecord = { name: record.env, job: '', host: this.opts.host, address: this.opts.advertise, port: s.port, protocol: 'tcp' };
    const text = JSON.stringify(service);
    if ((await this.store.get(this.keys.service(record.env))) !== text) await this.store.put(this.keys.service(record.env), text);
  }

  /** A TCP listener on all addresses, on port or (0, or port taken by someone else) a free one. */
  private async listen(env: string, port: number): Promise<{ server: Server; port: number; clients: Set<Socket> }> {
    const clients = new Set<Socket>();
    const open = (p: number) =>
      new Promise<Server>((resolve, reject) => {
        const server = createServer((client) => this.forward(env, client, clients));
        server.once('error', reject);
        server.listen(p, '0.0.0.0', () => {
          server.off('error', reject);
          server.on('error', (e) => this.log(`balancer ${env}: ${e.message}`));
          resolve(server);
        });
      });
    let server: Server;
    try {
      server = await open(port);
    } catch (e) {
      if (port === 0) throw e;
      this.log(`balancer ${env}: port ${port} is taken (${(e as Error).message}); listening on another`);
      server = await open(0);
    }
    const addr = server.address();
    return { server, port: typeof addr === 'object' && addr ? addr.port : port, clients };
  }

  /** A client of env's balancer: to the next backend in round robin, or the one after it when that fails, and so on once round. */
  private async forward(env: string, client: Socket, clients: Set<Socket>): Promise<void> {
    clients.add(client);
    client.on('error', () => client.destroy());
    client.once('close', () => clients.delete(client));
    const s = this.served.get(env);
    const backends = s?.record.backends ?? [];
    const first = s ? s.next++ % Math.max(1, backends.length) : 0;
    for (let i = 0; i < backends.length && !client.destroyed; i++) {
      const name = backends[(first + i) % backends.length]!;
      const upstream = await this.reach(name);
      if (!upstream) continue;
      if (client.destroyed) return void upstream.destroy();
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      // The backend done: what it sent is still flushed to the client (a destroy would drop what is buffered), then the client goes.
      upstream.on('close', (failed) => {
        if (failed) return void client.destroy();
        client.end();
        client.setTimeout(CLIENT_LINGER_MS, () => client.destroy());
      });
      client.pipe(upstream);
      upstream.pipe(client);
      return;
    }
    if (!client.destroyed) this.log(`balancer ${env}: no backend of ${backends.join(', ') || '(none)'} answered; the client is closed`);
    client.destroy();
  }

  /** A connection to the backend (a service name: where its service says it is now; or IP:PORT), or null when none is there or it does not answer. */
  private async reach(name: string): Promise<Socket | null> {
    let target: Pick<ServiceRecord, 'address' | 'port'>;
    // A node member's backend is its IP:PORT on the cluster bridge (service names hold no ":").
    const literal = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(name);
    if (literal) target = { address: literal[1]!, port: Number(literal[2]) };
    else
      try {
        const raw = await this.store.get(this.keys.service(name));
        if (raw === null) return null;
        target = JSON.parse(raw) as ServiceRecord;
      } catch {
        return null;
      }
    return new Promise((resolve) => {
      const upstream = connect({ host: target.address, port: target.port });
      const fail = () => {
        upstream.destroy();
        resolve(null);
      };
      upstream.setTimeout(this.connectMs, fail);
      upstream.once('error', fail);
      upstream.once('connect', () => {
        upstream.off('error', fail);
        upstream.setTimeout(0);
        resolve(upstream);
      });
    });
  }

  /** Closes env's listener and its connections; its service goes if it still points here (never a newer balancer's elsewhere). */
  private async unserve(env: string): Promise<void> {
    const s = this.served.get(env);
    if (!s) return;
    this.shut(env, s);
    this.log(`balancer: environment ${env} no longer served here (port ${s.port})`);
    await this.dropService(env, s.port);
  }

  private shut(env: string, s: Served): void {
    this.served.delete(env);
    s.server.close();
    for (const c of s.clients) c.destroy();
  }

  /** Deletes services/<env> only while it is this host's on port: guarded by its value, so a newer balancer's is never removed. */
  private async dropService(env: string, port: number | null): Promise<void> {
    const key = this.keys.service(env);
    const raw = await this.store.get(key);
    if (raw === null) return;
    let s: Partial<ServiceRecord>;
    try {
      s = JSON.parse(raw) as Partial<ServiceRecord>;
    } catch {
      return;
    }
    if (s.host !== this.opts.host || s.job !== '' || (port !== null && s.port !== port)) return;
    await this.store.transact([{ key, value: raw }], [], [key]);
  }

  /** A lost record: another balancer took over while this host was down. Its listener and record go, and the fleet is told. */
  private async collect(entry: BalancerEntry): Promise<void> {
    const { env, member } = entry.record;
    const s = this.served.get(env);
    if (s) this.shut(env, s);
    await this.dropService(env, s?.port ?? entry.record.port);
    if (!(await this.repo.deleteIfUnchanged(entry))) return;
    const message = `removed balancer ${member} of environment ${env}`;
    this.log(`collector: ${message}`);
    // The environment forgets the lost member too: a new balancer serves it now.
    const envs = new EnvRepo(this.store, this.opts.fleet);
    await envs.update(env, (e) =>
      e.members.some((m) => m.name === member && m.state === 'lost') ? { ...e, members: e.members.filter((m) => m.name !== member) } : null,
    );
    await bounded(
      envs.addHistory(env, { event: 'collected', member, host: this.opts.host, message: `its record on ${this.opts.host} removed` }),
      EVENT_WRITE_TIMEOUT_MS,
    );
    await bounded(
      recordEvent(this.store, this.opts.fleet, { kind: 'env', object: env, host: this.opts.host, event: 'collected', message }),
      EVENT_WRITE_TIMEOUT_MS,
    );
  }

  /** Stops serving (the agent stops): listeners and connections close; records and services stay for the next agent, which listens on the same ports. */
  async close(): Promise<void> {
    this.closed = true;
    for (const [env, s] of [...this.served]) this.shut(env, s);
    await this.running?.catch(() => undefined);
    // A pass that was running may have opened a listener after the first round.
    for (const [env, s] of [...this.served]) this.shut(env, s);
  }
}
