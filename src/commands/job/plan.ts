import { fleetViews, jobRequest } from '../../core/hosts.js';
import { Scheduler, type Strategy } from '../../core/scheduler.js';
import { HostRepo } from '../../state/hosts.js';
import { JobRepo } from '../../state/jobs.js';
import type { CommandResult, Context } from '../types.js';
import { specFrom, type JobSpecFlags } from './run.js';
import { withStore } from '../with-store.js';

const ORDER = ['chosen', 'ranked-lower', 'rejected'];

/** `knarr job plan [-f job.yaml | IMAGE ...]`: the host the scheduler would choose, and why each other host lost. */
export async function jobPlan(
  image: string | undefined,
  command: readonly string[],
  opts: JobSpecFlags & { strategy: Strategy | undefined; interactive?: boolean },
  ctx: Context,
): Promise<CommandResult> {
  const { spec } = await specFrom(ctx, image, command, opts);
  // Taken so a job run line works as it is; it does not change where the job goes.
  const notes = opts.interactive ? ['--interactive: stdin is piped when the job runs; it does not change where the job goes'] : [];
  for (const n of notes) ctx.events.warn(n);
  const strategy = opts.strategy ?? ctx.config.scheduler.strategy;
  return withStore(ctx, async (store) => {
    const jobs = new JobRepo(store, ctx.config.fleet);
    const [hosts, intents, history] = await Promise.all([new HostRepo(store, ctx.config.fleet).list(), jobs.intents(), jobs.pastHosts(spec.name)]);
    // The ports and reservations of the jobs placed already count, as they do for a real placement.
    const others = intents.filter((i) => i.spec.name !== spec.name);
    // As a real placement: only hosts that have every dot the job uses are judged; the rest say so.
    const { hostsWithDots } = await import('./volumes.js');
    const withDots = new Set(
      await hostsWithDots(
        store,
        ctx.config.fleet,
        spec,
        hosts.map((h) => h.host),
      ),
    );
    const plan = new Scheduler(
      fleetViews(
        hosts.filter((h) => withDots.has(h.host.name)),
        others,
      ),
      { strategy },
    ).explain(jobRequest(spec, history));
    const dots = spec.volumes.flatMap((v) => (v.kind === 'dot' ? [v.dot] : [])).join(', ');
    for (const h of hosts)
      if (!withDots.has(h.host.name)) plan.verdicts.push({ host: h.host.name, verdict: 'rejected', why: `does not have every dot the job uses (${dots})` });
    const rows = [...plan.verdicts].sort((a, b) => ORDER.indexOf(a.verdict) - ORDER.indexOf(b.verdict) || (b.score ?? 0) - (a.score ?? 0));
    return {
      data: { name: spec.name, host: plan.host, strategy, reason: plan.reason, verdicts: rows, notes },
      view: {
        kind: 'table',
        columns: ['HOST', 'VERDICT', 'SCORE', 'WHY'],
        rows: rows.map((v) => [v.host, v.verdict, v.score === undefined ? '-' : v.score.toFixed(3), v.why]),
      },
      exitCode: plan.host ? 0 : 1,
    };
  });
}
