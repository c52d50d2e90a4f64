import { mountAt, pathExists } from '../../mounts.js';
import type { Runner } from '../../runner.js';
import { checkForeign, createLoopFile, probeSources, THIN_POOL } from '../common.js';
import { lvmDots } from './dots.js';
import { lvmTransfer } from './transfer.js';
import { missingStatus, type EnsureAction, type PoolRecord, type PoolSpec, type PoolStatus, type StorageDriver, type VolumeInfo } from '../driver.js';

const VOLUME_SIZE = '1G';
/** LVM's exit code for "no such volume group / logical volume". */
const LVM_NOT_FOUND = 5;

export interface VgInfo {
  name: string;
  sizeBytes: number;
  freeBytes: number;
  attr: string;
}

/** Parses one line of `vgs --noheadings --units b --nosuffix --separator '|' -o vg_name,vg_size,vg_free,vg_attr`. */
export function parseVgs(text: string): VgInfo | null {
  const line = text.split('\n').find((l) => l.trim() !== '');
  if (!line) return null;
  const [name, size, free, attr] = line.trim().split('|');
  if (!name || size === undefined || free === undefined) return null;
  return { name, sizeBytes: Number(size), freeBytes: Number(free), attr: attr ?? '' };
}

async function vgInfo(runner: Runner, name: string): Promise<VgInfo | null> {
  const r = await runner.run(['vgs', '--noheadings', '--units', 'b', '--nosuffix', '--separator', '|', '-o', 'vg_name,vg_size,vg_free,vg_attr', name], {
    mutates: false,
    okExitCodes: [LVM_NOT_FOUND],
  });
  return r.exitCode === 0 ? parseVgs(r.stdout) : null;
}

async function lvAttr(runner: Runner, lv: string): Promise<string | null> {
  const r = await runner.run(['lvs', '--noheadings', '-o', 'lv_attr', lv], { mutates: false, okExitCodes: [LVM_NOT_FOUND] });
  return r.exitCode === 0 ? r.stdout.trim() : null;
}

function thinPoolArgv(vg: string): string[] {
  return ['lvcreate', '-y', '--type', 'thin-pool', '-l', '90%FREE', '-n', THIN_POOL, vg];
}

/** The loop device an image file is attached to, from `losetup -j FILE` ("/dev/loop3: [..]: (FILE)"). */
async function loopDeviceOf(runner: Runner, file: string): Promise<string | null> {
  const r = await runner.run(['losetup', '-j', file], { mutates: false });
  const m = /^(\/dev\/[^:\s]+):/m.exec(r.stdout);
  return m ? m[1]! : null;
}

async function attachLoop(runner: Runner, file: string): Promise<string> {
  const existing = await loopDeviceOf(runner, file);
  if (existing) return existing;
  const r = await runner.run(['losetup', '--find', '--show', file]);
  return r.planned ? `<loop device of ${file}>` : r.stdout.trim();
}

