import { StoreUnavailableError } from '../../core/errors.js';
import { formatSize } from '../../core/size.js';
import { isEtcdProcess } from '../../host/etcd-server.js';
import { clientFiles, etcdctlArgv, externalTarget, stateTls, type EtcdctlTarget } from './cluster.js';
import { probeSpace, type Space } from '../../host/etcd-space.js';
import type { CommandResult, Context } from '../types.js';
import { ETCDCTL_ENV } from './backup.js';
import { readEtcdState } from './local.js';

/** What maintenance acts on: every --etcd endpoint (each member is defragmented on its own), or the managed etcd with its certificates. */
async function target(ctx: Context): Promise<EtcdctlTarget> {
  if (ctx.config.etcd.length > 0) return externalTarget(ctx);
  const state = await readEtcdState(ctx);
  if (!state || !(await isEtcdProcess(state.pid))) throw new StoreUnavailableError('the managed etcd is not running', { hint: 'start it with: knarr etcd up' });
  const urls = state.endpoints ?? [state.clientUrl];
  const files = state.tls ? clientFiles(state.tls) : null;
  return {
    urls,
    etcdctl: (...argv) => (files ? etcdctlArgv(files, urls, argv) : ['etcdctl', '--endpoints', urls.join(','), ...argv]),
    env: ETCDCTL_ENV,
    tls: stateTls(state),
  };
}

const sizeText = (s: Space) =>
  s.dbBytes === null ? '-' : `${formatSize(s.dbBytes)}${s.dbInUseBytes !== null ? ` (${formatSize(s.dbInUseBytes)} in use)` : ''}`;

/** `knarr etcd compact`: drops every revision older than the current one (etcd keeps an hour of them on its own). */
export async function etcdCompact(ctx: Context): Promise<CommandResult> {
  const { urls, etcdctl, env } = await target(ctx);
  const r = await ctx.runner.run(etcdctl('endpoint', 'status', '-w', 'json'), { mutates: false, env });
  const status = JSON.parse(r.stdout) as { Status: { header: { revision: number } } }[];
  const revision = Math.max(...status.map((s) => Number(s.Status.header.revision)));
  ctx.events.step(`etcd: compacting history before revision ${revision}`);
  await ctx.runner.run(etcdctl('compact', String(revision), '--physical'), { env });
  ctx.events.done();
  const data = { endpoints: urls, revision, planned: ctx.runner.dryRun };
  return { data, view: { kind: 'lines', lines: [`compacted history before revision ${revision}; knarr etcd defrag gives the space back to the disk`] } };
}

/** `knarr etcd defrag`: gives the space compaction freed back to the disk, member by member; --disarm then clears a NOSPACE alarm. */
export async function etcdDefrag(opts: { disarm: boolean }, ctx: Context): Promise<CommandResult> {
  const { urls, etcdctl, tls, env } = await target(ctx);
  const before = await Promise.all(urls.map((u) => probeSpace(u, 2000, tls)));
  ctx.events.step(`etcd: defragmenting ${urls.join(', ')}`);
  // A large database takes longer than etcdctl's usual command timeout to defragment.
  await ctx.runner.run(etcdctl('defrag', '--command-timeout', '300s'), { env, timeoutMs: 300_000 });
  if (opts.disarm) await ctx.runner.run(etcdctl('alarm', 'disarm'), { env });
  ctx.events.done();
  const after = ctx.runner.dryRun ? before : await Promise.all(urls.map((u) => probeSpace(u, 2000, tls)));
  const members = urls.map((endpoint, i) => ({ endpoint, before: before[i]!, after: after[i]! }));
  return {
    data: { members, disarmed: opts.disarm, planned: ctx.runner.dryRun },
    view: {
      kind: 'table',
      columns: ['ENDPOINT', 'BEFORE', 'AFTER', 'QUOTA', 'ALARMS'],
      rows: members.map((m) => [
        m.endpoint,
        sizeText(m.before),
        sizeText(m.after),
        m.after.quotaBytes === null ? '-' : formatSize(m.after.quotaBytes),
        m.after.alarms.join(',') || '-',
      ]),
    },
  };
}
