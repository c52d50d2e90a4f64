import type { CommandResult, Context } from '../types.js';
import { ensureLocalEtcd, refuseExternal, type LocalEtcdOptions } from './local.js';
import { etcdData, etcdFields } from './view.js';

/** `knarr etcd up`: start the managed etcd, or confirm it runs; idempotent. */
export async function etcdUp(opts: Pick<LocalEtcdOptions, 'pool' | 'clientPort' | 'peerPort'>, ctx: Context): Promise<CommandResult> {
  refuseExternal(ctx, 'up');
  const r = await ensureLocalEtcd(ctx, opts);
  const data = { action: r.action, ...etcdData(r.state, r.action !== 'planned', r.action === 'planned' ? null : r.health) };
  return { data, view: { kind: 'fields', fields: [['action', r.action], ...etcdFields(data)] } };
}
