import { DEFAULT_BRANCH, parseDotRef, subdotDir, type DotRecord } from '../../core/dots.js';
import { ConflictError } from '../../core/errors.js';
import { selectPool } from '../pool/select.js';
import type { CommandResult, Context } from '../types.js';
import { dotHandle, withDotLock, withDots } from './common.js';

/** `knarr dot init DOT[.SUBDOT] [--pool P]`: a new dot, or a new subdot of one; idempotent. */
export async function dotInit(dotText: string, opts: { pool?: string | undefined }, ctx: Context): Promise<CommandResult> {
  const ref = parseDotRef('DOT', dotText);
  const sub = subdotDir(ref.subdot);
  const poolName = opts.pool;
  return withDots(ctx, (repo) =>
    withDotLock(ctx, 'dot init', [ref.dot], async () => {
      const existing = await repo.get(ref.dot);
      if (existing) {
        if (poolName !== undefined && poolName !== existing.pool) {
          throw new ConflictError(`dot ${ref.dot} already exists on pool ${existing.pool}, not ${poolName}`);
        }
        if (existing.subdots.includes(sub))
          return { data: { dot: ref.dot, subdot: sub, action: 'exists' }, view: { kind: 'lines', lines: [`dot ${dotText} exists`] } };
        const h = await dotHandle(ctx, existing);
        await h.storage.ensureSubdir(h.ref(), sub);
        await repo.update(ref.dot, (cur) => ({ ...cur, subdots: [...new Set([...cur.subdots, sub])].sort() }));
        return { data: { dot: ref.dot, subdot: sub, action: 'created' }, view: { kind: 'lines', lines: [`subdot ${dotText} created`] } };
      }
      const pool = await selectPool(ctx, poolName);
      const now = new Date().toISOString();
      const dot: DotRecord = {
        name: ref.dot,
        pool: pool.name,
        subdots: [sub],
        branches: { [DEFAULT_BRANCH]: { head: null, from: null, createdAt: now } },
        activeBranch: DEFAULT_BRANCH,
        mounts: {},
        origin: null,
        createdAt: now,
      };
      const h = await dotHandle(ctx, dot);
      if (await h.storage.dotExists(pool, ref.dot)) {
        throw new ConflictError(`pool ${pool.name} already holds data for a dot named ${ref.dot}, unknown to the store`, {
          hint: 'recover its records with: knarr dot fsck --repair, or remove it first',
        });
      }
      await h.storage.createBranch(h.ref(), [sub]);
      if (!(await repo.create(dot))) throw new ConflictError(`dot ${ref.dot} was created by another command at the same time`);
      return {
        data: { dot: ref.dot, subdot: sub, action: 'created', pool: pool.name, path: h.storage.branchPath(h.ref()) },
        view: { kind: 'lines', lines: [`dot ${dotText} created on pool ${pool.name}`] },
      };
    }),
  );
}
