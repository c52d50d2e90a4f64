import { randomBytes } from 'node:crypto';
import { cpus, freemem, totalmem } from 'node:os';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HostRecord } from '../core/hosts.js';
import { DockerEngine } from '../host/docker.js';
import type { HostRepo } from '../state/hosts.js';
import type { Store } from '../state/store.js';
import { startApi } from './api.js';

export interface AgentOptions {
  name: string;
  tags: string[];
  listen: { host: string; port: number };
  ttlSeconds: number;
  tokenFile: string;
  dockerSocket: string;
  /** PEM certificate and key: the API speaks https. */
  tls?: { cert: Buffer; key: Buffer };
}

/** The token file the operator controls; made (0600) with a random token when missing. */
export async function agentToken(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const token = randomBytes(32).toString('hex');
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return token;
}

async function runningJobs(engine: DockerEngine): Promise<number> {
  try {
    const list = await engine.call<unknown[]>('GET', `/containers/json?filters=${encodeURIComponent(JSON.stringify({ label: ['knarr.job'] }))}`, undefined, 3000);
    return list.length;
  } catch {
    return 0;
  }
}

/**
 * The agent: registers its host under a lease (a host whose lease lapses is down), keeps the lease
 * and its load fresh, and serves the token-protected API. Returns once stop() was called.
 */
export class Agent {
  private server: Server | null = null;
  private lease: string | null = null;
  private stopped = false;
  private tags: string[];

  constructor(
    private readonly opts: AgentOptions,
    private readonly store: Store,
    private readonly hosts: HostRepo,
    private readonly log: (line: string) => void,
  ) {
    this.tags = opts.tags;
  }

  get address(): string {
    return `${this.opts.tls ? 'https' : 'http'}://${this.opts.listen.host}:${this.opts.listen.port}`;
  }

  private async record(registering = false): Promise<HostRecord> {
    const engine = new DockerEngine(this.opts.dockerSocket);
    const previous = (await this.hosts.get(this.opts.name))?.host;
    const now = new Date().toISOString();
    return {
      name: this.opts.name,
      address: this.address,
      dockerEndpoint: `unix://${this.opts.dockerSocket}`,
      // Tags belong to the operator once set (knarr host tag): the agent adds its own at registration only.
      tags: registering ? [...new Set([...(previous?.tags ?? []), ...this.tags])].sort() : previous?.tags ?? this.tags,
      capacity: { cpu: cpus().length * 1000, memory: totalmem() },
      load: { runningJobs: await runningJobs(engine), freeMemory: freemem() },
      // A drained host stays drained across agent restarts; a host that left and comes back is ok again.
      state: previous?.state === 'draining' ? 'draining' : 'ok',
      joinedAt: previous?.joinedAt ?? now,
      updatedAt: now,
    };
  }

  private async register(): Promise<void> {
    this.lease = await this.store.grantLease(this.opts.ttlSeconds);
    await this.hosts.put(await this.record(true));
    await this.hosts.markAlive(this.opts.name, this.lease, { pid: process.pid, address: this.address, since: new Date().toISOString() });
  }

  async start(token: () => string): Promise<void> {
    this.server = await startApi(this.opts.listen, token, {
      'GET /v1/health': async () => ({ host: this.opts.name, ok: true }),
      'GET /v1/host': async () => (await this.hosts.get(this.opts.name))?.host ?? null,
    }, this.opts.tls);
    await this.register();
    this.log(`agent ${this.opts.name} up: API ${this.address}, lease ${this.opts.ttlSeconds}s`);
  }

  /** Keeps the lease and the load fresh until stopped; re-registers if etcd lost the lease. */
  async serve(signal: AbortSignal): Promise<void> {
    const every = Math.max(200, (this.opts.ttlSeconds * 1000) / 3);
    while (!signal.aborted && !this.stopped) {
      await sleep(every, undefined, { signal }).catch(() => undefined);
      if (signal.aborted || this.stopped) break;
      try {
        if (!this.lease || !(await this.store.keepAlive(this.lease))) await this.register();
        else await this.hosts.put(await this.record());
      } catch (e) {
        this.log(`agent: cannot reach the store (${(e as Error).message}); retrying`);
      }
    }
  }

  /** Stops serving and gives the lease back, so the fleet sees the host down at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    await new Promise<void>((res) => (this.server ? this.server.close(() => res()) : res()));
    if (this.lease) await this.store.revokeLease(this.lease);
  }
}
