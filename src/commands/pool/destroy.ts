import { ConflictError, UserError } from '../../core/errors.js';
import { statePaths } from '../../core/paths.js';
import { isEtcdProcess, type EtcdServerState } from '../../host/etcd-server.js';
import { readJson, removePoolRecord } from '../../host/local-state.js';
import { optBool, type Handler } from '../types.js';
import { selectPool } from './select.js';

/** `knarr pool destroy POOL --yes`: destroys the pool and everything on it. */
export const poolDestroy: Handler = async ({ args, opts }, ctx) => {
  const name = args[0] as string;
  const record = await selectPool(ctx, name);
  if (!optBool(opts, 'yes') && !ctx.runner.dryRun) {
    throw new UserError(`destroying pool ${name} deletes all its data; pass --yes to confirm`, {
      hint: `preview it with: knarr --dry-run pool destroy ${name}`,
    });
  }
  const etcd = await readJson<EtcdServerState>(statePaths(ctx.config.stateDir).etcdState);
  if (etcd?.pool === name && (await isEtcdProcess(etcd.pid))) {
    throw new ConflictError(`the managed etcd keeps its data on pool ${name} and is running`, { hint: 'stop it first with: knarr etcd down' });
  }
  ctx.events.step(`pool ${name}: destroying`);
  await ctx.drivers[record.driver].destroyPool(record, ctx.runner);
  ctx.events.done();
  if (!ctx.runner.dryRun) await removePoolRecord(ctx.config.stateDir, name);
  return { data: { pool: name, driver: record.driver, destroyed: !ctx.runner.dryRun }, view: { kind: 'lines', lines: [`pool ${name} destroyed`] } };
};
