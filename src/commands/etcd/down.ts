import { isEtcdProcess } from '../../host/etcd-server.js';
import type { CommandResult, Context } from '../types.js';
import { readEtcdState, refuseExternal, stopLocalEtcd } from './local.js';

/** `knarr etcd down`: stop the managed etcd; its data stays. Idempotent. */
export async function etcdDown(ctx: Context): Promise<CommandResult> {
  refuseExternal(ctx, 'down');
  const state = await readEtcdState(ctx);
  if (!state || !(await isEtcdProcess(state.pid))) {
    return { data: { action: 'stopped-already', running: false }, view: { kind: 'lines', lines: ['etcd is not running'] } };
  }
  if (ctx.runner.plan(['kill', '-TERM', String(state.pid)])) {
    return { data: { action: 'planned', pid: state.pid } };
  }
  ctx.events.step(`etcd: stopping pid ${state.pid}`);
  const how = await stopLocalEtcd(ctx, state);
  ctx.events.done();
  return { data: { action: how, running: false, pid: state.pid }, view: { kind: 'lines', lines: [`etcd ${how} (pid ${state.pid})`] } };
}
