import { ConflictError, EngineError, FailureError, NotFoundError, ValidationError } from '../../core/errors.js';
import type { HostRecord } from '../../core/hosts.js';
import { parseJobSpec, type JobSpec } from '../../core/job-spec.js';
import { localAgent } from '../../daemon/pidfile.js';
import { DockerEngine, demux, dockerSocketPath } from '../../host/docker.js';
import { foregroundContainer, LABEL_JOB, startAttached, type AttachedRun } from '../../host/job-containers.js';
import type { CommandResult, Context } from '../types.js';
import { stopReading } from '../../core/streams.js';

/** Hex digits for a name's unique suffix; Math.random spares loading node:crypto on the path of every foreground job. */
const randomHex = (digits: number) => Array.from({ length: digits }, () => Math.floor(Math.random() * 16).toString(16)).join('');

async function readSpecFile(ctx: Context, file: string): Promise<Record<string, unknown>> {
  const { loadYamlParser, parseYamlText, readInputFile } = await import('../yaml-file.js');
  const { text, path } = await readInputFile(ctx, '--file', file);
  return parseYamlText(await loadYamlParser(), '--file', path, text, ' to be a job spec') as Record<string, unknown>;
}

/** The flags of job run and job plan that make the spec; each one given wins over the spec file's field. */
export interface JobSpecFlags {
  file?: string | undefined;
  name?: string | undefined;
  env?: string[];
  network?: string | undefined;
  host?: string | undefined;
  tags?: string[];
  ports?: string[];
  volumes?: string[];
  links?: string[];
  restart?: string | undefined;
  cpu?: string | undefined;
  memory?: string | undefined;
  fixed?: boolean;
  static?: boolean;
  detach?: boolean;
}

/** A list from the spec file with the flag's values after it. */
const appended = (fromFile: unknown, flags: readonly string[]) => [...(Array.isArray(fromFile) ? fromFile : []), ...flags];

/** The spec from -f and the flags (flags win), validated before anything runs. */
export async function specFrom(
  ctx: Context,
  image: string | undefined,
  command: readonly string[],
  flags: JobSpecFlags,
): Promise<{ spec: JobSpec; source: string }> {
  const raw: Record<string, unknown> = flags.file ? await readSpecFile(ctx, flags.file) : {};
  if (image !== undefined) raw.image = image;
  if (command.length > 0) raw.command = [...command];
  raw.name = flags.name ?? raw.name ?? `run-${randomHex(8)}`;
  if (flags.network !== undefined) raw.network = flags.network;
  if (flags.host !== undefined) raw.host = flags.host;
  if (flags.tags?.length) raw.tags = appended(raw.tags, flags.tags);
  if (flags.ports?.length) raw.ports = appended(raw.ports, flags.ports);
  if (flags.volumes?.length) raw.volumes = appended(raw.volumes, flags.volumes);
  if (flags.links?.length) raw.links = appended(raw.links, flags.links);
  if (flags.restart !== undefined) raw.restart = flags.restart;
  if (flags.detach) raw.daemonize = true;
  if (flags.cpu !== undefined) raw.cpu = flags.cpu;
  if (flags.memory !== undefined) raw.memory = flags.memory;
  if (flags.fixed) raw.fixed = true;
  if (flags.static) raw.static = true;
  if (flags.env?.length)
    raw.env = [...(Array.isArray(raw.env) ? raw.env : Object.entries((raw.env as Record<string, string>) ?? {}).map(([k, v]) => `${k}=${v}`)), ...flags.env];
  const source = flags.file ?? 'flags';
  return { spec: parseJobSpec(raw, source), source };
}

function engineError(e: unknown, image: string): never {
  if (e instanceof EngineError && e.status === 404 && /image/i.test(e.message)) {
    throw new NotFoundError(`image ${image} is not on this host: ${e.message}`, { hint: 'load it with docker pull, docker load or docker import' });
  }
  if (e instanceof EngineError) throw new FailureError(`docker refused the job: ${e.message}`, { hint: e.hint, cause: e });
  throw e;
}

/**
 * Where a foreground job runs. The embedded default stays fast: the fleet is consulted only when it is
 * asked for (--host, --tag, --etcd), an agent serves this host, or the job uses dots.
 */
