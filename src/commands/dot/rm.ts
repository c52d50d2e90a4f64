import { parseDotName } from '../../core/dots.js';
import { ConflictError } from '../../core/errors.js';
import { mountAt } from '../../host/mounts.js';
import { optBool, type Handler } from '../types.js';
import { dotHandle, requireDot, unmountSubdots, withDotLock, withDots } from './common.js';

/** `knarr dot rm DOT [--force]`: the dot, every branch and commit; a mounted dot needs --force. */
export const dotRm: Handler = async ({ args, opts }, ctx) => {
  const name = parseDotName('DOT', args[0] as string);
  return withDots(ctx, (repo) =>
    withDotLock(ctx, 'dot rm', [name], async () => {
      const dot = await requireDot(repo, name);
      const mounted: string[] = [];
      for (const t of Object.values(dot.mounts)) if (await mountAt(t)) mounted.push(t);
      if (mounted.length > 0 && !optBool(opts, 'force')) {
        throw new ConflictError(`dot ${name} is mounted at ${mounted.join(', ')}`, { hint: `unmount it (knarr dot unmount ${name}) or pass --force` });
      }
      await unmountSubdots(ctx, dot);
      const h = await dotHandle(ctx, dot);
      await h.storage.destroyDot(h.pool, name);
      await repo.delete(name);
      return { data: { dot: name, removed: true, unmounted: mounted }, view: { kind: 'lines', lines: [`dot ${name} removed`] } };
    }),
  );
};
