import { ConflictError, NotFoundError, PrerequisiteError, ValidationError } from '../../core/errors.js';
import type { JobSpec } from '../../core/job-spec.js';
import { validateName } from '../../core/names.js';
import { parseLogOptions } from '../../core/logs.js';
import { formatSize } from '../../core/size.js';
import { formatArgv } from '../../host/runner.js';
import { DockerEngine, demux, dockerSocketPath, type ContainerSummary } from '../../host/docker.js';
import { hostId } from '../../host/identity.js';
import { daemonContainerName, LABEL_FLEET, LABEL_JOB, LABEL_MODE } from '../../host/job-containers.js';
import { HostRepo } from '../../state/hosts.js';
import { desiredState, generationOf, JobRepo, serviceName, type JobActual, type JobIntent } from '../../state/jobs.js';
import type { Store } from '../../state/store.js';
import { timeCell, type Cell, type CommandResult, type Context, type View } from '../types.js';
import { withStore } from '../with-store.js';
import { AgentClient } from './agent-client.js';
import { inlineReconciler } from './fleet.js';

interface Jobs {
  store: Store;
  repo: JobRepo;
  hosts: HostRepo;
}

const withJobs = <T>(ctx: Context, fn: (j: Jobs) => Promise<T>): Promise<T> =>
  withStore(ctx, (store) => fn({ store, repo: new JobRepo(store, ctx.config.fleet), hosts: new HostRepo(store, ctx.config.fleet) }));

/** A job name from the command line, checked before the store is reached (or the managed etcd started). */
const jobName = (text: string) => validateName('JOB', text, 63);

async function requireJob(repo: JobRepo, name: string): Promise<{ intent: JobIntent; actual: JobActual | null }> {
  const intent = await repo.intent(name);
  if (!intent) throw new NotFoundError(`no daemonized job named ${name}`, { hint: 'list them with: knarr job list' });
  return { intent, actual: await repo.actual(name) };
}

/** Run with no agent, a job lives on the engine of the host that ran it: another host's engine would start a second copy. */
const elsewhere = (intent: JobIntent) => !intent.managed && intent.host !== null && intent.host !== hostId();

function requireHere(intent: JobIntent): void {
  if (elsewhere(intent)) {
    throw new PrerequisiteError(`job ${intent.spec.name} was run on ${intent.host} with no agent: only that host's engine has it`, {
      hint: `run the command on ${intent.host}, or start agents (knarr daemon) so the fleet manages it`,
    });
  }
}

/**
 * After the CLI changed an intent: the host's agent converges (a host that is down converges when its
 * agent returns); with no agent, the CLI converges this host's engine itself. Says which happened.
 */
async function converge(ctx: Context, j: Jobs, intent: JobIntent): Promise<'done' | 'host-down'> {
  if (!intent.managed) {
    requireHere(intent);
    await (await inlineReconciler(ctx, j.store, j.repo)).one(intent.spec.name);
    return 'done';
  }
  const host = intent.host === null ? null : await j.hosts.get(intent.host);
  if (!host?.up) return 'host-down';
  await (await AgentClient.connect(ctx, host.host)).converge();
  return 'done';
}

/** The state a job shows: the agent's record, or pending while its host is down or none fits. */
function shownState(intent: JobIntent, actual: JobActual | null, up: Set<string>): string {
  if (intent.managed && (intent.host === null || !up.has(intent.host))) return intent.host === null ? 'pending' : `pending (${intent.host} is down)`;
  if (desiredState(intent) === 'stopped') return 'stopped';
  // Until the new host's agent reports, the last record is another host's.
  if (!actual || actual.host !== intent.host) return 'pending';
  return actual.state;
}

type HostList = Awaited<ReturnType<HostRepo['list']>>;