/** LVM: a volume group with one thin pool; volumes are thin LVs formatted ext4. */
export const lvmDriver: StorageDriver = {
  name: 'lvm',
  caps: { cowClone: true, snapshots: true, sendReceive: false, devices: true, directory: false, overlayUpper: true },
  tools: ['pvcreate', 'vgcreate', 'lvcreate', 'vgs', 'lvs', 'losetup'],
  memberType: null,

  async ensurePool(spec: PoolSpec, runner: Runner): Promise<EnsureAction> {
    const activate = async (): Promise<EnsureAction> => {
      const attr = await lvAttr(runner, `${spec.name}/${THIN_POOL}`);
      // An init cut short after vgcreate leaves the group without its thin pool: finish it.
      if (attr === null) {
        await runner.run(thinPoolArgv(spec.name));
        return 'created';
      }
      if (attr[4] === 'a') return 'exists';
      await runner.run(['vgchange', '-ay', spec.name]);
      return 'imported';
    };
    if (await vgInfo(runner, spec.name)) return activate();

    let sources = spec.devices;
    if (spec.loopFile) {
      const existed = await pathExists(spec.loopFile.path);
      if (existed) {
        const probe = await probeSources(runner, [spec.loopFile.path]);
        if (probe[0]?.signature?.type === 'LVM2_member') {
          const attached = (await loopDeviceOf(runner, spec.loopFile.path)) !== null;
          const dev = await attachLoop(runner, spec.loopFile.path);
          // Under --dry-run the attach is only planned, so the group cannot be seen: plan the import it would be.
          if (runner.dryRun && !attached) {
            await runner.mkdirp(spec.mountpoint);
            await runner.run(['vgchange', '-ay', spec.name]);
            return 'imported';
          }
          if (await vgInfo(runner, spec.name)) {
            await runner.mkdirp(spec.mountpoint);
            return activate().then(() => 'imported');
          }
          // Another group's PV: do not leave a loop device behind when refusing it.
          if (!spec.force && !attached) await runner.run(['losetup', '-d', dev]);
        }
        checkForeign(probe, spec.force, spec.name);
      } else {
        await createLoopFile(runner, spec.loopFile);
      }
      sources = [await attachLoop(runner, spec.loopFile.path)];
    }
    const forcing = spec.loopFile ? spec.force : checkForeign(await probeSources(runner, sources), spec.force, spec.name);
    await runner.run(['pvcreate', ...(forcing ? ['-ff', '-y'] : []), ...sources]);
    await runner.run(['vgcreate', spec.name, ...sources]);
    await runner.run(thinPoolArgv(spec.name));
    await runner.mkdirp(spec.mountpoint);
    return 'created';
  },

  async poolStatus(record: PoolRecord, runner: Runner): Promise<PoolStatus> {
    const vg = await vgInfo(runner, record.name);
    if (!vg) return missingStatus(record);
    const health = vg.attr[3] === 'p' ? 'DEGRADED' : 'ONLINE';
    return {
      ...missingStatus(record, health),
      online: true,
      sizeBytes: vg.sizeBytes,
      usedBytes: vg.sizeBytes - vg.freeBytes,
      freeBytes: vg.freeBytes,
    };
  },

  async destroyPool(record: PoolRecord, runner: Runner): Promise<void> {
    const loopDev = record.loopFile && (await pathExists(record.loopFile.path)) ? await loopDeviceOf(runner, record.loopFile.path) : null;
    const pvs = record.loopFile ? (loopDev ? [loopDev] : []) : record.devices;
    if (await vgInfo(runner, record.name)) await runner.run(['vgremove', '-y', '-f', record.name]);
    if (pvs.length > 0) await runner.run(['pvremove', '-y', ...pvs]);
    if (loopDev) await runner.run(['losetup', '-d', loopDev]);
    if (record.loopFile && (await pathExists(record.loopFile.path))) await runner.run(['rm', '-f', record.loopFile.path]);
  },

  async ensureVolume(record: PoolRecord, volume: string, runner: Runner): Promise<VolumeInfo> {
    const lv = `${record.name}/${volume}`;
    const device = `/dev/${lv}`;
    const path = `${record.mountpoint}/${volume}`;
    const created = (await lvAttr(runner, lv)) === null;
    if (created) {
      await runner.run(['lvcreate', '-y', '-V', VOLUME_SIZE, '-T', `${record.name}/${THIN_POOL}`, '-n', volume]);
      await runner.run(['mkfs.ext4', '-q', device]);
    }
    if (!(await mountAt(path))) {
      await runner.mkdirp(path);
      await runner.run(['mount', device, path]);
    }
    return { path, created };
  },

  async removeVolume(record: PoolRecord, volume: string, runner: Runner): Promise<void> {
    const path = `${record.mountpoint}/${volume}`;
    if (await mountAt(path)) await runner.run(['umount', path]);
    if ((await lvAttr(runner, `${record.name}/${volume}`)) !== null) await runner.run(['lvremove', '-y', `${record.name}/${volume}`]);
  },

  dots: (runner: Runner) => lvmDots(runner),
  transfer: (runner: Runner) => lvmTransfer(runner),
};
