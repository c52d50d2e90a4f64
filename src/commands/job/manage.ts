import { NotFoundError, UserError } from '../../core/errors.js';
import { validateName } from '../../core/names.js';
import { DockerEngine, demux, dockerSocketPath } from '../../host/docker.js';
import { JobRepo, type JobActual, type JobIntent } from '../../state/jobs.js';
import { hostId } from '../dot/common.js';
import { optBool, type Context, type Handler } from '../types.js';
import { withStore } from '../with-store.js';

const withJobs = <T>(ctx: Context, fn: (repo: JobRepo) => Promise<T>): Promise<T> => withStore(ctx, (store) => fn(new JobRepo(store, ctx.config.fleet)));

async function requireJob(repo: JobRepo, text: string): Promise<{ intent: JobIntent; actual: JobActual | null }> {
  const name = validateName('JOB', text, 63);
  const intent = await repo.intent(name);
  if (!intent) throw new NotFoundError(`no daemonized job named ${name}`, { hint: 'list them with: knarr job list' });
  return { intent, actual: await repo.actual(name) };
}

/** This host's engine for a job that runs here; jobs on other hosts need their agent. */
function localEngine(ctx: Context, intent: JobIntent): DockerEngine {
  if (intent.host !== hostId()) throw new UserError(`job ${intent.spec.name} runs on ${intent.host}; reaching other hosts' jobs needs their agent (not there yet)`);
  return new DockerEngine(dockerSocketPath(ctx.env));
}

/** `knarr job list`: daemonized jobs, intent next to actual state. */
export const jobList: Handler = async (_i, ctx) =>
  withJobs(ctx, async (repo) => {
    const rows = await Promise.all((await repo.intents()).map(async (intent) => ({ intent, actual: await repo.actual(intent.spec.name) })));
    rows.sort((a, b) => a.intent.spec.name.localeCompare(b.intent.spec.name));
    return {
      data: rows.map((r) => ({ job: r.intent.spec.name, host: r.intent.host, image: r.intent.spec.image, state: r.actual?.state ?? 'pending', container: r.actual?.container ?? null, ports: r.intent.spec.ports })),
      view: {
        kind: 'table',
        columns: ['JOB', 'HOST', 'STATE', 'IMAGE', 'PORTS'],
        rows: rows.map((r) => [r.intent.spec.name, r.intent.host, r.actual?.state ?? 'pending', r.intent.spec.image, r.intent.spec.ports.map((p) => `${p.host}:${p.container}/${p.protocol}`).join(',') || '-']),
      },
    };
  });

/** `knarr job show JOB`: the spec, where it runs, and the engine's view of it. */
export const jobShow: Handler = async ({ args }, ctx) =>
  withJobs(ctx, async (repo) => {
    const { intent, actual } = await requireJob(repo, args[0] as string);
    let engineState: string | null = null;
    if (actual && intent.host === hostId()) {
      engineState = await localEngine(ctx, intent)
        .inspect(actual.container)
        .then((i) => i.State.Status, () => 'gone');
    }
    return { data: { ...intent, actual, engineState } };
  });

/** `knarr job stop JOB`: stops its container; the intent stays. */
export const jobStop: Handler = async ({ args }, ctx) =>
  withJobs(ctx, async (repo) => {
    const { intent, actual } = await requireJob(repo, args[0] as string);
    if (!actual) return { data: { job: intent.spec.name, state: 'pending' } };
    await localEngine(ctx, intent).stop(actual.container).catch(() => undefined);
    await repo.putActual(intent.spec.name, { ...actual, state: 'stopped' });
    return { data: { job: intent.spec.name, state: 'stopped' }, view: { kind: 'lines', lines: [`job ${intent.spec.name} stopped`] } };
  });

/** `knarr job rm JOB`: removes its container, intent, actual state and services. */
export const jobRm: Handler = async ({ args }, ctx) =>
  withJobs(ctx, async (repo) => {
    const { intent, actual } = await requireJob(repo, args[0] as string);
    if (actual) await localEngine(ctx, intent).remove(actual.container).catch(() => undefined);
    await repo.remove(intent.spec.name);
    return { data: { job: intent.spec.name, removed: true }, view: { kind: 'lines', lines: [`job ${intent.spec.name} removed`] } };
  });

/** `knarr job logs JOB [-f]`: its output so far (and to come, with -f), stdout and stderr apart. */
export const jobLogs: Handler = async ({ args, opts }, ctx) =>
  withJobs(ctx, async (repo) => {
    const { intent, actual } = await requireJob(repo, args[0] as string);
    if (!actual) throw new NotFoundError(`job ${intent.spec.name} has not started`);
    const engine = localEngine(ctx, intent);
    const follow = optBool(opts, 'follow');
    return {
      data: { job: intent.spec.name },
      stream: async (stdout, stderr) => {
        const res = await engine.logs(actual.container, follow);
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

/** `knarr service list`: each port of a daemonized job, where it is reached. */
export const serviceList: Handler = async (_i, ctx) =>
  withJobs(ctx, async (repo) => {
    const services = (await repo.services()).sort((a, b) => a.name.localeCompare(b.name));
    return {
      data: services,
      view: { kind: 'table', columns: ['SERVICE', 'JOB', 'HOST', 'ADDRESS'], rows: services.map((s) => [s.name, s.job, s.host, `${s.address}:${s.port}/${s.protocol}`]) },
    };
  });