/** The engine of a job's host when that host is this machine, so its containers can be asked directly; else null. */
function engineOnThisMachine(ctx: Context, intent: JobIntent, hosts: HostList): DockerEngine | null {
  if (intent.host === null) return null;
  if (!intent.managed) return intent.host === hostId() ? new DockerEngine(intent.engine ?? dockerSocketPath(ctx.env), ctx.runner.dryRun) : null;
  const record = hosts.find((h) => h.host.name === intent.host)?.host;
  if (!record || (record.dotHost ?? record.name) !== hostId() || !record.dockerEndpoint.startsWith('unix://')) return null;
  return new DockerEngine(record.dockerEndpoint.slice('unix://'.length), ctx.runner.dryRun);
}

/** A recorded container's state as its engine tells it now: missing when the engine no longer has it. */
const engineState = (c: ContainerSummary | undefined): string => (!c || c.State === 'removing' ? 'missing' : c.State === 'dead' ? 'exited' : c.State);

/**
 * Each job's state as the engine of its host tells it, for the hosts on this machine: a container
 * removed or stopped behind knarr's back shows so, whatever the record says. Other hosts' records stand.
 */
async function observed(
  ctx: Context,
  rows: { intent: JobIntent; actual: JobActual | null }[],
  hosts: HostList,
): Promise<Map<string, { state: string; container: string | null }>> {
  const up = new Set(hosts.filter((h) => h.up).map((h) => h.host.name));
  const lists = new Map<string, Promise<ContainerSummary[] | null>>();
  const seen = new Map<string, { state: string; container: string | null }>();
  await Promise.all(
    rows.map(async ({ intent, actual }) => {
      const name = intent.spec.name;
      const state = shownState(intent, actual, up);
      seen.set(name, { state, container: actual?.container || null });
      if (!actual?.container || !['running', 'restarting', 'exited'].includes(state)) return;
      const engine = engineOnThisMachine(ctx, intent, hosts);
      if (!engine) return;
      // One listing per engine; an engine that does not answer leaves the records as they are.
      if (!lists.has(engine.socketPath))
        lists.set(
          engine.socketPath,
          engine.list(true, [LABEL_JOB]).catch(() => null),
        );
      const containers = await lists.get(engine.socketPath)!;
      if (!containers) return;
      const real = engineState(containers.find((c) => c.Id === actual.container));
      seen.set(name, { state: real, container: real === 'missing' ? null : actual.container });
    }),
  );
  return seen;
}

/** `knarr job list`: daemonized jobs, intent next to actual state. */
export const jobList = (ctx: Context): Promise<CommandResult> =>
  withJobs(ctx, async ({ repo, hosts }) => {
    const [intents, actuals, hostList] = await Promise.all([repo.intents(), repo.actuals(), hosts.list()]);
    const picked = await pickedPorts(repo, intents);
    const rows = intents
      .map((intent) => ({ intent, actual: actuals.get(intent.spec.name) ?? null }))
      .sort((a, b) => a.intent.spec.name.localeCompare(b.intent.spec.name));
    const now = await observed(ctx, rows, hostList);
    const at = (r: (typeof rows)[number]) => now.get(r.intent.spec.name)!;
    return {
      data: rows.map((r) => jobSummary(r.intent, r.actual, at(r), picked)),
      view: {
        kind: 'table',
        columns: ['JOB', 'HOST', 'STATE', 'IMAGE', 'PORTS', 'CONTAINER', 'RESTARTS', 'STARTED', 'CREATED'],
        wide: ['CONTAINER', 'RESTARTS', 'STARTED', 'CREATED'],
        rows: rows.map((r) => [
          r.intent.spec.name,
          r.intent.host ?? '-',
          at(r).state,
          r.intent.spec.image,
          r.intent.spec.ports.map((p) => portText(r.intent.spec.name, p, picked)).join(',') || '-',
          at(r).container?.slice(0, 12) ?? '-',
          String(r.actual?.restarts ?? 0),
          timeCell(r.actual?.startedAt),
          timeCell(r.intent.createdAt),
        ]),
      },
    };
  });

