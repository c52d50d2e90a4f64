import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ConflictError, NotFoundError, PrerequisiteError, UserError, ValidationError } from '../../core/errors.js';
import { parseJobSpec, type JobSpec } from '../../core/job-spec.js';
import { DockerApiError, DockerEngine, demux, dockerSocketPath, type ContainerCreate } from '../../host/docker.js';
import { JobRepo } from '../../state/jobs.js';
import { hostId } from '../dot/common.js';
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
  const env = optList(opts, 'env');
  if (env.length > 0) raw.env = [...(Array.isArray(raw.env) ? raw.env : Object.entries((raw.env as Record<string, string>) ?? {}).map(([k, v]) => `${k}=${v}`)), ...env];
  const source = file ?? 'flags';
  return { spec: parseJobSpec(raw, source), source };
}

/** What the engine is asked to create for a foreground job. */
export function containerFor(spec: JobSpec, fleet: string, interactive: boolean, network: string | undefined): ContainerCreate {
  return {
    Image: spec.image,
    Cmd: spec.command.length > 0 ? spec.command : undefined,
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    // `docker ps --filter label=knarr.job` finds every knarr job.
    Labels: { 'knarr.job': spec.name, 'knarr.fleet': fleet },
    OpenStdin: interactive,
    StdinOnce: interactive,
    AttachStdin: interactive,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    HostConfig: {
      // The engine removes the container itself, as `docker run --rm` does: one call less per job.
      AutoRemove: true,
      ...(network ? { NetworkMode: network } : {}),
      ...(spec.cpu ? { NanoCpus: spec.cpu * 1_000_000 } : {}),
      ...(spec.memory ? { Memory: spec.memory } : {}),
      Binds: spec.volumes.flatMap((v) => (v.kind === 'host' ? [`${v.source}:${v.target}${v.readOnly ? ':ro' : ''}`] : [])),
    },
  };
}

export function engineError(e: unknown, image: string, socket: string): never {
  if (e instanceof DockerApiError && e.status === 404 && /image/i.test(e.message)) {
    throw new NotFoundError(`image ${image} is not on this host: ${e.message}`, { hint: 'load it with docker pull, docker load or docker import' });
  }
  if ((e as NodeJS.ErrnoException)?.code === 'ENOENT' || (e as NodeJS.ErrnoException)?.code === 'ECONNREFUSED') {
    throw new PrerequisiteError(`no docker engine answers on ${socket}`, { hint: 'start dockerd (knarr doctor --fix), or set DOCKER_HOST' });
  }
  throw e;
}

/**
 * `knarr job run [-i] IMAGE [-- CMD...]`: a foreground job on this host's docker engine (the embedded
 * default with no agent). Output streams as it comes; -i pipes stdin in, binary-safe, with backpressure
 * and end-of-file passed through; knarr exits with the job's exit code; the container is removed.
 */
export const jobRun: Handler = async ({ args, opts }, ctx) => {
  const { spec } = await specFrom(ctx, args, opts);
  if (spec.volumes.some((v) => v.kind === 'dot')) throw new UserError('dot volumes on jobs are not supported yet', { hint: 'mount the dot (knarr dot mount) and use a host path volume' });
  const interactive = optBool(opts, 'interactive');
  const network = optString(opts, 'network');
  const socket = dockerSocketPath(ctx.env);
  const engine = new DockerEngine(socket);
  if (spec.daemonize) {
    if (interactive) throw new ValidationError('--interactive', `job ${spec.name} runs daemonized (it has ports or daemonize: true); -i is for foreground jobs`);
    return runDaemonized(ctx, spec, engine, network);
  }
  const create = containerFor(spec, ctx.config.fleet, interactive, network);
  const containerName = `knarr-${spec.name}-${randomBytes(3).toString('hex')}`;
  if (ctx.runner.plan(['docker', '-H', `unix://${socket}`, 'run', '--rm', ...(interactive ? ['-i'] : []), '--name', containerName, '--label', `knarr.job=${spec.name}`, spec.image, ...spec.command])) {
    return { data: { job: spec.name, container: containerName, create } };
  }
  return {
    data: { job: spec.name },
    stream: async (stdout, stderr) => {
      let id: string;
      try {
        id = await engine.create(containerName, create);
      } catch (e) {
        engineError(e, spec.image, socket);
      }
      const stop = () => void engine.remove(id).catch(() => undefined);
      let removed = false;
      ctx.signal.addEventListener('abort', stop, { once: true });
      try {
        const sock = await engine.attach(id, interactive);
        const output = demux(sock, stdout, stderr);
        // Waiting starts before the job does, or an auto-removed container could be gone first.
        const exited = engine.wait(id, 'removed');
        exited.catch(() => undefined);
        await engine.start(id);
        // stdin's end closes the job's stdin (a half-close of the attach connection), so `cat` and `wc` finish.
        if (interactive) ctx.stdin.pipe(sock);
        const [code] = await Promise.all([exited, output]);
        removed = true;
        return code;
      } finally {
        ctx.signal.removeEventListener('abort', stop);
        if (!removed) await engine.remove(id).catch(() => undefined);
      }
    },
  };
};

