import { NotFoundError } from '../../core/errors.js';
import { validatePoolName } from '../../core/names.js';
import type { PoolRecord } from '../../core/pool.js';
import { listPoolRecords, readPoolRecord } from '../../host/local-state.js';
import type { Context } from '../types.js';

/** The pool a command acts on: the one named, else the configured default, else the only one. */
export async function selectPool(ctx: Context, name: string | undefined): Promise<PoolRecord> {
  const stateDir = ctx.config.stateDir;
  if (name !== undefined) {
    validatePoolName('POOL', name);
    const rec = await readPoolRecord(stateDir, name);
    if (!rec) throw new NotFoundError(`no pool named ${name} on this host`, { hint: 'list pools with: knarr pool list' });
    return rec;
  }
  const preferred = await readPoolRecord(stateDir, ctx.config.pool.name);
  if (preferred) return preferred;
  const all = await listPoolRecords(stateDir);
  if (all.length === 1) return all[0]!;
  if (all.length === 0) throw new NotFoundError('this host has no pool yet', { hint: 'create one with: knarr pool init' });
  throw new NotFoundError(`this host has ${all.length} pools; name one (${all.map((p) => p.name).join(', ')})`);
}

/** The default pool if there is one, without failing: for commands that can do without a pool. */
export async function defaultPool(ctx: Context): Promise<PoolRecord | null> {
  try {
    return await selectPool(ctx, undefined);
  } catch (e) {
    if (e instanceof NotFoundError) return null;
    throw e;
  }
}
