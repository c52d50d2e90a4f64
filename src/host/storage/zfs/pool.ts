import { dirname } from 'node:path';
import { mountAt, pathExists, readMounts, staleMounts } from '../../mounts.js';
import { FailureError } from '../../../core/errors.js';
import { shellCommand, shellQuote } from '../../../core/shell.js';
import type { Runner } from '../../runner.js';
import { zfsTransfer } from './transfer.js';
import { zfsDots } from './dots.js';
import { checkForeign, createLoopFile, probeSources, refuseRemake, runRetryingBusy } from '../common.js';
import {
  missingStatus,
  poolSources,
  type EnsureAction,
  type PoolRecord,
  type PoolSpec,
  type PoolStatus,
  type StorageDriver,
  type VolumeInfo,
} from '../driver.js';

/** Pool names listed by `zpool import -d DIR` (read-only scan of importable pools). */
export function parseImportable(text: string): string[] {
  return [...text.matchAll(/^\s*pool:\s*(\S+)\s*$/gm)].map((m) => m[1]!);
}

/** The pool id given, if `zpool import -d DIR` lists it. */
export function listedId(text: string, id: string | null): string | null {
  return id !== null && /^\d+$/.test(id) && new RegExp(`^\\s*id: ${id}\\s*$`, 'm').test(text) ? id : null;
}

/** Parses `zfs get -H -p -o property,value` lines into a map. */
export function parseZfsGet(text: string): Map<string, string> {
  const props = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [prop, value] = line.split('\t');
    if (prop && value !== undefined) props.set(prop, value);
  }
  return props;
}

async function poolHealth(runner: Runner, name: string): Promise<string | null> {
  const r = await runner.run(['zpool', 'list', '-H', '-o', 'name,health', name], { mutates: false, okExitCodes: [1] });
  if (r.exitCode !== 0) return null;
  return r.stdout.trim().split('\t')[1] ?? 'UNKNOWN';
}

/**
 * The dataset lives where zfs says it is mounted: dead FUSE mounts in the pool's tree (a zfs-fuse that
 * died left them; every access fails with ENOTCONN) are let go, then the dataset is mounted if it is not.
 */
async function mountLive(runner: Runner, pool: { name: string; mountpoint: string }, dataset: string): Promise<string> {
  const ours = (await readMounts()).filter(
    (m) => m.source === pool.name || m.source.startsWith(`${pool.name}/`) || m.target === pool.mountpoint || m.target.startsWith(`${pool.mountpoint}/`),
  );
  for (const m of await staleMounts(ours)) await runner.run(['umount', '-l', m.target], { okExitCodes: [32] });
  const r = await runner.run(['zfs', 'get', '-H', '-o', 'value', 'mountpoint', dataset], { mutates: false });
  const path = r.stdout.trim();
  if (!path.startsWith('/') || runner.dryRun) return path;
  if ((await mountAt(path))?.source !== dataset) await runner.run(['zfs', 'mount', dataset], { okExitCodes: [1] });
  if ((await mountAt(path))?.source !== dataset) {
    throw new FailureError(`dataset ${dataset} is not mounted at ${path}`, {
      hint: `mount it with: ${shellCommand(['zfs', 'mount', dataset])} (and check nothing else is mounted at ${shellQuote(path)})`,
    });
  }
  return path;
}

