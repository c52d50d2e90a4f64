import type { Writable } from 'node:stream';
import { ConflictError, FailureError, NotFoundError, PrerequisiteError } from '../../core/errors.js';
import { fleetViews, jobRequest, type HostRecord } from '../../core/hosts.js';
import type { JobSpec } from '../../core/job-spec.js';
import { Scheduler } from '../../core/scheduler.js';
import type { Reconciler } from '../../daemon/reconcile.js';
import { DockerEngine, dockerSocketPath } from '../../host/docker.js';
import { hostId } from '../../host/identity.js';
import { daemonContainerName } from '../../host/job-containers.js';
import { HostRepo } from '../../state/hosts.js';
import { JobRepo, serviceName, type JobActual, type JobIntent } from '../../state/jobs.js';
import type { Store } from '../../state/store.js';
import { withStore } from '../with-store.js';
import type { CommandResult, Context } from '../types.js';
import { AgentClient, relayAgentStream } from './agent-client.js';

/**
 * Jobs in a fleet: where a job runs, through which agent, and daemonized jobs' intents. Loaded only
 * when a job needs the fleet, so a foreground job on this host starts as fast as docker run.
 */

/** A foreground job's host when the fleet is consulted: the scheduler's choice, or this host's engine (with its dots' binds) when no agent is up. */
export async function foregroundTarget(
  ctx: Context,
  spec: JobSpec,
  fleetWanted: boolean,
  engine: DockerEngine,
): Promise<{ host: HostRecord } | { binds: string[]; env: Record<string, string> }> {
  return withStore(ctx, async (store) => {
    const jobs = new JobRepo(store, ctx.config.fleet);
    // A job name is unique in the fleet: a foreground job does not take a daemonized job's.
    if (await jobs.intent(spec.name))
      throw new ConflictError(`a job named ${spec.name} already exists in the fleet`, {
        hint: `pick another --name, or see it with: knarr job show ${spec.name}`,
      });
    const hosts = fleetWanted ? await new HostRepo(store, ctx.config.fleet).list() : [];
    if (!hosts.some((h) => h.up)) {
      if ((spec.host === null || spec.host === hostId()) && spec.tags.length === 0) {
        const { dotBinds } = await import('./volumes.js');
        return { binds: await dotBinds(ctx, store, spec), env: await directLinks(jobs, spec, engine) };
      }
      throw new PrerequisiteError(`no host of fleet ${ctx.config.fleet} is up to run job ${spec.name}`, {
        hint: 'start an agent (knarr daemon) on the hosts, or drop --host/--tag to run here',
      });
    }
    return { host: await placeOn(ctx, store, spec, hosts, await jobs.intents(), []) };
  });
}

/** The scheduler's host for spec among the hosts that have its dots, or a clear error naming why none fits. */
async function placeOn(
  ctx: Context,
  store: Store,
  spec: JobSpec,
  hosts: Awaited<ReturnType<HostRepo['list']>>,
  intents: JobIntent[],
  history: string[],
): Promise<HostRecord> {
  const { hostsWithDots } = await import('./volumes.js');
  const withDots = new Set(
    await hostsWithDots(
      store,
      ctx.config.fleet,
      spec,
      hosts.map((h) => h.host),
    ),
  );
  if (withDots.size === 0)
    throw new NotFoundError(`no host of fleet ${ctx.config.fleet} has every dot job ${spec.name} uses`, {
      hint: 'see where dots are with knarr dot list on each host; pull the dot to a host first',
    });
  const p = new Scheduler(
    fleetViews(
      hosts.filter((h) => withDots.has(h.host.name)),
      intents.filter((i) => i.spec.name !== spec.name),
    ),
    { strategy: ctx.config.scheduler.strategy },
  ).place(jobRequest(spec, history));
  if (!p.host) throw new ConflictError(`no host can run job ${spec.name}: ${p.reason}`, { hint: "see each host's verdict with: knarr job plan (same flags)" });
  return hosts.find((h) => h.host.name === p.host)!.host;
}

/** With no agent, a job's links are the services' addresses now (a bridged job reaches one on this host at its gateway). */
async function directLinks(jobs: JobRepo, spec: JobSpec, engine: DockerEngine): Promise<Record<string, string>> {
  if (spec.links.length === 0) return {};
  const { directLinkEnv } = await import('../../daemon/ambassador.js');
  const gateway = await engine.gateway(spec.network);
  const env: Record<string, string> = {};
  for (const name of spec.links) {
    const s = await jobs.service(name);
    if (!s) throw new NotFoundError(`job ${spec.name} links to service ${name}, which does not exist`, { hint: 'see the services with: knarr service list' });
    Object.assign(env, directLinkEnv(name, s, gateway));
  }
  return env;
}

/** A foreground job on another host: the agent relays the engine's streams and ends with the exit status. */
export async function runThroughAgent(
  ctx: Context,
  host: HostRecord,
  spec: JobSpec,
  interactive: boolean,
  stdout: Writable,
  stderr: Writable,
): Promise<number> {
  const client = await AgentClient.connect(ctx, host);
  const status = await relayAgentStream(ctx, await client.run(spec, interactive), interactive, stdout, stderr);
  const end = status as { exitCode?: number; error?: string } | null;
  if (!end) throw new FailureError(`the connection to ${host.name}'s agent ended before job ${spec.name} did`);
  if (end.error !== undefined) throw new FailureError(`job ${spec.name} on ${host.name}: ${end.error}`);
  return end.exitCode ?? 0;
}

