import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';

/**
 * An HTTP request on the engine's unix socket. An empty servername keeps node's agent from working one
 * out of the Host header (its first IP test compiles a large regex: ~5 ms on every foreground job's path).
 */
function request(options: RequestOptions, onResponse?: (res: IncomingMessage) => void): ClientRequest {
  return httpRequest({ ...options, servername: '' } as RequestOptions, onResponse);
}
import { DryRunWriteError, EngineError, FailureError, isKnarrError, PrerequisiteError, ValidationError } from '../core/errors.js';
import { logQuery, type LogOptions } from '../core/logs.js';
import { onJsonLines } from '../core/streams.js';

/** The local Docker Engine socket: DOCKER_HOST when set (a unix:// URL; any other is refused), else the standard path. */
export function dockerSocketPath(env: NodeJS.ProcessEnv): string {
  const host = env.DOCKER_HOST;
  if (host === undefined || host === '') return '/var/run/docker.sock';
  const path = host.startsWith('unix://') ? host.slice('unix://'.length) : '';
  if (path.startsWith('/')) return path;
  throw new ValidationError('DOCKER_HOST', `${JSON.stringify(host)} is not supported: knarr talks to the docker engine on this host through its unix socket`, {
    hint:
      "set DOCKER_HOST=unix:///var/run/docker.sock (or the engine's own socket path), or unset it; a job runs on another host through " +
      "that host's agent (knarr daemon)",
  });
}

/** The Engine API versions knarr's requests are written for: it speaks the engine's newest, capped at NEWEST. */
export const ENGINE_API = { oldest: '1.41', newest: '1.47' } as const;

/** Dotted API versions compared numerically: 1.9 < 1.41. */
function compareVersions(a: string, b: string): number {
  const [am = 0, an = 0] = a.split('.').map(Number);
  const [bm = 0, bn = 0] = b.split('.').map(Number);
  return am - bm || an - bn;
}

/** The API version to speak to an engine whose newest is engineNewest; refuses an engine older than knarr supports. */
export function negotiateApiVersion(engineNewest: string, socketPath: string): string {
  if (!/^\d+\.\d+$/.test(engineNewest)) throw new FailureError(`the docker engine on ${socketPath} named no API version (${JSON.stringify(engineNewest)})`);
  if (compareVersions(engineNewest, ENGINE_API.oldest) < 0) {
    throw new PrerequisiteError(`the docker engine on ${socketPath} speaks API ${engineNewest}; knarr needs ${ENGINE_API.oldest} or newer (docker 20.10)`, {
      hint: 'upgrade docker',
    });
  }
  return compareVersions(engineNewest, ENGINE_API.newest) > 0 ? ENGINE_API.newest : engineNewest;
}

/** What a failed connection to the engine's socket means to the operator. */
function connectionError(socketPath: string, e: NodeJS.ErrnoException): Error {
  if (isKnarrError(e)) return e;
  if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
    return new PrerequisiteError(`no docker engine answers on ${socketPath}`, {
      hint: 'start dockerd (knarr doctor --fix), or set DOCKER_HOST=unix:///path/to/docker.sock',
      cause: e,
    });
  }
  if (e.code === 'EACCES')
    return new PrerequisiteError(`this user may not use the docker engine's socket ${socketPath}`, {
      hint: 'run knarr as root, or as a member of the docker group',
      cause: e,
    });
  return new FailureError(`the connection to the docker engine on ${socketPath} failed: ${e.code ?? e.message}`, { cause: e });
}

/** GET /_ping on the engine socket; resolves to the API version on success, null when unreachable. */
export function pingDocker(socketPath: string, timeoutMs = 2000): Promise<string | null> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? String(res.headers['api-version'] ?? 'unknown') : null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
    req.end();
  });
}

