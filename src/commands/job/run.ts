import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ConflictError, NotFoundError, PrerequisiteError, UserError, ValidationError } from '../../core/errors.js';
import { parseJobSpec, type JobSpec } from '../../core/job-spec.js';
import type { Writable } from 'node:stream';
import { fleetViews, jobRequest, type HostRecord } from '../../core/hosts.js';
import { Scheduler } from '../../core/scheduler.js';
import { localAgent } from '../../daemon/pidfile.js';
import type { Reconciler } from '../../daemon/reconcile.js';
import { DockerApiError, DockerEngine, demux, dockerSocketPath } from '../../host/docker.js';
import { daemonContainerName, foregroundContainer, startAttached, type AttachedRun } from '../../host/job-containers.js';
import { HostRepo } from '../../state/hosts.js';
import { JobRepo, type JobActual, type JobIntent } from '../../state/jobs.js';
import type { Store } from '../../state/store.js';
import { hostId } from '../../host/identity.js';
import { withStore } from '../with-store.js';
import { AgentClient } from './agent-client.js';
import { optBool, optList, optString, type CommandResult, type Context, type Handler } from '../types.js';

async function readSpecFile(ctx: Context, file: string): Promise<Record<string, unknown>> {
  const path = resolve(ctx.cwd, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ValidationError('--file', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const { parse } = await import('yaml');
    return (parse(text) ?? {}) as Record<string, unknown>;
  } catch (e) {
    throw new ValidationError('--file', `${path} is not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** The spec from -f and the flags (flags win), validated before anything runs. */
export async function specFrom(ctx: Context, args: (string | string[] | undefined)[], opts: Record<string, unknown>): Promise<{ spec: JobSpec; source: string }> {
  const file = optString(opts, 'file');
  const raw: Record<string, unknown> = file ? await readSpecFile(ctx, file) : {};
  const image = args[0] as string | undefined;
  const command = (args[1] as string[] | undefined) ?? [];
  if (image !== undefined) raw.image = image;
  if (command.length > 0) raw.command = command;
  raw.name = optString(opts, 'name') ?? raw.name ?? `run-${randomBytes(4).toString('hex')}`;
  const network = optString(opts, 'network');
  if (network !== undefined) raw.network = network;
  const host = optString(opts, 'host');
  if (host !== undefined) raw.host = host;
  const tags = optList(opts, 'tag');
  if (tags.length > 0) raw.tags = [...(Array.isArray(raw.tags) ? raw.tags : []), ...tags];
  const ports = optList(opts, 'port');
  if (ports.length > 0) raw.ports = [...(Array.isArray(raw.ports) ? raw.ports : []), ...ports];
  const volumes = optList(opts, 'volume');
  if (volumes.length > 0) raw.volumes = [...(Array.isArray(raw.volumes) ? raw.volumes : []), ...volumes];
  const links = optList(opts, 'link');
  if (links.length > 0) raw.links = [...(Array.isArray(raw.links) ? raw.links : []), ...links];
  const restart = optString(opts, 'restart');
  if (restart !== undefined) raw.restart = restart;
  if (optBool(opts, 'detach')) raw.daemonize = true;
  const env = optList(opts, 'env');
  if (env.length > 0) raw.env = [...(Array.isArray(raw.env) ? raw.env : Object.entries((raw.env as Record<string, string>) ?? {}).map(([k, v]) => `${k}=${v}`)), ...env];
  const source = file ?? 'flags';
  return { spec: parseJobSpec(raw, source), source };
}

export function engineError(e: unknown, image: string, socket: string): never {
  if (e instanceof DockerApiError && e.status === 404 && /image/i.test(e.message)) {
    throw new NotFoundError(`image ${image} is not on this host: ${e.message}`, { hint: 'load it with docker pull, docker load or docker import' });
  }
  if (e instanceof DockerApiError) throw new UserError(`docker refused the job: ${e.message}`);
  if ((e as NodeJS.ErrnoException)?.code === 'ENOENT' || (e as NodeJS.ErrnoException)?.code === 'ECONNREFUSED') {
    throw new PrerequisiteError(`no docker engine answers on ${socket}`, { hint: 'start dockerd (knarr doctor --fix), or set DOCKER_HOST' });
  }
  throw e;
}

/**
 * Where a foreground job runs: on a host chosen by the scheduler (through its agent), or on this
 * host's engine directly (binds for its dot volumes resolved here) when no agent serves the fleet.
 */
async function foregroundTarget(ctx: Context, spec: JobSpec): Promise<{ host: HostRecord } | { binds: string[] }> {
  const usesDots = spec.volumes.some((v) => v.kind === 'dot');
  // The embedded default stays fast: no store is opened unless a fleet is asked for, an agent serves this host, or dots are used.
  const fleetWanted = spec.host !== null || spec.tags.length > 0 || ctx.config.etcd.length > 0 || (await localAgent(`${ctx.config.stateDir}/agent.json`)) !== null;
  if (!fleetWanted && !usesDots) return { binds: [] };
  return withStore(ctx, async (store) => {
    const hosts = fleetWanted ? await new HostRepo(store, ctx.config.fleet).list() : [];
    if (!hosts.some((h) => h.up)) {
      if ((spec.host === null || spec.host === hostId()) && spec.tags.length === 0) {
        const { dotBinds } = await import('./volumes.js');
        return { binds: await dotBinds(ctx, store, spec) };
      }
      throw new UserError(`no host of fleet ${ctx.config.fleet} is up to run job ${spec.name}`, { hint: 'start an agent (knarr daemon) on the hosts, or drop --host/--tag to run here' });
    }
    const intents = await new JobRepo(store, ctx.config.fleet).intents();
    return { host: await placeOn(ctx, store, spec, hosts, intents, []) };
  });
}

/** The scheduler's host for spec among the hosts that have its dots, or a clear error naming why none fits. */
async function placeOn(ctx: Context, store: Store, spec: JobSpec, hosts: Awaited<ReturnType<HostRepo['list']>>, intents: JobIntent[], history: string[]): Promise<HostRecord> {
  const { hostsWithDots } = await import('./volumes.js');
  const withDots = new Set(await hostsWithDots(store, ctx.config.fleet, spec, hosts.map((h) => h.host.name)));
  if (withDots.size === 0) throw new UserError(`no host of fleet ${ctx.config.fleet} has every dot job ${spec.name} uses`, { hint: 'see where dots are with knarr dot list on each host; pull the dot to a host first' });
  const p = new Scheduler(fleetViews(hosts.filter((h) => withDots.has(h.host.name)), intents.filter((i) => i.managed))).place(jobRequest(spec, history));
  if (!p.host) throw new UserError(`no host can run job ${spec.name}: ${p.reason}`, { hint: 'see each host\'s verdict with: knarr job plan (same flags)' });
  return hosts.find((h) => h.host.name === p.host)!.host;
}

/**
 * `knarr job run [-i] IMAGE [-- CMD...]`. A foreground job streams its output as it comes; -i pipes
 * stdin in, binary-safe, with backpressure and end-of-file passed through; knarr exits with the job's
 * exit code; the container is removed. With no agent it runs on this host's engine (the embedded
 * default); in a fleet it runs where the scheduler places it, through that host's agent.
 */
export const jobRun: Handler = async ({ args, opts }, ctx) => {
  const { spec } = await specFrom(ctx, args, opts);
  const interactive = optBool(opts, 'interactive');
  if (spec.daemonize) {
    if (interactive) throw new ValidationError('--interactive', `job ${spec.name} runs daemonized (it has ports or daemonize: true); -i is for foreground jobs`);
    return runDaemonized(ctx, spec);
  }
  const socket = dockerSocketPath(ctx.env);
  const containerName = `knarr-${spec.name}-${randomBytes(3).toString('hex')}`;
  if (ctx.runner.plan(['docker', '-H', `unix://${socket}`, 'run', '--rm', ...(interactive ? ['-i'] : []), '--name', containerName, '--label', `knarr.job=${spec.name}`, spec.image, ...spec.command])) {
    return { data: { job: spec.name, container: containerName, create: foregroundContainer(spec, ctx.config.fleet, interactive) } };
  }
  const target = await foregroundTarget(ctx, spec);
  if ('host' in target) return { data: { job: spec.name, host: target.host.name }, stream: (stdout, stderr) => runThroughAgent(ctx, target.host, spec, interactive, stdout, stderr) };
  const engine = new DockerEngine(socket);
  return {
    data: { job: spec.name },
    stream: async (stdout, stderr) => {
      let run: AttachedRun;
      try {
        run = await startAttached(engine, containerName, foregroundContainer(spec, ctx.config.fleet, interactive, { binds: target.binds }), interactive);
      } catch (e) {
        engineError(e, spec.image, socket);
      }
      const stop = () => void engine.remove(run.id).catch(() => undefined);
      let removed = false;
      ctx.signal.addEventListener('abort', stop, { once: true });
      try {
        const output = demux(run.socket, stdout, stderr);
        // stdin's end closes the job's stdin (a half-close of the attach connection), so `cat` and `wc` finish.
        if (interactive) ctx.stdin.pipe(run.socket);
        const [code] = await Promise.all([run.exited, output]);
        removed = true;
        return code;
      } finally {
        ctx.signal.removeEventListener('abort', stop);
        if (!removed) await engine.remove(run.id).catch(() => undefined);
      }
    },
  };
};

/** A foreground job on another host: the agent relays the engine's streams and ends with the exit status. */
async function runThroughAgent(ctx: Context, host: HostRecord, spec: JobSpec, interactive: boolean, stdout: Writable, stderr: Writable): Promise<number> {
  const client = await AgentClient.connect(ctx, host);
  const sock = await client.run(spec, interactive);
  let status: { exitCode?: number; error?: string } | null = null;
  const stop = () => sock.destroy();
  ctx.signal.addEventListener('abort', stop, { once: true });
  try {
    const output = demux(sock, stdout, stderr, (_kind, payload) => {
      status = JSON.parse(payload.toString('utf8')) as { exitCode?: number; error?: string };
    });
    if (interactive) ctx.stdin.pipe(sock);
    await output;
  } finally {
    ctx.signal.removeEventListener('abort', stop);
  }
  const end = status as { exitCode?: number; error?: string } | null;
  if (!end) throw new UserError(`the connection to ${host.name}'s agent ended before job ${spec.name} did`);
  if (end.error !== undefined) throw new UserError(`job ${spec.name} on ${host.name}: ${end.error}`);
  return end.exitCode ?? 0;
}

/**
 * A daemonized job. The intent (proc) is written first and is the fleet-wide lock on the name.
 * In a fleet, the scheduler places it and the host's agent starts it and keeps it running; with no
 * agent, it runs on this host's engine at once. Either way the actual state (ps) and one service per
 * port are written after the start, and a failed start removes the intent again.
 */
async function runDaemonized(ctx: Context, spec: JobSpec): Promise<CommandResult> {
  if (ctx.runner.plan(['docker', '-H', `unix://${dockerSocketPath(ctx.env)}`, 'run', '-d', '--name', daemonContainerName(spec.name), '--label', `knarr.job=${spec.name}`, ...spec.ports.flatMap((p) => ['-p', `${p.host}:${p.container}/${p.protocol}`]), spec.image, ...spec.command])) {
    return { data: { job: spec.name, daemonized: true } };
  }
  return withStore(ctx, async (store) => {
    const repo = new JobRepo(store, ctx.config.fleet);
    const hosts = await new HostRepo(store, ctx.config.fleet).list();
    const managed = hosts.some((h) => h.up);
    let target: HostRecord | null = null;
    if (managed) target = await placeOn(ctx, store, spec, hosts, await repo.intents(), await repo.pastHosts(spec.name));
    else if ((spec.host !== null && spec.host !== hostId()) || spec.tags.length > 0) throw new UserError(`no host of fleet ${ctx.config.fleet} is up to run job ${spec.name}`, { hint: 'start an agent (knarr daemon) on the hosts, or drop --host/--tag to run here' });
    const host = target?.name ?? hostId();
    if (!(await repo.createIntent(spec.name, { spec, host, desired: 'running', generation: 0, managed, createdAt: new Date().toISOString() }))) {
      throw new ConflictError(`a job named ${spec.name} already exists in the fleet`, { hint: `see it with: knarr job show ${spec.name}; remove it with: knarr job rm ${spec.name}` });
    }
    await repo.addEvent(spec.name, { host, event: 'placed' });
    let actual: JobActual | null;
    if (target) {
      await (await AgentClient.connect(ctx, target)).converge();
      actual = await repo.actual(spec.name);
    } else {
      actual = await (await inlineReconciler(ctx, store, repo)).one(spec.name);
    }
    if (!actual || actual.state === 'failed') {
      await repo.remove(spec.name);
      if (target) await (await AgentClient.connect(ctx, target)).converge().catch(() => undefined);
      const reason = actual?.error ?? 'it did not start';
      if (/no such image/i.test(reason)) throw new NotFoundError(`image ${spec.image} is not on ${host}: ${reason}`, { hint: 'load it with docker pull, docker load or docker import' });
      throw new UserError(`job ${spec.name} did not start on ${host}: ${reason}`);
    }
    return {
      data: { job: spec.name, host, container: actual.container, state: actual.state, daemonized: true, ports: spec.ports },
      view: { kind: 'lines', lines: [`job ${spec.name} runs on ${host} (container ${actual.container.slice(0, 12)})`] },
    };
  });
}

/** The agent's reconciler run by the CLI for this host's engine, when no agent serves the fleet. */
export async function inlineReconciler(ctx: Context, store: Store, repo: JobRepo): Promise<Reconciler> {
  const { Reconciler } = await import('../../daemon/reconcile.js');
  const engine = new DockerEngine(dockerSocketPath(ctx.env));
  const { dotBinds } = await import('./volumes.js');
  return new Reconciler({ host: hostId(), fleet: ctx.config.fleet, serviceAddress: '127.0.0.1', prune: false, dotBinds: (spec) => dotBinds(ctx, store, spec) }, engine, repo, new HostRepo(store, ctx.config.fleet), { direct: true }, (line) => ctx.events.step(line));
}
