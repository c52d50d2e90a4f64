import { readdir, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ConflictError, ExternalCommandError, NotFoundError, UserError } from '../../core/errors.js';
import { validatePort } from '../../core/config.js';
import { statePaths } from '../../core/paths.js';
import { ETCD_MEMBER_NAME, isEtcdProcess, probeHealth, type EtcdServerState } from '../../host/etcd-server.js';
import type { RawMember } from '../../core/etcd-cluster.js';
import { listMembers, stateTls } from './cluster.js';
import { pathExists } from '../../host/mounts.js';
import { writeJsonAtomic } from '../../host/local-state.js';
import type { CommandResult, Context } from '../types.js';
import { ETCDCTL_ENV, snapshotStatus, snapshotTool } from './backup.js';
import {
  dataLocation,
  dropUnswappedRestore,
  ensureLocalEtcd,
  finishRestore,
  readEtcdState,
  refuseExternal,
  stopLocalEtcd,
  writeRestoreJournal,
} from './local.js';
import { etcdData } from './view.js';
import { knarrCommand } from '../../core/shell.js';

/** The options of `knarr etcd restore`. */
export interface EtcdRestoreOptions {
  yes: boolean;
  pool?: string;
  clientPort?: string;
  peerPort?: string;
}

/** A restore on a member of a cluster that still runs takes the member out of it: said, with what the others then do. */
async function warnLiveCluster(ctx: Context, state: EtcdServerState): Promise<void> {
  const tls = stateTls(state);
  const { members } = await listMembers(state.endpoints ?? [state.clientUrl], tls).catch(() => ({ members: [] as RawMember[] }));
  const others = members.filter((m) => !(m.peerURLs ?? []).includes(state.peerUrl));
  const up: string[] = [];
  for (const m of others) {
    const url = m.clientURLs?.[0];
    if (url && (await probeHealth(url, 1000, tls)).healthy) up.push(m.name || url);
  }
  if (up.length > 0)
    ctx.events.warn(
      `members ${up.sort().join(', ')} of this cluster are up: restoring here takes ${state.name} out of their cluster and founds a new one from the ` +
        `snapshot; they keep the old one until each runs knarr etcd down, then knarr etcd join ${state.clientUrl}`,
    );
}

