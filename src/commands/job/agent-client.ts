import { logQuery, type LogOptions } from '../../core/logs.js';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { ConflictError, DryRunWriteError, FailureError, NotFoundError, PrerequisiteError, UserError, type KnarrError } from '../../core/errors.js';
import type { HostRecord } from '../../core/hosts.js';
import { jobSpecInput, MAX_JOB_REQUEST_BYTES, type JobSpec } from '../../core/job-spec.js';
import type { Context } from '../types.js';

/** The agents' token: KNARR_AGENT_TOKEN, else the file KNARR_AGENT_TOKEN_FILE (jobs.agentTokenFile), else <state-dir>/agent.token. */
async function agentToken(ctx: Context): Promise<string> {
  if (ctx.config.jobs.agentToken) return ctx.config.jobs.agentToken.trim();
  const file = ctx.config.jobs.agentTokenFile;
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    throw new PrerequisiteError(`no agent token in ${file}: reaching another host's jobs needs the agents' token`, {
      hint: "copy the agents' token file there, or set KNARR_AGENT_TOKEN or KNARR_AGENT_TOKEN_FILE",
    });
  }
}

/** What the agent API answered instead of success, as the error of the same kind (bad request, token, missing, clash). */
async function refusal(host: string, res: IncomingMessage): Promise<KnarrError> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  let message = Buffer.concat(chunks).toString('utf8').trim();
  try {
    message = (JSON.parse(message) as { error?: string }).error ?? message;
  } catch {
    /* plain text */
  }
  const text = `the agent on ${host} refused (${res.statusCode}): ${message}`;
  const status = res.statusCode ?? 500;
  if (status === 401 || status === 403)
    return new PrerequisiteError(text, { hint: "the agents' token: KNARR_AGENT_TOKEN, KNARR_AGENT_TOKEN_FILE or <state-dir>/agent.token" });
  if (status === 404) return new NotFoundError(text);
  if (status === 409) return new ConflictError(text);
  if (status === 400) return new UserError(text);
  return new FailureError(text);
}

/** The CLI's side of a host's agent API: bearer token, http or https (KNARR_AGENT_CA names the CA to trust). */
export class AgentClient {
  private constructor(
    private readonly host: HostRecord,
    private readonly token: string,
    private readonly ca: Buffer | undefined,
    /** --dry-run: only GETs reach the agent; anything else could change its host. */
    private readonly readOnly: boolean,
  ) {}

  static async connect(ctx: Context, host: HostRecord): Promise<AgentClient> {
    const ca = ctx.config.jobs.agentCa ? await readFile(ctx.config.jobs.agentCa) : undefined;
    return new AgentClient(host, await agentToken(ctx), ca, ctx.runner.dryRun);
  }

  private async open(method: string, path: string, headers: Record<string, string> = {}) {
    if (this.readOnly && method !== 'GET') throw new DryRunWriteError(`ask the agent of ${this.host.name} to ${method} ${path}`);
    const url = new URL(path, this.host.address);
    // With a CA to trust, the token goes over TLS only: a host record saying http (stale, or forged in etcd) does not get it.
    if (this.ca && url.protocol !== 'https:') {
      throw new PrerequisiteError(`the agent of ${this.host.name} is at ${this.host.address}, not https, and KNARR_AGENT_CA asks for TLS`, {
        hint: 'start that agent with --tls-cert and --tls-key, or unset KNARR_AGENT_CA',
      });
    }
    const { request } = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
    const req = request(url, { method, headers: { authorization: `Bearer ${this.token}`, ...headers }, ...(this.ca ? { ca: this.ca } : {}) });
    const unreachable = (e: Error) =>
      new PrerequisiteError(`cannot reach the agent of ${this.host.name} at ${this.host.address}: ${e.message}`, {
        hint: 'is its knarr daemon running? see: knarr host list',
      });
    return { req, unreachable };
  }

  /** A JSON call. */
  async call<T>(method: string, path: string): Promise<T> {
    const { req, unreachable } = await this.open(method, path);
    return new Promise((resolve, reject) => {
      req.on('response', (res) => {
        if ((res.statusCode ?? 0) >= 400) return void refusal(this.host.name, res).then(reject);
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as T));
      });
      req.on('error', (e) => reject(unreachable(e)));
      req.end();
    });
  }

  /** Has the agent converge its host to the store now (after the CLI changed an intent). */
  converge(): Promise<{ host: string; unknownContainers: unknown[] }> {
    return this.call('POST', '/v1/converge');
  }

  /** A daemonized job's log as the engine multiplexes it. */
  logs(job: string, options: LogOptions): Promise<IncomingMessage> {
    return this.stream(`/v1/jobs/${encodeURIComponent(job)}/logs?${logQuery(options)}`);
  }

  /** A GET whose answer is a stream (its trailers come at its end). */
  async stream(path: string): Promise<IncomingMessage> {
    const { req, unreachable } = await this.open('GET', path);
    return new Promise((resolve, reject) => {
      req.on('response', (res) => ((res.statusCode ?? 0) >= 400 ? void refusal(this.host.name, res).then(reject) : resolve(res)));
      req.on('error', (e) => reject(unreachable(e)));
      req.end();
    });
  }

  /** A raw connection from an upgrade (GET path, answered 101), or the agent's refusal as the error of its kind. */
  async upgrade(path: string): Promise<Socket> {
    const { req, unreachable } = await this.open('GET', path, { connection: 'Upgrade', upgrade: 'tcp' });
    return new Promise((resolve, reject) => {
      req.on('upgrade', (_res, socket, head) => {
        if (head.length > 0) socket.unshift(head);
        resolve(socket as Socket);
      });
      req.on('response', (res) => void refusal(this.host.name, res).then(reject));
      req.on('error', (e) => reject(unreachable(e)));
      req.end();
    });
  }

  /** A foreground job on the agent's host: the upgraded connection carries stdin in, the multiplexed output and a last status frame out. */
  async run(spec: JobSpec, interactive: boolean): Promise<Socket> {
    // In the body, not a header: a header's few kilobytes are far less than a spec with a large env may need.
    const job = Buffer.from(JSON.stringify({ spec: jobSpecInput(spec), interactive }));
    if (job.length > MAX_JOB_REQUEST_BYTES)
      throw new UserError(
        `job ${spec.name}'s spec is ${job.length} bytes as JSON; a foreground job's spec may be at most ${MAX_JOB_REQUEST_BYTES} bytes (1 MiB)`,
        {
          hint: 'put large data in a dot volume or a file the job reads, not in env or command',
        },
      );
    const { req, unreachable } = await this.open('POST', '/v1/run', {
      connection: 'Upgrade',
      upgrade: 'tcp',
      'content-type': 'application/json',
      'content-length': String(job.length),
    });
    return new Promise((resolve, reject) => {
      req.on('upgrade', (_res, socket, head) => {
        if (head.length > 0) socket.unshift(head);
        resolve(socket as Socket);
      });
      req.on('response', (res) => void refusal(this.host.name, res).then(reject));
      req.on('error', (e) => reject(unreachable(e)));
      req.end(job);
    });
  }
}