/** `knarr job show JOB`: the spec, where it runs, its state. */
export async function jobShow(job: string, ctx: Context): Promise<CommandResult> {
  const name = jobName(job);
  return withJobs(ctx, async ({ repo, hosts }) => {
    const { intent, actual } = await requireJob(repo, name);
    const seen = (await observed(ctx, [{ intent, actual }], await hosts.list())).get(intent.spec.name)!;
    const picked = await pickedPorts(repo, [intent]);
    return { data: { ...jobSummary(intent, actual, seen, picked), ...intent, actual }, view: jobView(intent, actual, seen.state, picked) };
  });
}

/** The fields job list gives for each job; job show gives them too, then the whole record. */
const jobSummary = (intent: JobIntent, actual: JobActual | null, seen: { state: string; container: string | null }, picked: ReadonlyMap<string, number>) => ({
  name: intent.spec.name,
  host: intent.host,
  image: intent.spec.image,
  state: seen.state,
  container: seen.container,
  restarts: actual?.restarts ?? 0,
  // A port the engine picked (host 0) with the host port its service records.
  ports: intent.spec.ports.map((p) => {
    const at = p.host === 0 ? picked.get(serviceName(intent.spec.name, p)) : undefined;
    return at === undefined ? p : { ...p, published: at };
  }),
  createdAt: intent.createdAt,
});

/** The services' ports of the jobs that publish a port the engine picks (host port 0), by service name; no read when none does. */
async function pickedPorts(repo: JobRepo, intents: JobIntent[]): Promise<Map<string, number>> {
  if (!intents.some((i) => i.spec.ports.some((p) => p.host === 0))) return new Map();
  return new Map((await repo.services()).map((s) => [s.name, s.port]));
}

/** HOST:CONTAINER/PROTOCOL; a port the engine picked reads as docker shows it, 32768->80/tcp (0:80/tcp until its service is written). */
const portText = (job: string, p: JobSpec['ports'][number], picked: ReadonlyMap<string, number>) => {
  const at = p.host === 0 ? picked.get(serviceName(job, p)) : undefined;
  return at === undefined ? `${p.host}:${p.container}/${p.protocol}` : `${at}->${p.container}/${p.protocol}`;
};
const volumeText = (v: JobSpec['volumes'][number]) =>
  `${v.kind === 'dot' ? `dot:${v.dot}${v.subdot ? `.${v.subdot}` : ''}` : v.source}:${v.target}${v.readOnly ? ':ro' : ''}`;

/** `job show` for a reader: the spec's fields that are set, then where and how it runs. */
function jobView(intent: JobIntent, actual: JobActual | null, state: string, picked: ReadonlyMap<string, number>): View {
  const s = intent.spec;
  const list = (xs: string[]) => xs.join(', ') || '-';
  const restart = s.restart.mode === 'on-failure' && s.restart.maxRetries !== null ? `on-failure:${s.restart.maxRetries}` : s.restart.mode;
  const fields: [string, Cell][] = [
    ['job', s.name],
    ['state', state],
    ['host', intent.host ?? '-'],
    ['image', s.image],
    ['command', s.command.length ? formatArgv(s.command) : "(the image's)"],
    ['ports', list(s.ports.map((p) => portText(s.name, p, picked)))],
    ['volumes', list(s.volumes.map(volumeText))],
    ['env', list(Object.keys(s.env).sort())],
    ['links', list(s.links)],
    ['tags', list(s.tags)],
    ['pinned', s.host ?? '-'],
    ['network', s.network ?? "(the engine's default)"],
    ['cpu', s.cpu ? `${s.cpu}m` : '-'],
    ['memory', s.memory ? formatSize(s.memory) : '-'],
    ['restart', restart],
    ['flags', [s.daemonize && 'daemonize', s.fixed && 'fixed', s.static && 'static'].filter(Boolean).join(', ') || '-'],
    ['desired', desiredState(intent)],
    ['generation', String(generationOf(intent))],
    ['created', timeCell(intent.createdAt)],
  ];
  if (actual) {
    const container = actual.container ? `${actual.container.slice(0, 12)} on ${actual.host}${state === 'missing' ? ' (gone from its engine)' : ''}` : '-';
    fields.push(['container', container], ['started', timeCell(actual.startedAt)], ['restarts', String(actual.restarts ?? 0)]);
    if (actual.exitCode !== undefined) fields.push(['exit code', String(actual.exitCode)]);
    if (actual.error) fields.push(['error', actual.error]);
  }
  return { kind: 'fields', fields };
}

