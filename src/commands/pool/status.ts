import { ExitCode } from '../../core/errors.js';
import { timeCell, type CommandResult, type Context } from '../types.js';
import { selectPool } from './select.js';
import { poolFields } from './view.js';

/** `knarr pool status [POOL]`: health, size and free space of one pool. */
export async function poolStatus(pool: string | undefined, ctx: Context): Promise<CommandResult> {
  const record = await selectPool(ctx, pool);
  const status = await ctx.drivers[record.driver].poolStatus(record, ctx.runner);
  return {
    data: { ...status, createdAt: record.createdAt },
    view: { kind: 'fields', fields: [...poolFields(status), ['created', timeCell(record.createdAt)]] },
    exitCode: status.online ? ExitCode.ok : ExitCode.notFound,
  };
}
