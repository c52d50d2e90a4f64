import { fleetViews, jobRequest } from '../../core/hosts.js';
import { Scheduler, type Strategy } from '../../core/scheduler.js';
import { ValidationError } from '../../core/errors.js';
import { HostRepo } from '../../state/hosts.js';
import { JobRepo } from '../../state/jobs.js';
import { optString, type Handler } from '../types.js';
import { specFrom } from './run.js';
import { withStore } from '../with-store.js';

const ORDER = ['chosen', 'ranked-lower', 'rejected'];

/** `knarr job plan [-f job.yaml | IMAGE ...]`: the host the scheduler would choose, and why each other host lost. */
export const jobPlan: Handler = async ({ args, opts }, ctx) => {
  const { spec } = await specFrom(ctx, args, opts);
  const strategy = (optString(opts, 'strategy') ?? 'spread') as Strategy;
  if (strategy !== 'spread' && strategy !== 'binpack') throw new ValidationError('--strategy', 'use spread or binpack');
  return withStore(ctx, async (store) => {
    const jobs = new JobRepo(store, ctx.config.fleet);
    const [hosts, intents, history] = await Promise.all([new HostRepo(store, ctx.config.fleet).list(), jobs.intents(), jobs.pastHosts(spec.name)]);
    // The ports and reservations of the jobs placed already count, as they do for a real placement.
    const others = intents.filter((i) => i.managed && i.spec.name !== spec.name);
    const plan = new Scheduler(fleetViews(hosts, others), { strategy }).explain(jobRequest(spec, history));
    const rows = [...plan.verdicts].sort((a, b) => ORDER.indexOf(a.verdict) - ORDER.indexOf(b.verdict) || (b.score ?? 0) - (a.score ?? 0));
    return {
      data: { job: spec.name, host: plan.host, strategy, reason: plan.reason, verdicts: rows },
      view: {
        kind: 'table',
        columns: ['HOST', 'VERDICT', 'SCORE', 'WHY'],
        rows: rows.map((v) => [v.host, v.verdict, v.score === undefined ? '-' : v.score.toFixed(3), v.why]),
      },
      exitCode: plan.host ? 0 : 1,
    };
  });
};