/** Under --dry-run: the job's record change as a note, and the engine command its host would run (a host's agent runs it there). */
function planJob(ctx: Context, intent: JobIntent, record: string, docker: string[]): void {
  ctx.runner.note(record);
  if (intent.managed) ctx.runner.note(`then the agent of ${intent.host ?? 'its host'} runs: docker ${formatArgv(docker)}`);
  else ctx.runner.plan(['docker', '-H', `unix://${dockerSocketPath(ctx.env)}`, ...docker]);
}

/** Runs work on the intent of job (its name checked first); refuses one that only another host's engine has. */
function withJobHere<T>(ctx: Context, job: string, work: (j: Jobs, intent: JobIntent, name: string) => Promise<T>): Promise<T> {
  const checked = jobName(job);
  return withJobs(ctx, async (j) => {
    const { intent } = await requireJob(j.repo, checked);
    requireHere(intent);
    return work(j, intent, intent.spec.name);
  });
}

/** A job an environment made is changed through the environment: its hooks run, its balancer forgets it. */
async function refuseMember(j: Jobs, ctx: Context, name: string, verb: string): Promise<void> {
  const { EnvRepo } = await import('../../state/envs.js');
  for (const env of await new EnvRepo(j.store, ctx.config.fleet).list()) {
    const m = env.members.find((x) => x.name === name && x.kind === 'job' && x.state !== 'adding');
    if (m)
      throw new ConflictError(`job ${name} is a member of environment ${env.name}: ${verb} it there, so its hooks run and its balancer forgets it`, {
        hint: verb === 'remove' ? `knarr env remove ${env.name} ${name}` : `knarr env stop ${env.name}`,
      });
  }
}

/** `knarr job stop JOB`: stops its container; the intent stays (stopped), so nothing restarts it. */
export async function jobStop(job: string, ctx: Context): Promise<CommandResult> {
  return withJobHere(ctx, job, async (j, intent, name) => {
    await refuseMember(j, ctx, name, 'stop');
    if (ctx.runner.dryRun) {
      planJob(ctx, intent, `mark job ${name} stopped in etcd`, ['stop', daemonContainerName(name)]);
      return { data: { name, state: 'stopped', planned: true } };
    }
    const next = await updateUntilWritten(j.repo, name, (i) => ({ ...i, desired: 'stopped' }));
    const outcome = await converge(ctx, j, next);
    const lines = outcome === 'done' ? [`job ${name} stopped`] : [`job ${name} will stop when its host ${intent.host} is back (it is down)`];
    return { data: { name, state: outcome === 'done' ? 'stopped' : 'stopping' }, view: { kind: 'lines', lines } };
  });
}

/** `knarr job rm JOB`: removes its container, intent, actual state and services (its history stays). */
export async function jobRm(job: string, ctx: Context): Promise<CommandResult> {
  return withJobHere(ctx, job, async (j, intent, name) => {
    await refuseMember(j, ctx, name, 'remove');
    if (ctx.runner.dryRun) {
      planJob(ctx, intent, `remove job ${name}'s intent, state and services from etcd (its history stays)`, ['rm', '-f', daemonContainerName(name)]);
      return { data: { name, removed: false, planned: true } };
    }
    const later = await removeJobNow(ctx, j, intent);
    return { data: { name, removed: true, containerRemoved: !later }, view: { kind: 'lines', lines: [`job ${name} removed${later}`] } };
  });
}