async function foregroundTarget(
  ctx: Context,
  spec: JobSpec,
  engine: DockerEngine,
): Promise<{ host: HostRecord } | { binds: string[]; env: Record<string, string> }> {
  const fleetWanted =
    spec.host !== null || spec.tags.length > 0 || ctx.config.etcd.length > 0 || (await localAgent(`${ctx.config.stateDir}/agent.json`)) !== null;
  if (!fleetWanted && !spec.volumes.some((v) => v.kind === 'dot') && spec.links.length === 0) return { binds: [], env: {} };
  return (await import('./fleet.js')).foregroundTarget(ctx, spec, fleetWanted, engine);
}

/**
 * `knarr job run [-i] IMAGE [-- CMD...]`. A foreground job streams its output as it comes; -i pipes
 * stdin in, binary-safe, with backpressure and end-of-file passed through; knarr exits with the job's
 * exit code; the container is removed. With no agent it runs on this host's engine (the embedded
 * default); in a fleet it runs where the scheduler places it, through that host's agent.
 */
export async function jobRun(
  image: string | undefined,
  command: readonly string[],
  opts: JobSpecFlags & { interactive: boolean },
  ctx: Context,
): Promise<CommandResult> {
  const { spec } = await specFrom(ctx, image, command, opts);
  const interactive = opts.interactive;
  if (spec.daemonize) {
    if (interactive)
      throw new ValidationError('--interactive', `job ${spec.name} runs daemonized (it has ports or daemonize: true); -i is for foreground jobs`);
    return (await import('./fleet.js')).runDaemonized(ctx, spec);
  }
  const socket = dockerSocketPath(ctx.env);
  const containerName = `knarr-${spec.name}-${randomHex(6)}`;
  if (
    ctx.runner.plan([
      'docker',
      '-H',
      `unix://${socket}`,
      'run',
      '--rm',
      ...(interactive ? ['-i'] : []),
      '--name',
      containerName,
      '--label',
      `knarr.job=${spec.name}`,
      spec.image,
      ...spec.command,
    ])
  ) {
    return { data: { name: spec.name, container: containerName, create: foregroundContainer(spec, ctx.config.fleet, interactive) } };
  }
  const engine = new DockerEngine(socket, ctx.runner.dryRun);
  const target = await foregroundTarget(ctx, spec, engine);
  if ('host' in target) {
    const { runThroughAgent } = await import('./fleet.js');
    return {
      data: { name: spec.name, host: target.host.name },
      stream: (stdout, stderr) => runThroughAgent(ctx, target.host, spec, interactive, stdout, stderr),
    };
  }
  // A name given by the operator is unique: no other job of that name on this engine (a random one cannot clash).
  if (opts.name !== undefined || opts.file !== undefined) {
    const same = await engine.list(true, [`${LABEL_JOB}=${spec.name}`]).catch((e: unknown) => engineError(e, spec.image));
    if (same.length > 0)
      throw new ConflictError(
        `a job named ${spec.name} already runs on this host (container ${same[0]!.Names[0]?.replace(/^\//, '') ?? same[0]!.Id.slice(0, 12)})`,
        { hint: `pick another --name, or see it with: knarr job show ${spec.name}` },
      );
  }
  return {
    data: { name: spec.name },
    stream: async (stdout, stderr) => {
      let run: AttachedRun;
      try {
        run = await startAttached(
          engine,
          containerName,
          foregroundContainer(spec, ctx.config.fleet, interactive, { binds: target.binds, env: target.env }),
          interactive,
        );
      } catch (e) {
        engineError(e, spec.image);
      }
      const stop = () => void engine.remove(run.id).catch(() => undefined);
      let removed = false;
      ctx.signal.addEventListener('abort', stop, { once: true });
      try {
        // A job that exits before its stdin ends closes the connection: writing more is no error.
        run.socket.on('error', () => undefined);
        run.socket.once('close', () => ctx.stdin.unpipe(run.socket));
        const output = demux(run.socket, stdout, stderr).catch(() => undefined);
        // stdin's end closes the job's stdin (a half-close of the attach connection), so `cat` and `wc` finish.
        if (interactive) ctx.stdin.pipe(run.socket);
        const [code] = await Promise.all([run.exited, output]);
        removed = true;
        // The job is over: whatever stdin still holds is not read (`yes | knarr job run -i ... head -1` ends),
        // and the attach connection goes with the write still waiting on it (the engine stops reading, but keeps it open).
        if (interactive) stopReading(ctx.stdin);
        run.socket.destroy();
        return code;
      } finally {
        ctx.signal.removeEventListener('abort', stop);
        if (!removed) await engine.remove(run.id).catch(() => undefined);
      }
    },
  };
}
