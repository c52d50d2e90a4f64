import { ExitCode } from '../../core/errors.js';
import type { Handler } from '../types.js';
import { selectPool } from './select.js';
import { poolFields } from './view.js';

/** `knarr pool status [POOL]`: health, size and free space of one pool. */
export const poolStatus: Handler = async ({ args }, ctx) => {
  const record = await selectPool(ctx, args[0] as string | undefined);
  const status = await ctx.drivers[record.driver].poolStatus(record, ctx.runner);
  return {
    data: { ...status, createdAt: record.createdAt },
    view: { kind: 'fields', fields: poolFields(status) },
    exitCode: status.online ? ExitCode.ok : ExitCode.notFound,
  };
};