/** Removes a job's records, then its container (by its host's agent, or this machine's engine); says what is left for later, or ''. */
async function removeJobNow(ctx: Context, j: Jobs, intent: JobIntent): Promise<string> {
  const name = intent.spec.name;
  await j.repo.remove(name);
  await j.repo.addEvent(name, { host: intent.host ?? '-', event: 'removed' });
  // With the intent gone, the host's agent (or the CLI, with none) removes the container.
  let later = (await converge(ctx, j, intent)) === 'host-down' ? ` (its container goes when ${intent.host} is back)` : '';
  // Its host's agent is down, but its engine is this machine's: the container goes now.
  const engine = later ? engineOnThisMachine(ctx, intent, await j.hosts.list()) : null;
  if (engine) {
    try {
      const labels = [`${LABEL_JOB}=${name}`, `${LABEL_FLEET}=${ctx.config.fleet}`, `${LABEL_MODE}=daemon`];
      for (const c of await engine.list(true, labels)) await engine.remove(c.Id);
      later = '';
    } catch (e) {
      later = ` (its container could not be removed now: ${(e as Error).message}; it goes when ${intent.host}'s agent is back)`;
    }
  }
  return later;
}

/** Removes job name if it exists (an environment's member): what is left for later, or ''. */
export async function removeJob(ctx: Context, store: Store, name: string): Promise<string> {
  const j = { store, repo: new JobRepo(store, ctx.config.fleet), hosts: new HostRepo(store, ctx.config.fleet) };
  const intent = await j.repo.intent(name);
  return intent ? removeJobNow(ctx, j, intent) : '';
}

/** Sets a job's desired state (an environment's stop and start) and has its host converge: host-down when that waits for its agent. */
export async function setJobDesired(ctx: Context, store: Store, name: string, desired: 'running' | 'stopped'): Promise<'done' | 'host-down'> {
  const j = { store, repo: new JobRepo(store, ctx.config.fleet), hosts: new HostRepo(store, ctx.config.fleet) };
  // A stopped job starts as job restart starts one: its container made anew (a new generation).
  const next = await updateUntilWritten(j.repo, name, (i) =>
    desiredState(i) === desired ? i : desired === 'running' ? { ...i, desired, generation: generationOf(i) + 1 } : { ...i, desired },
  );
  return converge(ctx, j, next);
}

/**
 * `knarr job restart JOB... | --all`: each job's container is made anew (a new generation), stopped
 * jobs start again; --all skips static jobs, as the seed's code pushes do.
 */
export async function jobRestart(jobs: readonly string[], opts: { all: boolean }, ctx: Context): Promise<CommandResult> {
  const names = jobs.map(jobName);
  const all = opts.all;
  if (all === names.length > 0) throw new ValidationError('JOB', all ? 'give job names or --all, not both' : 'name the jobs to restart, or give --all');
  return withJobs(ctx, async (j) => {
    const intents = all
      ? (await j.repo.intents()).filter((i) => !i.spec.static)
      : await Promise.all(names.map(async (n) => (await requireJob(j.repo, n)).intent));
    if (!all) intents.forEach(requireHere);
    const results: { name: string; host: string | null; outcome: string }[] = [];
    for (const intent of intents) {
      if (elsewhere(intent)) {
        results.push({ name: intent.spec.name, host: intent.host, outcome: `not restarted: run with no agent, restart it on ${intent.host}` });
        continue;
      }
      if (ctx.runner.dryRun) {
        planJob(ctx, intent, `raise job ${intent.spec.name}'s generation to ${generationOf(intent) + 1} in etcd: a new container replaces the old`, [
          'rm',
          '-f',
          daemonContainerName(intent.spec.name),
        ]);
        results.push({ name: intent.spec.name, host: intent.host, outcome: 'planned' });
        continue;
      }
      const next = await updateUntilWritten(j.repo, intent.spec.name, (i) => ({ ...i, desired: 'running', generation: generationOf(i) + 1 }));
      results.push({
        name: intent.spec.name,
        host: intent.host,
        outcome: (await converge(ctx, j, next)) === 'done' ? 'restarted' : 'restarts when its host is back',
      });
    }
    return { data: results, view: { kind: 'table', columns: ['JOB', 'HOST', 'OUTCOME'], rows: results.map((r) => [r.name, r.host ?? '-', r.outcome]) } };
  });
}

