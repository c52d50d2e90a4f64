import { copyFile, readdir, rm } from 'node:fs/promises';
import { statePaths } from '../../core/paths.js';
import { validateAdvertiseIp } from '../../core/etcd-cluster.js';
import { ExternalCommandError, FailureError } from '../../core/errors.js';
import { isEtcdProcess, type EtcdServerState } from '../../host/etcd-server.js';
import { writeJsonAtomic } from '../../host/local-state.js';
import { pathExists } from '../../host/mounts.js';
import type { Context } from '../types.js';
import { ETCDCTL_ENV, snapshotTool } from './backup.js';
import { ensureFirstPki, memberName, pkiFiles, tlsUrls } from './cluster.js';
import { dataLocation, finishRestore, readEtcdState, writeRestoreJournal } from './local.js';

export interface ToTlsOptions {
  advertise: string;
  name?: string;
  pool?: string;
  clientPort: number;
  peerPort: number;
}

/**
 * The plain one-member etcd's data (stopped) becomes the first member of a TLS cluster, as k3s turns
 * a single server into an etcd cluster on --cluster-init: its database is restored as a new
 * one-member cluster under this host's name, addresses and certificates. The data it had is kept
 * aside; a crash part-way is finished by the next start (the restore journal). Returns where the old
 * data went, or null when there was nothing to turn (no data, or already a member).
 */
export async function plainToMember(ctx: Context, opts: ToTlsOptions): Promise<string | null> {
  // Checked before anything is looked at or made: a bad address changes nothing.
  const ip = validateAdvertiseIp('--advertise', opts.advertise);
  const previous = await readEtcdState(ctx);
  if (previous?.tls || (await isEtcdProcess(previous?.pid ?? null))) return null;
  const { dataDir, pool } = await dataLocation(ctx, previous?.pool ?? opts.pool);
  if (await finishRestore(ctx)) ctx.events.warn('finished a restore that was cut short');
  const db = `${dataDir}/member/snap/db`;
  if (!(await pathExists(db))) return null;
  const name = memberName(opts.name);
  await ensureFirstPki(ctx, name, ip);
  const urls = tlsUrls(ip, opts.clientPort, opts.peerPort);
  // What a run cut short before its journal left: scratch copies, never the data.
  for (const leftover of (await readdir(dataDir).catch(() => [] as string[])).filter((n) => n.startsWith('.restore-') || n.startsWith('.to-tls-')))
    if (!ctx.runner.plan(['rm', '-rf', `${dataDir}/${leftover}`])) await rm(`${dataDir}/${leftover}`, { recursive: true, force: true });
  const stamp = new Date().toISOString().replace(/[-:.]/g, '');
  const copy = `${dataDir}/.to-tls-${stamp}.db`;
  const staged = `${dataDir}/.restore-${stamp}`;
  const aside = `${dataDir}/member.before-tls-${stamp}`;
  ctx.events.step(`etcd: turning the plain etcd's data into member ${name} of a TLS cluster (the old data goes to ${aside})`);
  // etcd is stopped, so its database file is a consistent snapshot; it has no snapshot checksum, hence --skip-hash-check.
  const restore = [
    snapshotTool(ctx),
    'snapshot',
    'restore',
    copy,
    '--skip-hash-check',
    '--data-dir',
    staged,
    '--name',
    name,
    '--initial-cluster',
    `${name}=${urls.peerUrl}`,
    '--initial-advertise-peer-urls',
    urls.peerUrl,
  ];
  if (ctx.runner.plan(['cp', db, copy])) {
    ctx.runner.plan(restore);
    ctx.runner.plan(['mv', `${dataDir}/member`, aside]);
    ctx.runner.plan(['mv', `${staged}/member`, `${dataDir}/member`]);
    return aside;
  }
  await copyFile(db, copy);
  try {
    await ctx.runner.run(restore, { env: ETCDCTL_ENV });
  } catch (e) {
    await rm(staged, { recursive: true, force: true });
    if (e instanceof ExternalCommandError)
      throw new FailureError(`the plain etcd's data in ${dataDir} could not be turned into a cluster member: ${e.message}`, {
        hint: 'nothing was changed; take a backup (knarr etcd backup FILE) with the plain etcd up, and restore it after knarr etcd up --advertise',
      });
    throw e;
  } finally {
    await rm(copy, { force: true });
  }
  const paths = statePaths(ctx.config.stateDir);
  // The member's record first, then the swap under the restore journal: a crash anywhere after is finished by the next etcd up.
  const member: EtcdServerState = {
    pid: null,
    name,
    ...urls,
    socket: '',
    dataDir,
    pool: pool?.name ?? null,
    logFile: paths.etcdLog,
    startedAt: null,
    tls: pkiFiles(ctx),
    initialCluster: `${name}=${urls.peerUrl}`,
    clusterState: 'existing',
    endpoints: [urls.clientUrl],
  };
  await writeRestoreJournal(ctx, { snapshot: db, dataDir, staged, aside });
  await writeJsonAtomic(paths.etcdState, member);
  await finishRestore(ctx);
  return aside;
}