/** ZFS through the zpool/zfs commands; works against kernel ZFS and zfs-fuse alike (no `zfs list -p` there). */
export const zfsDriver: StorageDriver = {
  name: 'zfs',
  caps: { cowClone: true, snapshots: true, sendReceive: true, devices: true, directory: false, overlayUpper: false },
  tools: ['zpool', 'zfs'],
  memberType: 'zfs_member',

  async ensurePool(spec: PoolSpec, runner: Runner): Promise<EnsureAction> {
    if ((await poolHealth(runner, spec.name)) !== null) {
      await mountLive(runner, spec, spec.name);
      return 'exists';
    }
    const sources = poolSources(spec);
    const probes = await probeSources(runner, sources);
    const ours = probes.filter((p) => p.signature?.type === zfsDriver.memberType && p.signature.label === spec.name);
    if (ours.length > 0) {
      const dirs = [...new Set(sources.map((s) => dirname(s)))];
      const scanArgs = dirs.flatMap((d) => ['-d', d]);
      const scan = await runner.run(['zpool', 'import', ...scanArgs], { mutates: false, okExitCodes: [1] });
      const listed = scan.stdout + scan.stderr;
      if (parseImportable(listed).includes(spec.name)) {
        // By the id these devices carry: another pool of the same name in the scanned folders cannot be taken for it.
        await runner.run(['zpool', 'import', ...scanArgs, listedId(listed, ours[0]!.signature!.uuid) ?? spec.name]);
        await mountLive(runner, spec, spec.name);
        return 'imported';
      }
    }
    refuseRemake(spec, probes, zfsDriver.memberType!);
    const forcing = checkForeign(probes, spec.force, spec.name);
    if (spec.loopFile && !probes[0]!.exists) await createLoopFile(runner, spec.loopFile);
    await runner.run(['zpool', 'create', ...(forcing ? ['-f'] : []), '-m', spec.mountpoint, spec.name, ...sources]);
    return 'created';
  },

  async poolStatus(record: PoolRecord, runner: Runner): Promise<PoolStatus> {
    // Both probes at once: status sits on the start-up path of `pool list`.
    const [health, r] = await Promise.all([
      poolHealth(runner, record.name),
      runner.run(['zfs', 'get', '-H', '-p', '-o', 'property,value', 'used,available,mountpoint', record.name], {
        mutates: false,
        okExitCodes: [1, 2],
      }),
    ]);
    if (health === null || r.exitCode !== 0) return missingStatus(record, health ?? 'MISSING');
    const props = parseZfsGet(r.stdout);
    const used = Number(props.get('used'));
    const free = Number(props.get('available'));
    return {
      ...missingStatus(record, health),
      online: health === 'ONLINE' || health === 'DEGRADED',
      sizeBytes: used + free,
      usedBytes: used,
      freeBytes: free,
      mountpoint: props.get('mountpoint') ?? record.mountpoint,
    };
  },

  async destroyPool(record: PoolRecord, runner: Runner): Promise<void> {
    // A dataset released a moment ago (etcd just stopped) can still read as busy.
    if ((await poolHealth(runner, record.name)) !== null) await runRetryingBusy(runner, ['zpool', 'destroy', '-f', record.name]);
    if (record.loopFile && (await pathExists(record.loopFile.path))) await runner.run(['rm', '-f', record.loopFile.path]);
  },

  async ensureVolume(record: PoolRecord, volume: string, runner: Runner): Promise<VolumeInfo> {
    const dataset = `${record.name}/${volume}`;
    await mountLive(runner, record, record.name);
    const probe = await runner.run(['zfs', 'get', '-H', '-o', 'value', 'mountpoint', dataset], { mutates: false, okExitCodes: [1] });
    if (probe.exitCode === 0) return { path: await mountLive(runner, record, dataset), created: false };
    await runner.run(['zfs', 'create', dataset]);
    if (runner.dryRun) return { path: `${record.mountpoint}/${volume}`, created: true };
    const r = await runner.run(['zfs', 'get', '-H', '-o', 'value', 'mountpoint', dataset], { mutates: false });
    return { path: r.stdout.trim(), created: true };
  },

  async removeVolume(record: PoolRecord, volume: string, runner: Runner): Promise<void> {
    const dataset = `${record.name}/${volume}`;
    const probe = await runner.run(['zfs', 'get', '-H', '-o', 'value', 'name', dataset], { mutates: false, okExitCodes: [1] });
    if (probe.exitCode === 0) await runRetryingBusy(runner, ['zfs', 'destroy', '-r', dataset]);
  },

  dots: (runner: Runner) => zfsDots(runner),
  transfer: (runner: Runner) => zfsTransfer(runner),
};
