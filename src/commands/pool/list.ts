import { listPoolRecords } from '../../host/local-state.js';
import { timeCell, type CommandResult, type Context } from '../types.js';
import { POOL_COLUMNS, POOL_WIDE, poolRow } from './view.js';

/** `knarr pool list`: every pool knarr keeps on this host, with live health. */
export async function poolList(ctx: Context): Promise<CommandResult> {
  const records = await listPoolRecords(ctx.config.stateDir);
  // The same fields as pool status: what a script reads from one it finds in the other.
  const statuses = await Promise.all(records.map(async (r) => ({ ...(await ctx.drivers[r.driver].poolStatus(r, ctx.runner)), createdAt: r.createdAt })));
  const rows = statuses.map((s) => [...poolRow(s), timeCell(s.createdAt)]);
  return { data: statuses, view: { kind: 'table', columns: [...POOL_COLUMNS, 'CREATED'], rows, wide: POOL_WIDE } };
}
