import { hostView, jobRequest } from '../../core/hosts.js';
import { Scheduler, type Strategy } from '../../core/scheduler.js';
import { ValidationError } from '../../core/errors.js';
import { HostRepo } from '../../state/hosts.js';
import { optString, type Handler } from '../types.js';
import { specFrom } from './run.js';
import { withStore } from '../with-store.js';

/** `knarr job plan [-f job.yaml | IMAGE ...]`: the host the scheduler would choose, and why each other host lost. */
export const jobPlan: Handler = async ({ args, opts }, ctx) => {
  const { spec } = await specFrom(ctx, args, opts);
  const strategy = (optString(opts, 'strategy') ?? 'spread') as Strategy;
  if (strategy !== 'spread' && strategy !== 'binpack') throw new ValidationError('--strategy', 'use spread or binpack');
  return withStore(ctx, async (store) => {
    const hosts = await new HostRepo(store, ctx.config.fleet).list();
    const scheduler = new Scheduler(hosts.map((h) => hostView(h.host, h.up)), { strategy });
    const plan = scheduler.explain(jobRequest(spec, []));
    const rows = [...plan.verdicts].sort((a, b) => ['chosen', 'ranked-lower', 'rejected'].indexOf(a.verdict) - ['chosen', 'ranked-lower', 'rejected'].indexOf(b.verdict) || (b.score ?? 0) - (a.score ?? 0));
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