/** `knarr etcd restore FILE`: the managed etcd's data replaced by a snapshot's; the data it had is kept aside. */
export async function etcdRestore(fileArg: string, opts: EtcdRestoreOptions, ctx: Context): Promise<CommandResult> {
  refuseExternal(ctx, 'restore');
  const file = resolve(ctx.cwd, fileArg);
  const st = await stat(file).catch(() => null);
  if (!st?.isFile()) throw new NotFoundError(`snapshot ${file} does not exist or is not a file`, { hint: 'take one with: knarr etcd backup FILE' });
  const state = await readEtcdState(ctx);
  const running = await isEtcdProcess(state?.pid ?? null);
  // Where `knarr etcd up` keeps the data (on a new host too), its pool online: never an unmounted mountpoint.
  const pool = state ? (state.pool ?? undefined) : opts.pool;
  const { dataDir } = await dataLocation(ctx, pool);
  if (state?.dataDir && state.dataDir !== dataDir) {
    throw new ConflictError(`the local etcd last kept its data in ${state.dataDir}, not ${dataDir}`, {
      hint: `bring up the pool that holds ${state.dataDir}, then restore`,
    });
  }
  // One cut short earlier: dropped if it never stopped etcd, else finished, before this one starts.
  if (running ? await dropUnswappedRestore(ctx) : await finishRestore(ctx)) ctx.events.warn('an earlier restore was cut short: it is settled first');
  const peerOpt = opts.peerPort;
  // The restored member names its peer address: the one etcd is started with next.
  // A cluster member keeps its name and TLS addresses: it comes back as a new one-member cluster that the others join.
  const peerUrl = state?.tls
    ? state.peerUrl
    : peerOpt !== undefined
      ? `http://127.0.0.1:${validatePort('--peer-port', peerOpt)}`
      : (state?.peerUrl ?? `http://127.0.0.1:${ctx.config.etcdServer.peerPort}`);
  if (state?.tls) await warnLiveCluster(ctx, state);
  const hasData = await pathExists(`${dataDir}/member`);
  if (hasData && !opts.yes && !ctx.runner.dryRun) {
    throw new UserError(`restoring replaces the fleet state in ${dataDir} with the snapshot's; pass --yes to confirm`, {
      hint:
        `the data there now is kept aside in ${dataDir}/member.before-restore-<time>; preview ` +
        `with: ${knarrCommand('--dry-run', 'etcd', 'restore', fileArg)}`,
    });
  }

  const info = await snapshotStatus(ctx, file).catch((e) => {
    if (e instanceof ExternalCommandError) throw new UserError(`${file} is not an etcd snapshot: ${e.message}`, { hint: 'nothing was changed' });
    throw e;
  });
  const stamp = new Date().toISOString().replace(/[-:.]/g, '');
  const staged = `${dataDir}/.restore-${stamp}`;
  // Unpacked beside the live data first: a damaged snapshot (its checksum is checked here) changes nothing.
  for (const leftover of (await readdir(dataDir).catch(() => [] as string[])).filter((n) => n.startsWith('.restore-'))) {
    if (!ctx.runner.dryRun) await rm(`${dataDir}/${leftover}`, { recursive: true, force: true });
  }
  ctx.events.step(`etcd: unpacking ${file} (revision ${info.revision}, ${info.keys} keys)`);
  const restoreArgv = [
    snapshotTool(ctx),
    'snapshot',
    'restore',
    file,
    '--data-dir',
    staged,
    '--name',
    state?.tls ? state.name : ETCD_MEMBER_NAME,
    '--initial-cluster',
    `${state?.tls ? state.name : ETCD_MEMBER_NAME}=${peerUrl}`,
    '--initial-advertise-peer-urls',
    peerUrl,
    // A cluster of its own: an old member that comes back is refused by it (another cluster id), never taken for a peer.
    '--initial-cluster-token',
    `knarr-restore-${stamp}`,
  ];
  try {
    await ctx.runner.run(restoreArgv, { env: ETCDCTL_ENV });
  } catch (e) {
    await rm(staged, { recursive: true, force: true });
    if (e instanceof ExternalCommandError)
      throw new UserError(`${file} cannot be restored: ${e.message}`, { hint: 'the snapshot is damaged or not an etcd snapshot; nothing was changed' });
    throw e;
  }
  const aside = hasData ? `${dataDir}/member.before-restore-${stamp}` : null;
  // Written before etcd stops: from here a start of etcd waits for this process, and a crash is finished or dropped.
  if (!ctx.runner.dryRun) await writeRestoreJournal(ctx, { snapshot: file, dataDir, staged, aside });

  if (running && state) {
    ctx.events.step(`etcd: stopping pid ${state.pid}`);
    if (!ctx.runner.plan(['kill', '-TERM', String(state.pid)])) await stopLocalEtcd(ctx, state);
  }
  if (ctx.runner.dryRun) {
    if (aside) ctx.runner.plan(['mv', `${dataDir}/member`, aside]);
    ctx.runner.plan(['mv', `${staged}/member`, `${dataDir}/member`]);
  } else {
    await finishRestore(ctx);
    const after = await readEtcdState(ctx);
    if (after?.tls) {
      await writeJsonAtomic(statePaths(ctx.config.stateDir).etcdState, {
        ...after,
        endpoints: [after.clientUrl],
        initialCluster: `${after.name}=${after.peerUrl}`,
        clusterState: 'existing',
      });
    }
  }
  ctx.events.done();
  const up = await ensureLocalEtcd(ctx, { pool, clientPort: opts.clientPort, peerPort: peerOpt });
  const data = {
    action: ctx.runner.dryRun ? 'planned' : 'restored',
    snapshot: file,
    revision: info.revision,
    keys: info.keys,
    previous: aside,
    ...etcdData(up.state, up.action !== 'planned', up.action === 'planned' ? null : up.health),
  };
  const fields: [string, string][] = [
    ['action', data.action],
    ['snapshot', file],
    ['revision', String(info.revision)],
    ['keys', String(info.keys)],
    ['data', dataDir],
    ['previous', aside ?? '-'],
    ['endpoints', up.state.clientUrl],
  ];
  // The other members of the old cluster join the new one; each sets its old data aside.
  const next = up.state.tls ? `on each other host: knarr etcd join ${up.state.clientUrl} --token TOKEN (TOKEN from knarr etcd token here)` : null;
  if (next) fields.push(['next', next]);
  return { data: { ...data, next }, view: { kind: 'fields', fields } };
}
