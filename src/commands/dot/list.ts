import type { DotRecord } from '../../core/dots.js';
import { timeCell, type CommandResult, type Context } from '../types.js';
import { shortId, subdotLabel, withDots } from './common.js';

/** The fields dot list gives for each dot; dot show gives them too, then more. */
export const dotSummary = (d: DotRecord) => ({
  name: d.name,
  pool: d.pool,
  branch: d.activeBranch,
  head: d.branches[d.activeBranch]?.head ?? null,
  subdots: d.subdots,
  mounts: d.mounts,
  origin: d.origin,
  createdAt: d.createdAt,
});

/** `knarr dot list`: every dot on this host. */
export const dotList = (ctx: Context): Promise<CommandResult> =>
  withDots(ctx, async (repo) => {
    const rows = (await repo.list()).map(dotSummary);
    return {
      data: rows,
      view: {
        kind: 'table',
        columns: ['DOT', 'BRANCH', 'HEAD', 'SUBDOTS', 'POOL', 'MOUNTED', 'COMMIT', 'CREATED'],
        wide: ['COMMIT', 'CREATED'],
        rows: rows.map((r) => [
          r.name,
          r.branch,
          shortId(r.head),
          r.subdots.map((s) => subdotLabel(r.name, s)).join(','),
          r.pool,
          Object.values(r.mounts).join(',') || '-',
          r.head ?? '-',
          timeCell(r.createdAt),
        ]),
      },
    };
  });
