import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, isIPv6 } from 'node:net';
import { UDP_SERVICE_SUFFIX, type JobRepo } from '../state/jobs.js';
import { fleetKeys } from '../state/keys.js';
import type { Store } from '../state/store.js';

const LOOPBACK = '127.0.0.1';
/** A UDP flow (one client address and port) the service has not answered for this long is forgotten: the next datagram finds the service anew. */
export const UDP_IDLE_MS = 60_000;
/** UDP flows one forwarder keeps at once; datagrams of further new clients are dropped until some go idle. */
const UDP_MAX_FLOWS = 1024;

/** One listening socket of a forwarder, TCP or UDP. */
interface Listening {
  port: number;
  close(): void;
}

/** One UDP client's flow: its own socket to the service, so replies find their way back. */
interface UdpFlow {
  upstream: Promise<UdpSocket | null>;
  timer: NodeJS.Timeout;
}

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
 * The seed's embassy: on each host, one forwarder per linked service (TCP, or UDP for a -udp
 * service), on a port that stays the same while the service moves. It listens on loopback (jobs on the host's network) and on the
 * gateway of each docker network a linked job is on (a bridged job reaches its host there). Each
 * connection (each new UDP flow) is sent to where the service runs now (read from the store then),
 * so a job keeps its address across failovers.
 */
export class Ambassador {
  /** Per service: its port (on loopback, recorded), and the server and port on each address it listens on. */
  private readonly servers = new Map<string, { port: number; on: Map<string, Listening> }>();
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
    private readonly udpIdleMs = UDP_IDLE_MS,
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
    let listening: Listening;
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

  private listen(service: string, address: string, port: number): Promise<Listening> {
    if (service.endsWith(UDP_SERVICE_SUFFIX)) return this.listenUdp(service, address, port);
    const server = createServer((client) => void this.forward(service, client));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => {
        server.off('error', reject);
        const addr = server.address();
        resolve({ port: typeof addr === 'object' && addr ? addr.port : port, close: () => server.close() });
      });
    });
  }

  private listenUdp(service: string, address: string, port: number): Promise<Listening> {
    const socket = createSocket('udp4');
    const flows = new Map<string, UdpFlow>();
    const forget = (key: string) => {
      const flow = flows.get(key);
      if (!flow) return;
      flows.delete(key);
      clearTimeout(flow.timer);
      void flow.upstream.then((u) => u?.close());
    };
    socket.on(
      'message',
      (msg, from) => void this.relayUdp(service, socket, flows, forget, msg, from).catch((e: Error) => this.log(`ambassador: ${service}: ${e.message}`)),
    );
    // A client gone away (ICMP port unreachable) is no reason to stop serving the others.
    socket.on('error', (e) => this.log(`ambassador: ${service}: ${e.message}`));
    return new Promise((resolve, reject) => {
      const failed = (e: Error) => {
        socket.close();
        reject(e);
      };
      socket.once('error', failed);
      socket.bind(port, address, () => {
        socket.off('error', failed);
        resolve({
          port: socket.address().port,
          close: () => {
            for (const key of [...flows.keys()]) forget(key);
            socket.close();
          },
        });
      });
    });
  }

  /** Sends a client's datagram on through its flow, making the flow (to where the service runs now) on its first one. */
  private async relayUdp(
    service: string,
    socket: UdpSocket,
    flows: Map<string, UdpFlow>,
    forget: (key: string) => void,
    msg: Buffer,
    from: RemoteInfo,
  ): Promise<void> {
    const key = `${from.address}:${from.port}`;
    let flow = flows.get(key);
    if (!flow) {
      if (flows.size >= UDP_MAX_FLOWS) return;
      // Only answers keep a flow: one whose service went quiet (its host died) is found anew after udpIdleMs.
      const made: UdpFlow = { upstream: Promise.resolve(null), timer: setTimeout(() => forget(key), this.udpIdleMs).unref() };
      made.upstream = this.openUdpFlow(
        service,
        (reply) => {
          made.timer.refresh();
          socket.send(reply, from.port, from.address);
        },
        () => forget(key),
      );
      flows.set(key, made);
      flow = made;
    }
    const up = await flow.upstream;
    if (!up) return forget(key);
    try {
      up.send(msg);
    } catch {
      forget(key);
    }
  }

  private async openUdpFlow(service: string, onReply: (reply: Buffer) => void, onError: () => void): Promise<UdpSocket | null> {
    const target = await this.jobs.service(service).catch(() => null);
    if (!target) {
      this.log(`ambassador: no service ${service} to forward to`);
      return null;
    }
    const up = createSocket(isIPv6(target.address) ? 'udp6' : 'udp4');
    up.on('message', onReply);
    // The service went away or moved: the flow ends, and the client's next datagram finds it anew.
    up.on('error', onError);
    return new Promise((resolve) => {
      up.connect(target.port, target.address, (err?: Error) => {
        if (!err) return resolve(up);
        this.log(`ambassador: ${service}: cannot reach ${target.address}:${target.port}: ${err.message}`);
        up.close();
        resolve(null);
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
      for (const l of s.on.values()) l.close();
      this.servers.delete(name);
      await this.store.delete(this.keys.ambassador(this.host, name));
    }
  }

  close(): void {
    for (const s of this.servers.values()) for (const l of s.on.values()) l.close();
    this.servers.clear();
  }
}
