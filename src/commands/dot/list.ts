import { timeCell, type CommandResult, type Context } from '../types.js';
import { shortId, subdotLabel, withDots } from './common.js';

/** `knarr dot list`: every dot on this host. */
export const dotList = (ctx: Context): Promise<CommandResult> =>
  withDots(ctx, async (repo) => {
    const dots = await repo.list();
    const rows = dots.map((d) => ({
      name: d.name,
      pool: d.pool,
      branch: d.activeBranch,
      head: d.branches[d.activeBranch]?.head ?? null,
      subdots: d.subdots,
      mounts: d.mounts,
      createdAt: d.createdAt,
    }));
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
