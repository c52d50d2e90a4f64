import { optString, type Handler } from '../types.js';
import { ensureLocalEtcd, refuseExternal } from './local.js';
import { etcdData, etcdFields } from './view.js';

/** `knarr etcd up`: start the managed etcd, or confirm it runs; idempotent. */
export const etcdUp: Handler = async ({ opts }, ctx) => {
  refuseExternal(ctx, 'up');
  const r = await ensureLocalEtcd(ctx, {
    pool: optString(opts, 'pool'),
    clientPort: optString(opts, 'clientPort'),
    peerPort: optString(opts, 'peerPort'),
  });
  const data = { action: r.action, ...etcdData(r.state, r.action !== 'planned', r.action === 'planned' ? null : r.health) };
  return { data, view: { kind: 'fields', fields: [['action', r.action], ...etcdFields(data)] } };
};