/** The first address of an IPv4 network written a.b.c.d/len (the one docker gives a bridge with no gateway named). */
export function firstAddress(cidr: string): string {
  const base = cidr
    .split('/')[0]!
    .split('.')
    .reduce((a, o) => a * 256 + Number(o), 0);
  const len = Number(cidr.split('/')[1] ?? 32);
  const network = len === 0 ? 0 : Math.floor(base / 2 ** (32 - len)) * 2 ** (32 - len);
  const n = network + 1;
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/** Reads an error response into an EngineError carrying the engine's own message. */
function apiError(res: import('node:http').IncomingMessage): Promise<EngineError> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let message = text.trim();
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? message;
      } catch {
        /* plain text */
      }
      // An engine that no longer speaks knarr's newest API version: only a newer knarr can talk to it.
      const hint = /client version .* is too old/i.test(message)
        ? `this docker engine no longer speaks API ${ENGINE_API.newest}, the newest knarr knows; upgrade knarr`
        : undefined;
      resolve(new EngineError(res.statusCode ?? 0, message, { hint }));
    });
  });
}

export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  State: string;
  Labels: Record<string, string>;
}

export interface ContainerInspect {
  Id: string;
  Name: string;
  RestartCount: number;
  State: { Running: boolean; Restarting: boolean; Status: string; ExitCode: number; Error: string; StartedAt: string; FinishedAt: string };
  Config: { Labels: Record<string, string> | null };
  /** Published ports of a running container: `80/tcp` → its bindings on the host (null when not published). */
  NetworkSettings?: { Ports?: Record<string, { HostIp: string; HostPort: string }[] | null> | null };
}

export interface ContainerCreate {
  Image: string;
  Cmd?: string[];
  Env?: string[];
  Labels?: Record<string, string>;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Tty?: boolean;
  HostConfig?: Record<string, unknown>;
}

/**
 * The Docker Engine API over its unix socket with node's http client (no client library to load:
 * `knarr job run` starts as fast as the docker CLI). Attach uses the API's connection hijack.
 */
export class DockerEngine {
  private version: Promise<string> | undefined;

  /** readOnly (--dry-run): every request but a GET is refused, so nothing reaches the engine that changes it. apiVersion skips the negotiation. */
  constructor(
    readonly socketPath: string,
    readonly readOnly: boolean,
    apiVersion?: string,
  ) {
    if (apiVersion) this.version = Promise.resolve(apiVersion);
  }

  private refuseWrite(method: string, path: string): void {
    if (this.readOnly && method !== 'GET') throw new DryRunWriteError(`send ${method} ${path.split('?')[0]} to the Docker engine`);
  }