/**
 * A daemonized job. The intent (proc) is written first and is the fleet-wide lock on the name.
 * In a fleet, the scheduler places it and the host's agent starts it and keeps it running; with no
 * agent, it runs on this host's engine at once. Either way the actual state (ps) and one service per
 * port are written after the start, and a failed start removes the intent again.
 */
export async function runDaemonized(ctx: Context, spec: JobSpec): Promise<CommandResult> {
  if (
    ctx.runner.plan([
      'docker',
      '-H',
      `unix://${dockerSocketPath(ctx.env)}`,
      'run',
      '-d',
      '--name',
      daemonContainerName(spec.name),
      '--label',
      `knarr.job=${spec.name}`,
      ...spec.ports.flatMap((p) => ['-p', `${p.host}:${p.container}/${p.protocol}`]),
      spec.image,
      ...spec.command,
    ])
  ) {
    return { data: { name: spec.name, daemonized: true } };
  }
  return withStore(ctx, async (store) => {
    const { host, actual } = await startDaemonized(ctx, store, spec);
    const repo = new JobRepo(store, ctx.config.fleet);
    // A port the engine picked (host port 0) is told as its service records it.
    const picked = spec.ports.some((p) => p.host === 0) ? new Map((await repo.services()).map((s) => [s.name, s.port])) : new Map<string, number>();
    const ports = spec.ports.map((p) =>
      p.host === 0 && picked.has(serviceName(spec.name, p)) ? { ...p, published: picked.get(serviceName(spec.name, p))! } : p,
    );
    const on = ports.flatMap((p) => ('published' in p ? [`${p.container}/${p.protocol} on host port ${p.published}`] : []));
    return {
      data: { name: spec.name, host, container: actual.container, state: actual.state, daemonized: true, ports },
      view: { kind: 'lines', lines: [`job ${spec.name} runs on ${host} (container ${actual.container.slice(0, 12)})${on.length ? `; ${on.join(', ')}` : ''}`] },
    };
  });
}

/** Places and starts a daemonized job (its intent written first, removed again if it does not start); its host and actual state. */
export async function startDaemonized(ctx: Context, store: Store, spec: JobSpec): Promise<{ host: string; actual: JobActual }> {
  const repo = new JobRepo(store, ctx.config.fleet);
  const hosts = await new HostRepo(store, ctx.config.fleet).list();
  const managed = hosts.some((h) => h.up);
  let target: HostRecord | null = null;
  if (managed) target = await placeOn(ctx, store, spec, hosts, await repo.intents(), await repo.pastHosts(spec.name));
  else if ((spec.host !== null && spec.host !== hostId()) || spec.tags.length > 0)
    throw new PrerequisiteError(`no host of fleet ${ctx.config.fleet} is up to run job ${spec.name}`, {
      hint: 'start an agent (knarr daemon) on the hosts, or drop --host/--tag to run here',
    });
  const host = target?.name ?? hostId();
  if (
    !(await repo.createIntent(spec.name, {
      spec,
      host,
      desired: 'running',
      generation: 0,
      managed,
      ...(managed ? {} : { engine: dockerSocketPath(ctx.env) }),
      createdAt: new Date().toISOString(),
    }))
  ) {
    throw new ConflictError(`a job named ${spec.name} already exists in the fleet`, {
      hint: `see it with: knarr job show ${spec.name}; remove it with: knarr job rm ${spec.name}`,
    });
  }
  await repo.addEvent(spec.name, { host, event: 'placed' });
  let actual: JobActual | null;
  if (target) {
    try {
      await (await AgentClient.connect(ctx, target)).converge();
    } catch (e) {
      // The job cannot be said to have started: its intent goes, as for any failed start.
      await repo.remove(spec.name);
      throw e;
    }
    actual = await repo.actual(spec.name);
  } else {
    actual = await (await inlineReconciler(ctx, store, repo)).one(spec.name);
  }
  if (!actual || actual.state === 'failed') {
    await repo.remove(spec.name);
    if (target) await (await AgentClient.connect(ctx, target)).converge().catch(() => undefined);
    const reason = actual?.error ?? 'it did not start';
    if (/no such image/i.test(reason))
      throw new NotFoundError(`image ${spec.image} is not on ${host}: ${reason}`, { hint: 'load it with docker pull, docker load or docker import' });
    throw new FailureError(`job ${spec.name} did not start on ${host}: ${reason}`);
  }
  return { host, actual };
}

/** The agent's reconciler run by the CLI for this host's engine, when no agent serves the fleet. */
export async function inlineReconciler(ctx: Context, store: Store, repo: JobRepo): Promise<Reconciler> {
  const { Reconciler } = await import('../../daemon/reconcile.js');
  const engine = new DockerEngine(dockerSocketPath(ctx.env), ctx.runner.dryRun);
  const { dotBinds } = await import('./volumes.js');
  return new Reconciler(
    { host: hostId(), fleet: ctx.config.fleet, serviceAddress: '127.0.0.1', prune: false, dotBinds: (spec) => dotBinds(ctx, store, spec) },
    engine,
    repo,
    new HostRepo(store, ctx.config.fleet),
    { direct: true },
    (line) => ctx.events.step(line),
  );
}