/** Applies change to the intent, re-reading it when an agent changed it in between. */
async function updateUntilWritten(repo: JobRepo, name: string, change: (i: JobIntent) => JobIntent): Promise<JobIntent> {
  for (;;) {
    const next = await repo.updateIntent(name, change);
    if (next) return next;
    if (!(await repo.intent(name))) throw new NotFoundError(`job ${name} was removed meanwhile`);
  }
}

/** `knarr job history JOB`: where it was placed, started, moved, exited; kept after rm. */
export async function jobHistory(job: string, ctx: Context): Promise<CommandResult> {
  const name = jobName(job);
  return withJobs(ctx, async ({ repo }) => {
    const events = await repo.history(name);
    if (events.length === 0) throw new NotFoundError(`job ${name} has no history`, { hint: 'list jobs with: knarr job list' });
    return {
      data: events,
      view: { kind: 'table', columns: ['TIME', 'HOST', 'EVENT', 'DETAIL'], rows: events.map((e) => [timeCell(e.at), e.host, e.event, e.detail ?? '']) },
    };
  });
}

/**
 * `knarr job logs JOB [-f] [--tail N] [--since D] [--timestamps]`: its output so far (and to come, with -f), stdout and stderr
 * apart, from whichever host runs it; a job that exited keeps its log until it is removed.
 */
export async function jobLogs(
  job: string,
  opts: { follow: boolean; tail?: string | undefined; since?: string | undefined; timestamps: boolean },
  ctx: Context,
): Promise<CommandResult> {
  const checked = jobName(job);
  const options = parseLogOptions(opts, Date.now());
  return withJobs(ctx, async ({ repo, hosts }): Promise<CommandResult> => {
    const { intent, actual } = await requireJob(repo, checked);
    const name = intent.spec.name;
    if (!actual?.container) throw new NotFoundError(`job ${name} has not started`);
    let open: () => Promise<import('node:http').IncomingMessage>;
    if (intent.managed) {
      const host = intent.host === null ? null : await hosts.get(intent.host);
      if (!host?.up) throw new PrerequisiteError(`job ${name}'s host ${intent.host} is down: its logs are there`);
      const client = await AgentClient.connect(ctx, host.host);
      open = () => client.logs(name, options);
    } else {
      requireHere(intent);
      const engine = new DockerEngine(dockerSocketPath(ctx.env), ctx.runner.dryRun);
      open = () => engine.logs(daemonContainerName(name), options);
    }
    return {
      data: { name },
      stream: async (stdout, stderr) => {
        const res = await open();
        const stop = () => res.destroy();
        ctx.signal.addEventListener('abort', stop, { once: true });
        try {
          await demux(res, stdout, stderr);
        } finally {
          ctx.signal.removeEventListener('abort', stop);
        }
      },
    };
  });
}

/** `knarr service list`: each port of a daemonized job, where it is reached. */
export const serviceList = (ctx: Context): Promise<CommandResult> =>
  withJobs(ctx, async ({ repo }) => {
    const services = (await repo.services()).sort((a, b) => a.name.localeCompare(b.name));
    return {
      data: services,
      view: {
        kind: 'table',
        columns: ['SERVICE', 'JOB', 'HOST', 'ADDRESS'],
        rows: services.map((s) => [s.name, s.job, s.host, `${s.address}:${s.port}/${s.protocol}`]),
      },
    };
  });
