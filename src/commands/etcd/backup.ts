import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ConflictError, NotFoundError, StoreUnavailableError, ValidationError } from '../../core/errors.js';
import { formatSize } from '../../core/size.js';
import { isEtcdProcess, probeHealth } from '../../host/etcd-server.js';
import { pathExists } from '../../host/mounts.js';
import { findExecutable } from '../../host/which.js';
import type { CommandResult, Context } from '../types.js';
import { readEtcdState } from './local.js';
import { clientFiles, etcdctlArgv, externalTarget, stateTls } from './cluster.js';
import { shellCommand } from '../../core/shell.js';

/** etcdctl 3.4 speaks the v3 API by default; said anyway, for older clients on a host. */
export const ETCDCTL_ENV = { ETCDCTL_API: '3' };

export interface SnapshotInfo {
  revision: number;
  keys: number;
  hash: number;
  /** Size of the key-value database inside the snapshot. */
  dbBytes: number;
}

/** The tool for offline snapshot work: etcdutl from etcd 3.5 on (where etcdctl's snapshot restore is deprecated), else etcdctl. */
export function snapshotTool(ctx: Context): string {
  return findExecutable('etcdutl', ctx.env.PATH) ? 'etcdutl' : 'etcdctl';
}

/** Reads a snapshot file's revision and key count (it does not check the file's checksum: a restore does). */
export async function snapshotStatus(ctx: Context, file: string): Promise<SnapshotInfo> {
  const r = await ctx.runner.run([snapshotTool(ctx), 'snapshot', 'status', file, '-w', 'json'], { mutates: false, env: ETCDCTL_ENV });
  const s = JSON.parse(r.stdout) as { hash: number; revision: number; totalKey: number; totalSize: number };
  return { revision: s.revision, keys: s.totalKey, hash: s.hash, dbBytes: s.totalSize };
}

/** The one etcd endpoint a snapshot is taken from (the managed etcd, or the first healthy --etcd endpoint), and etcdctl for it. */
async function snapshotEndpoint(ctx: Context): Promise<{ endpoint: string; etcdctl: (...args: string[]) => string[]; env: Record<string, string> }> {
  if (ctx.config.etcd.length > 0) {
    const { tls } = externalTarget(ctx);
    for (const url of ctx.config.etcd) if ((await probeHealth(url, 2000, tls)).healthy) return { endpoint: url, ...externalTarget(ctx, [url]) };
    throw new StoreUnavailableError(`no etcd endpoint of ${ctx.config.etcd.join(',')} is healthy`, { hint: 'check them with: knarr etcd status' });
  }
  const state = await readEtcdState(ctx);
  // A cluster member's host snapshots its own member, or, that one down, the first other member that is healthy.
  if (state?.tls) {
    const files = clientFiles(state.tls);
    const tls = stateTls(state);
    for (const url of state.endpoints ?? [state.clientUrl])
      if ((await probeHealth(url, 2000, tls)).healthy) return { endpoint: url, etcdctl: (...args) => etcdctlArgv(files, [url], args), env: ETCDCTL_ENV };
    throw new StoreUnavailableError(`no member of the etcd cluster (${(state.endpoints ?? [state.clientUrl]).join(',')}) is healthy`, {
      hint: 'check them with: knarr etcd members',
    });
  }
  if (!state || !(await isEtcdProcess(state.pid))) {
    throw new StoreUnavailableError('the managed etcd is not running: a backup is taken from a running etcd', { hint: 'start it with: knarr etcd up' });
  }
  return { endpoint: state.clientUrl, etcdctl: (...args) => ['etcdctl', '--endpoints', state.clientUrl, ...args], env: ETCDCTL_ENV };
}

/** `knarr etcd backup FILE`: a consistent snapshot of the fleet's store, checked after it is written. */
export async function etcdBackup(fileArg: string, opts: { force: boolean }, ctx: Context): Promise<CommandResult> {
  const file = resolve(ctx.cwd, fileArg);
  if (!(await pathExists(dirname(file))))
    throw new NotFoundError(`directory ${dirname(file)} does not exist`, { hint: `create it first: ${shellCommand(['mkdir', '-p', dirname(file)])}` });
  const there = await stat(file).catch(() => null);
  if (there?.isDirectory()) throw new ValidationError('FILE', `${file} is a directory: name the snapshot file, e.g. ${file}/knarr-etcd.db`);
  if (there && !opts.force) {
    throw new ConflictError(`${file} already exists`, { hint: 'name a new file, or pass --force to replace it' });
  }
  const { endpoint, etcdctl, env } = await snapshotEndpoint(ctx);
  ctx.events.step(`etcd: snapshot of ${endpoint} to ${file}`);
  // etcdctl writes FILE.part and renames it when whole, so FILE is never half a snapshot.
  await ctx.runner.run(etcdctl('snapshot', 'save', file), { env });
  ctx.events.done();
  if (ctx.runner.dryRun) return { data: { file, endpoint, planned: true } };
  const info = await snapshotStatus(ctx, file);
  const { size } = await stat(file);
  const data = { file, endpoint, bytes: size, ...info };
  return {
    data,
    view: {
      kind: 'fields',
      fields: [
        ['file', file],
        ['from', endpoint],
        ['size', formatSize(size)],
        ['revision', String(info.revision)],
        ['keys', String(info.keys)],
      ],
    },
  };
}