  /** The API version spoken to this engine: its newest (from the unversioned /_ping), capped at knarr's; asked once. */
  apiVersion(): Promise<string> {
    this.version ??= new Promise<string>((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path: '/_ping', method: 'GET', timeout: 10_000 }, (res) => {
        res.resume();
        const header = res.headers['api-version'];
        if ((res.statusCode ?? 0) !== 200)
          return void reject(new EngineError(res.statusCode ?? 0, `the docker engine on ${this.socketPath} answered ${res.statusCode} to /_ping`));
        try {
          resolve(negotiateApiVersion(String(header ?? ''), this.socketPath));
        } catch (e) {
          reject(e);
        }
      });
      req.on('timeout', () =>
        req.destroy(
          new FailureError(`the docker engine on ${this.socketPath} did not answer /_ping within 10 s`, { hint: 'is dockerd stuck? see journalctl -u docker' }),
        ),
      );
      req.on('error', (e) => reject(connectionError(this.socketPath, e)));
      req.end();
    });
    // A failed negotiation is asked again next time: the engine may have been started meanwhile.
    this.version.catch(() => (this.version = undefined));
    return this.version;
  }

  async call<T = unknown>(method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
    this.refuseWrite(method, path);
    const version = await this.apiVersion();
    return this.send<T>(version, method, path, body, timeoutMs).catch(async (e: unknown) => {
      // The engine was upgraded or downgraded under a long-lived agent: negotiate again, once (a refused request did nothing).
      if (!(e instanceof EngineError && /client version \S+ is too (old|new)/i.test(e.message))) throw e;
      this.version = undefined;
      return this.send<T>(await this.apiVersion(), method, path, body, timeoutMs);
    });
  }

  private send<T>(version: string, method: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path: `/v${version}${path}`,
          timeout: timeoutMs,
          headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
        },
        (res) => {
          if ((res.statusCode ?? 0) >= 400) return void apiError(res).then(reject);
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            try {
              resolve((text ? JSON.parse(text) : undefined) as T);
            } catch {
              resolve(text as T);
            }
          });
        },
      );
      req.on('timeout', () =>
        req.destroy(
          new FailureError(`the docker engine did not answer ${method} ${path.split('?')[0]} within ${timeoutMs / 1000} s`, {
            hint: 'is dockerd stuck? see journalctl -u docker',
          }),
        ),
      );
      req.on('error', (e) => reject(connectionError(this.socketPath, e)));
      req.end(data);
    });
  }

  async create(name: string, spec: ContainerCreate): Promise<string> {
    return (await this.call<{ Id: string }>('POST', `/containers/create?name=${encodeURIComponent(name)}`, spec)).Id;
  }

  start(id: string): Promise<unknown> {
    return this.call('POST', `/containers/${encodeURIComponent(id)}/start`);
  }

  /** Exit status; with condition "removed" it answers once an auto-removed container is gone. */
  async wait(id: string, condition: 'not-running' | 'removed' = 'not-running'): Promise<number> {
    return (await this.call<{ StatusCode: number }>('POST', `/containers/${encodeURIComponent(id)}/wait?condition=${condition}`, undefined, 0)).StatusCode;
  }

  stop(id: string): Promise<unknown> {
    return this.call('POST', `/containers/${encodeURIComponent(id)}/stop?t=10`);
  }

  inspect(id: string): Promise<ContainerInspect> {
    return this.call('GET', `/containers/${encodeURIComponent(id)}/json`);
  }

  /** Containers (stopped ones too with all), optionally filtered by label (`key` or `key=value`). */
  list(all: boolean, labels: string[] = []): Promise<ContainerSummary[]> {
    const filters = labels.length > 0 ? `&filters=${encodeURIComponent(JSON.stringify({ label: labels }))}` : '';
    return this.call('GET', `/containers/json?all=${all ? 1 : 0}${filters}`, undefined, 10_000);
  }

  /**
   * The engine's container events with these labels, as they happen, until signal aborts.
   * Resolves once the engine accepted the subscription; onEnd runs when the stream ends any other way.
   */
  async events(
    labels: string[],
    onEvent: (e: { Action: string; id: string; Actor?: { Attributes?: Record<string, string> } }) => void,
    signal: AbortSignal,
    onEnd: () => void,
  ): Promise<void> {
    const filters = encodeURIComponent(JSON.stringify({ type: ['container'], ...(labels.length > 0 ? { label: labels } : {}) }));
    const version = await this.apiVersion();
    // Aborted already (a shutdown meanwhile): no subscription that would hold the process open.
    if (signal.aborted) return;
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, method: 'GET', path: `/v${version}/events?filters=${filters}` }, (res) => {
        if ((res.statusCode ?? 0) >= 400) return void apiError(res).then(reject);
        resolve();
        onJsonLines(res, (e) => onEvent(e as Parameters<typeof onEvent>[0]));
        res.on('close', () => {
          if (!signal.aborted) onEnd();
        });
      });
      signal.addEventListener('abort', () => req.destroy(), { once: true });
      req.on('error', (e) => (signal.aborted ? resolve() : reject(connectionError(this.socketPath, e))));
      req.end();
    });
  }

  /** The container's log as a multiplexed stream (see demux), the part options ask for; with follow it stays open. */
  async logs(id: string, options: LogOptions): Promise<import('node:http').IncomingMessage> {
    const version = await this.apiVersion();
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          method: 'GET',
          path: `/v${version}/containers/${encodeURIComponent(id)}/logs?${logQuery(options)}`,
        },
        (res) => {
          if ((res.statusCode ?? 0) >= 400) void apiError(res).then(reject);
          else resolve(res);
        },
      );
      req.on('error', (e) => reject(connectionError(this.socketPath, e)));
      req.end();
    });
  }

  /**
   * Where a container on network reaches its host: the network's gateway (docker gives its bridge the
   * first address when none was named). Null for host and none, or when the engine does not know it.
   */
  async gateway(mode: string | null): Promise<string | null> {
    // No network mode is the engine's default network, bridge.
    const network = mode ?? 'bridge';
    if (network === 'host' || network === 'none') return null;
    const n = await this.call<{ Driver?: string; IPAM?: { Config?: { Subnet?: string; Gateway?: string }[] | null } }>(
      'GET',
      `/networks/${encodeURIComponent(network)}`,
      undefined,
      5000,
    ).catch(() => null);
    // Only a bridge's gateway is on this host (macvlan's or an overlay's is not).
    if (n?.Driver !== 'bridge') return null;
    const v4 = n?.IPAM?.Config?.find((c) => c.Subnet !== undefined && /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(c.Subnet));
    if (!v4) return null;
    return v4.Gateway || firstAddress(v4.Subnet!);
  }

  remove(id: string): Promise<unknown> {
    return this.call('DELETE', `/containers/${encodeURIComponent(id)}?force=1`);
  }

  /** Attaches before start; resolves to the raw two-way socket (stdout/stderr multiplexed, stdin written to it). */
  async attach(id: string, stdin: boolean): Promise<import('node:net').Socket> {
    this.refuseWrite('POST', `/containers/${id}/attach`);
    const version = await this.apiVersion();
    return new Promise((resolve, reject) => {
      const req = request({
        socketPath: this.socketPath,
        method: 'POST',
        path: `/v${version}/containers/${encodeURIComponent(id)}/attach?stream=1&stdout=1&stderr=1${stdin ? '&stdin=1' : ''}`,
        headers: { Connection: 'Upgrade', Upgrade: 'tcp' },
      });
      req.on('upgrade', (_res, socket, head) => {
        if (head.length > 0) socket.unshift(head);
        resolve(socket as import('node:net').Socket);
      });
      // An answer instead of an upgrade is a refusal.
      req.on('response', (res) => void apiError(res).then(reject));
      req.on('error', (e) => reject(connectionError(this.socketPath, e)));
      req.end();
    });
  }
}

