import type { Cell, CommandResult, Context } from '../types.js';
import { ensureLocalEtcd, localPorts, readEtcdState, refuseExternal, type LocalEtcdOptions } from './local.js';
import { plainToMember } from './to-tls.js';
import { etcdData, etcdFields } from './view.js';

/** `knarr etcd up`: start the managed etcd, or confirm it runs; idempotent. */
export async function etcdUp(opts: Pick<LocalEtcdOptions, 'pool' | 'clientPort' | 'peerPort' | 'advertise' | 'name'>, ctx: Context): Promise<CommandResult> {
  refuseExternal(ctx, 'up');
  // A stopped plain etcd asked to serve a cluster has its data turned into the first member's, kept aside as it was.
  const converted =
    opts.advertise !== undefined
      ? await plainToMember(ctx, { advertise: opts.advertise, name: opts.name, pool: opts.pool, ...localPorts(ctx, opts, await readEtcdState(ctx)) })
      : null;
  const r = await ensureLocalEtcd(ctx, opts);
  const data = {
    action: r.action,
    ...etcdData(r.state, r.action !== 'planned', r.action === 'planned' ? null : r.health),
    ...(converted ? { previousData: converted } : {}),
  };
  const fields: [string, Cell][] = [['action', r.action], ...etcdFields(data)];
  if (converted) fields.push(['previous data', converted]);
  return { data, view: { kind: 'fields', fields } };
}
