import type { Socket } from 'node:net';
import type { JobSpec } from '../core/job-spec.js';
import type { DockerEngine, ContainerCreate, ContainerInspect } from './docker.js';

/** Labels every knarr container carries; `docker ps --filter label=knarr.job` finds them all. */
export const LABEL_JOB = 'knarr.job';
export const LABEL_FLEET = 'knarr.fleet';
/** foreground or daemon: an agent leaves foreground jobs alone (they belong to the CLI that runs them). */
export const LABEL_MODE = 'knarr.mode';
/** The job's generation: `knarr job restart` bumps it and the container is made anew. */
export const LABEL_GENERATION = 'knarr.generation';

/** A daemonized job's container name: one per job and host. */
export const daemonContainerName = (job: string) => `knarr-${job}`;

/** What the host adds to a job's container: variables (links, the host's name) and binds (dot volumes). */
export interface HostAdditions {
  env?: Record<string, string>;
  binds?: string[];
}

/** What the engine is asked to create for a foreground job. */
export function foregroundContainer(spec: JobSpec, fleet: string, interactive: boolean, add: HostAdditions = {}): ContainerCreate {
  return {
    Image: spec.image,
    Cmd: spec.command.length > 0 ? spec.command : undefined,
    Env: Object.entries({ ...spec.env, ...add.env }).map(([k, v]) => `${k}=${v}`),
    Labels: { [LABEL_JOB]: spec.name, [LABEL_FLEET]: fleet, [LABEL_MODE]: 'foreground' },
    OpenStdin: interactive,
    StdinOnce: interactive,
    AttachStdin: interactive,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    HostConfig: {
      // The engine removes the container itself, as `docker run --rm` does: one call less per job.
      AutoRemove: true,
      ...(spec.network ? { NetworkMode: spec.network } : {}),
      ...(spec.cpu ? { NanoCpus: spec.cpu * 1_000_000 } : {}),
      ...(spec.memory ? { Memory: spec.memory } : {}),
      Binds: [...spec.volumes.flatMap((v) => (v.kind === 'host' ? [`${v.source}:${v.target}${v.readOnly ? ':ro' : ''}`] : [])), ...(add.binds ?? [])],
    },
  };
}

/** A daemonized job's container: restart policy, published ports, and its generation. */
export function daemonContainer(spec: JobSpec, fleet: string, generation: number, add: HostAdditions = {}): ContainerCreate {
  const base = foregroundContainer(spec, fleet, false, add);
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostPort: string }[]> = {};
  for (const p of spec.ports) {
    exposed[`${p.container}/${p.protocol}`] = {};
    // An empty host port lets the engine pick a free one (docker run -p 0:80).
    (bindings[`${p.container}/${p.protocol}`] ??= []).push({ HostPort: p.host === 0 ? '' : String(p.host) });
  }
  const restart = spec.restart.mode === 'on-failure' ? { Name: 'on-failure', MaximumRetryCount: spec.restart.maxRetries ?? 0 } : { Name: spec.restart.mode };
  return {
    ...base,
    Labels: { ...base.Labels, [LABEL_MODE]: 'daemon', [LABEL_GENERATION]: String(generation) },
    AttachStdout: false,
    AttachStderr: false,
    ...({ ExposedPorts: exposed } as object),
    HostConfig: {
      ...base.HostConfig,
      AutoRemove: false,
      RestartPolicy: restart,
      // Host networking publishes nothing: the job's ports are the host's.
      ...(spec.network === 'host' ? {} : { PortBindings: bindings }),
    },
  };
}

/** The host port the engine published each container port on (`80/tcp` → 32768), as an inspect of the running container tells. */
export function publishedPorts(info: ContainerInspect): Map<string, number> {
  const out = new Map<string, number>();
  for (const [inner, bound] of Object.entries(info.NetworkSettings?.Ports ?? {})) {
    // The IPv4 binding first: a service is reached at the host's IPv4 address.
    const b = (bound ?? []).find((x) => !x.HostIp.includes(':')) ?? bound?.[0];
    const port = Number(b?.HostPort);
    if (Number.isInteger(port) && port > 0) out.set(inner, port);
  }
  return out;
}

export interface AttachedRun {
  id: string;
  /** The engine's multiplexed output; stdin is written to it (end() closes the job's stdin). */
  socket: Socket;
  /** The exit code, once the engine removed the container. */
  exited: Promise<number>;
}

/**
 * Creates, attaches and starts a foreground container, in the order that loses no output: attach
 * before start, and wait (for removal) before start, or an auto-removed container could be gone first.
 */
export async function startAttached(engine: DockerEngine, name: string, create: ContainerCreate, interactive: boolean): Promise<AttachedRun> {
  const id = await engine.create(name, create);
  let socket: Socket | undefined;
  const early = () => undefined;
  try {
    socket = await engine.attach(id, interactive);
    // A reset on the socket (before the caller listens, or after) must not be an uncaught 'error': its 'close' tells.
    socket.on('error', early);
    const exited = engine.wait(id, 'removed');
    exited.catch(() => undefined);
    await engine.start(id);
    return { id, socket, exited };
  } catch (e) {
    socket?.destroy();
    await engine.remove(id).catch(() => undefined);
    throw e;
  }
}

/** Starts a daemonized container (made anew if one of that name is left over); returns its id. */
export async function startDaemon(engine: DockerEngine, spec: JobSpec, create: ContainerCreate): Promise<string> {
  const name = daemonContainerName(spec.name);
  await engine.remove(name).catch(() => undefined);
  const id = await engine.create(name, create);
  try {
    await engine.start(id);
  } catch (e) {
    await engine.remove(id).catch(() => undefined);
    throw e;
  }
  return id;
}
