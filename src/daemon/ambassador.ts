import { connect, createServer, type Server } from 'node:net';
import type { JobRepo } from '../state/jobs.js';
import { fleetKeys } from '../state/keys.js';
import type { Store } from '../state/store.js';

const LOOPBACK = '127.0.0.1';

/** NAME_ADDR, NAME_HOST and NAME_PORT for a linked service: `web-80` gives WEB_80_ADDR=127.0.0.1:40123. */
export function linkEnv(service: string, port: number, host = LOOPBACK): Record<string, string> {
  const prefix = service.toUpperCase().replace(/[^A-Z0-9]/g, '_');
  return { [`${prefix}_ADDR`]: `${host}:${port}`, [`${prefix}_HOST`]: host, [`${prefix}_PORT`]: String(port) };
}

/** A service's variables for a job reaching it directly (no ambassador): one on this host's loopback is at the job's gateway when it is bridged. */
export function directLinkEnv(service: string, s: { address: string; port: number }, gateway: string | null): Record<string, string> {
  return linkEnv(service, s.port, s.address === LOOPBACK && gateway ? gateway : s.address);
}

/**
 * The seed's embassy: on each host, one TCP forwarder per linked service, on a port that stays the
 * same while the service moves. It listens on loopback (jobs on the host's network) and on the
 * gateway of each docker network a linked job is on (a bridged job reaches its host there). Each
 * connection is sent to where the service runs now (read from the store per connection), so a job
 * keeps its address across failovers.
 */
export class Ambassador {
  /** Per service: its port (on loopback, recorded), and the server and port on each address it listens on. */
  private readonly servers = new Map<string, { port: number; on: Map<string, { server: Server; port: number }> }>();
  /** ensure() calls in flight: a second one for the same service and address waits for the first. */
  private readonly starting = new Map<string, Promise<number>>();
  /** Services that running foreground jobs link to: kept even when no daemonized job does. */
  private readonly held = new Map<string, number>();
  private readonly keys;

  constructor(
    private readonly host: string,
    fleet: string,
    private readonly store: Store,
    private readonly jobs: JobRepo,
    private readonly log: (line: string) => void,
  ) {
    this.keys = fleetKeys(fleet);
  }

  /** The port for service on address (loopback by default), listening before this returns; the port recorded earlier is reused when free. */
  ensure(service: string, address = LOOPBACK): Promise<number> {
    const existing = this.servers.get(service)?.on.get(address);
    if (existing) return Promise.resolve(existing.port);
    const key = `${service} ${address}`;
    let p = this.starting.get(key);
    if (!p) {
      p = this.open(service, address).finally(() => this.starting.delete(key));
      this.starting.set(key, p);
    }
    return p;
  }

  private async open(service: string, address: string): Promise<number> {
    if (address !== LOOPBACK) await this.ensure(service);
    const entry = this.servers.get(service);
    const wanted = entry?.port ?? Number((await this.store.get(this.keys.ambassador(this.host, service))) ?? 0);
    let listening: { server: Server; port: number };
    try {
      listening = await this.listen(service, address, wanted);
    } catch {
      // The port was taken meanwhile: a new one (jobs made from now on get it).
      listening = await this.listen(service, address, 0);
    }
    if (!entry) {
      this.servers.set(service, { port: listening.port, on: new Map([[address, listening]]) });
      if (listening.port !== wanted) await this.store.put(this.keys.ambassador(this.host, service), String(listening.port));
    } else entry.on.set(address, listening);
    return listening.port;
  }

  private listen(service: string, address: string, port: number): Promise<{ server: Server; port: number }> {
    const server = createServer((client) => void this.forward(service, client));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => {
        server.off('error', reject);
        const addr = server.address();
        resolve({ server, port: typeof addr === 'object' && addr ? addr.port : port });
      });
    });
  }

  private async forward(service: string, client: import('node:net').Socket): Promise<void> {
    client.on('error', () => client.destroy());
    const target = await this.jobs.service(service).catch(() => null);
    if (!target) {
      this.log(`ambassador: no service ${service} to forward to`);
      return void client.destroy();
    }
    const upstream = connect({ host: target.address, port: target.port });
    // Either side failing or closing ends both, so no socket is left behind.
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', end);
    client.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Keeps service's forwarder while a foreground job uses it; call the returned function when it ends. */
  hold(service: string): () => void {
    this.held.set(service, (this.held.get(service) ?? 0) + 1);
    return () => {
      const n = (this.held.get(service) ?? 1) - 1;
      if (n > 0) this.held.set(service, n);
      else this.held.delete(service);
    };
  }

  /** Stops forwarders whose service no job on this host links to any more. */
  async retain(services: Set<string>): Promise<void> {
    for (const [name, s] of this.servers) {
      if (services.has(name) || this.held.has(name)) continue;
      for (const l of s.on.values()) l.server.close();
      this.servers.delete(name);
      await this.store.delete(this.keys.ambassador(this.host, name));
    }
  }

  close(): void {
    for (const s of this.servers.values()) for (const l of s.on.values()) l.server.close();
    this.servers.clear();
  }
}