/** The first frame kind the engine never sends: knarr's agent appends the job's exit status as one. */
export const CONTROL_FRAME = 0x10;

/** One multiplexed frame: kind, three zero bytes, the payload's length, the payload. */
export function frame(kind: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = kind;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/**
 * Splits the engine's multiplexed attach stream (8-byte frame headers: stream 1 stdout, 2 stderr)
 * onto two writables, honouring backpressure on both: a full writable pauses the source until it drains.
 */
export function demux(
  source: import('node:stream').Readable,
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
  onControl?: (kind: number, payload: Buffer) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let waiting = false;
    let ended = false;
    const settle = () => {
      if (ended && !waiting) resolve();
    };
    const writeFrames = () => {
      while (buf.length >= 8) {
        const size = buf.readUInt32BE(4);
        if (buf.length < 8 + size) break;
        const kind = buf[0];
        const payload = buf.subarray(8, 8 + size);
        buf = buf.subarray(8 + size);
        // Kinds above stderr's are knarr's own control frames (an agent's exit status).
        if (kind !== undefined && kind >= CONTROL_FRAME && onControl) {
          onControl(kind, Buffer.from(payload));
          continue;
        }
        const target = kind === 2 ? stderr : stdout;
        // Output for a reader that is gone is dropped: the job still runs to its end.
        if ((target as { destroyed?: boolean }).destroyed) continue;
        if (!target.write(payload)) {
          // One listener per pause; the frames still buffered wait for the drain.
          waiting = true;
          source.pause();
          const onWritable = () => {
            target.off('drain', onWritable).off('close', onWritable).off('error', onWritable);
            waiting = false;
            writeFrames();
            if (!waiting) {
              source.resume();
              settle();
            }
          };
          // A reader that went away (`| head -1`) never drains: its close or error ends the wait too.
          target.on('drain', onWritable).on('close', onWritable).on('error', onWritable);
          return;
        }
      }
    };
    source.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (!waiting) writeFrames();
    });
    const onEnd = () => {
      ended = true;
      settle();
    };
    source.once('end', onEnd);
    source.once('close', onEnd);
    source.once('error', reject);
  });
}
