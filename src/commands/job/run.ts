import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { NotFoundError, PrerequisiteError, UserError, ValidationError } from '../../core/errors.js';
import { parseJobSpec, type JobSpec } from '../../core/job-spec.js';
import { DockerApiError, DockerEngine, demux, dockerSocketPath, type ContainerCreate } from '../../host/docker.js';
import { optBool, optList, optString, type Context, type Handler } from '../types.js';

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
  raw.name ??= optString(opts, 'name') ?? `run-${randomBytes(4).toString('hex')}`;
  if (optString(opts, 'name') !== undefined) raw.name = optString(opts, 'name');
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

function engineError(e: unknown, image: string, socket: string): never {
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
  if (spec.daemonize) throw new UserError(`job ${spec.name} has ports, so it runs daemonized, which needs the agent (not there yet)`, { hint: 'run it in the foreground with daemonize: false' });
  if (spec.volumes.some((v) => v.kind === 'dot')) throw new UserError('dot volumes on jobs are not supported yet', { hint: 'mount the dot (knarr dot mount) and use a host path volume' });
  const interactive = optBool(opts, 'interactive');
  const network = optString(opts, 'network');
  const socket = dockerSocketPath(ctx.env);
  const engine = new DockerEngine(socket);
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
