import { statePaths } from '../../core/paths.js';
import { isEtcdProcess, stopProcess } from '../../host/etcd-server.js';
import { writeJsonAtomic } from '../../host/local-state.js';
import type { Handler } from '../types.js';
import { readEtcdState, refuseExternal } from './local.js';

/** `knarr etcd down`: stop the managed etcd; its data stays. Idempotent. */
export const etcdDown: Handler = async (_input, ctx) => {
  refuseExternal(ctx, 'down');
  const state = await readEtcdState(ctx);
  if (!state || !(await isEtcdProcess(state.pid))) {
    return { data: { action: 'stopped-already', running: false }, view: { kind: 'lines', lines: ['etcd is not running'] } };
  }
  if (ctx.runner.plan(['kill', '-TERM', String(state.pid)])) {
    return { data: { action: 'planned', pid: state.pid } };
  }
  ctx.events.step(`etcd: stopping pid ${state.pid}`);
  const how = await stopProcess(state.pid!);
  ctx.events.done();
  await writeJsonAtomic(statePaths(ctx.config.stateDir).etcdState, { ...state, pid: null, startedAt: null });
  return { data: { action: how, running: false, pid: state.pid }, view: { kind: 'lines', lines: [`etcd ${how} (pid ${state.pid})`] } };
};
