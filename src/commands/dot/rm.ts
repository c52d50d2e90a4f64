import { parseDotName } from '../../core/dots.js';
import { ConflictError } from '../../core/errors.js';
import { mountAt } from '../../host/mounts.js';
import { listPoolRecords } from '../../host/local-state.js';
import type { CommandResult, Context } from '../types.js';
import { dotHandle, requireDot, poolTransfer, unmountSubdots, withDotLock, withDots } from './common.js';

/** Drops what a pull of the dot left in any pool's staging (cut short, or out of space); true when there was some. */
async function discardStaged(ctx: Context, name: string): Promise<boolean> {
  let found = false;
  for (const pool of await listPoolRecords(ctx.config.stateDir)) {
    if (!(await ctx.drivers[pool.driver].poolStatus(pool, ctx.runner)).online) continue;
    const transfer = poolTransfer(ctx, pool);
    if (!transfer || !(await transfer.listStaging(pool)).includes(name)) continue;
    await transfer.discardStaging(pool, name);
    found = true;
  }
  return found;
}

/** `knarr dot rm DOT [--force]`: the dot, every branch and commit; a mounted dot needs --force. */
export async function dotRm(dotName: string, opts: { force?: boolean }, ctx: Context): Promise<CommandResult> {
  const name = parseDotName('DOT', dotName);
  return withDots(ctx, (repo) =>
    withDotLock(ctx, 'dot rm', [name], async () => {
      const dot = (await repo.get(name)) ?? ((await discardStaged(ctx, name)) ? null : await requireDot(repo, name));
      if (!dot)
        return { data: { dot: name, removed: true, unmounted: [] }, view: { kind: 'lines', lines: [`removed what a pull of ${name} left in staging`] } };
      const mounted: string[] = [];
      for (const t of Object.values(dot.mounts)) if (await mountAt(t)) mounted.push(t);
      if (mounted.length > 0 && !opts.force) {
        throw new ConflictError(`dot ${name} is mounted at ${mounted.join(', ')}`, { hint: `unmount it (knarr dot unmount ${name}) or pass --force` });
      }
      await unmountSubdots(ctx, dot);
      const h = await dotHandle(ctx, dot);
      await h.storage.destroyDot(h.pool, name);
      await discardStaged(ctx, name);
      await repo.delete(name);
      return { data: { dot: name, removed: true, unmounted: mounted }, view: { kind: 'lines', lines: [`dot ${name} removed`] } };
    }),
  );
}