function portBindings(spec: JobSpec): { ExposedPorts: Record<string, object>; PortBindings: Record<string, { HostPort: string }[]> } {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostPort: string }[]> = {};
  for (const p of spec.ports) {
    exposed[`${p.container}/${p.protocol}`] = {};
    (bindings[`${p.container}/${p.protocol}`] ??= []).push({ HostPort: String(p.host) });
  }
  return { ExposedPorts: exposed, PortBindings: bindings };
}

/**
 * A daemonized job on this host: the intent (proc) is written first, and is the fleet-wide lock on
 * the name; then the container starts; then the actual state (ps) and one service per port are
 * written. A failed start removes the intent again, so nothing half-made remains.
 */
async function runDaemonized(ctx: Context, spec: JobSpec, engine: DockerEngine, network: string | undefined): Promise<CommandResult> {
  const host = hostId();
  const containerName = `knarr-${spec.name}`;
  if (ctx.runner.plan(['docker', '-H', `unix://${engine.socketPath}`, 'run', '-d', '--name', containerName, '--label', `knarr.job=${spec.name}`, ...spec.ports.flatMap((p) => ['-p', `${p.host}:${p.container}/${p.protocol}`]), spec.image, ...spec.command])) {
    return { data: { job: spec.name, host, daemonized: true } };
  }
  const store = await ctx.openStore();
  const repo = new JobRepo(store, ctx.config.fleet);
  try {
    if (!(await repo.createIntent(spec.name, { spec, host, createdAt: new Date().toISOString() }))) {
      throw new ConflictError(`a job named ${spec.name} already exists in the fleet`, { hint: `see it with: knarr job show ${spec.name}; remove it with: knarr job rm ${spec.name}` });
    }
    let id: string | null = null;
    try {
      const create = containerFor(spec, ctx.config.fleet, false, network);
      const restart = spec.restart.mode === 'no' ? { Name: 'no' } : spec.restart.mode === 'always' ? { Name: 'always' } : { Name: 'on-failure', MaximumRetryCount: spec.restart.maxRetries ?? 0 };
      const ports = portBindings(spec);
      id = await engine.create(containerName, {
        ...create,
        AttachStdout: false,
        AttachStderr: false,
        ...({ ExposedPorts: ports.ExposedPorts } as object),
        HostConfig: { ...create.HostConfig, AutoRemove: false, RestartPolicy: restart, PortBindings: ports.PortBindings },
      });
      await engine.start(id);
    } catch (e) {
      if (id) await engine.remove(id).catch(() => undefined);
      await repo.remove(spec.name);
      engineError(e, spec.image, engine.socketPath);
    }
    await repo.putActual(spec.name, { host, container: id!, state: 'running', startedAt: new Date().toISOString() });
    for (const p of spec.ports) {
      await repo.putService({ name: `${spec.name}-${p.container}`, job: spec.name, host, address: '127.0.0.1', port: p.host, protocol: p.protocol });
    }
    return {
      data: { job: spec.name, host, container: id, daemonized: true, ports: spec.ports },
      view: { kind: 'lines', lines: [`job ${spec.name} runs on ${host} (container ${id!.slice(0, 12)})`] },
    };
  } finally {
    await store.close();
  }
}
