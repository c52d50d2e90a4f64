#!/usr/bin/env node
// Recording stand-in for LVM and losetup: our kernels have no device-mapper, so tests check knarr at the argv level.
// Invoked through symlinks named after the tool; logs argv to $FAKE_LVM_LOG, keeps state in $FAKE_LVM_STATE.
import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, join } from 'node:path';

const tool = basename(process.argv[1]);
const args = process.argv.slice(2);
const logFile = process.env.FAKE_LVM_LOG;
const stateDir = process.env.FAKE_LVM_STATE;
if (!logFile || !stateDir) {
  process.stderr.write(`${tool} (fake): FAKE_LVM_LOG and FAKE_LVM_STATE must be set\n`);
  process.exit(3);
}
appendFileSync(logFile, `${JSON.stringify([tool, ...args])}\n`);
mkdirSync(stateDir, { recursive: true });

const EXTENT = 4 * 1024 * 1024;
const stateFile = join(stateDir, 'state.json');
/**
 * @type {{pvs: string[], vgs: Record<string, {pvs: string[], size: number, free: number, lvs: Record<string, string>}>,
 *   loops: Record<string, string>, mounts?: Record<string, string>}}
 */
const state = existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, 'utf8')) : { pvs: [], vgs: {}, loops: {} };
const save = () => writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`);

function fail(code, message) {
  process.stderr.write(`  ${message}\n`);
  process.exit(code);
}
function vgNotFound(name) {
  fail(5, `Volume group "${name}" not found\n  Cannot process volume group ${name}`);
}
/** Option values after a flag, e.g. opt('-n'). */
function opt(flag) {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}
/** Positional arguments: everything not a flag nor a flag's value. */
function positionals(flagsWithValue) {
  const out = [];
  for (let i = 0; i < args.length; i++) {
    if (flagsWithValue.includes(args[i])) i++;
    else if (!args[i].startsWith('-')) out.push(args[i]);
  }
  return out;
}
/** The file behind a device path: a loop device's backing file, else the path itself; null for a detached loop. */
function backing(dev) {
  const file = Object.entries(state.loops).find(([, d]) => d === dev)?.[0];
  if (file) return file;
  return /^\/dev\/loop\d+$/.test(dev) ? null : dev;
}
/** A device's size: a real file's length, as LVM would see the block device. */
function deviceSize(dev) {
  const file = backing(dev);
  if (!file || !existsSync(file)) fail(5, `No device found for ${dev}.`);
  return statSync(file).size;
}
/** A volume group is seen only while one of its PVs is (a loop device vanishes at reboot). */
function visibleVg(name) {
  const vg = state.vgs[name];
  return vg?.pvs.some((pv) => backing(pv) !== null && existsSync(backing(pv))) ? vg : undefined;
}

/** LVM2's label CRC (crc32, reflected, seed 0xf597a6cf, no final xor), as blkid checks it. */
function lvmCrc(buf) {
  let crc = 0xf597a6cf;
  for (const b of buf) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (crc & 1 ? 0xedb88320 : 0);
  }
  return crc >>> 0;
}
/** Writes (or with null wipes) the first MiB of a device's file; never a real block device. */
function writeHead(dev, label) {
  const file = backing(dev);
  if (!file || file.startsWith('/dev/')) fail(3, `fake-lvm refuses to write the real device ${dev}`);
  const head = Buffer.alloc(Math.min(1024 * 1024, statSync(file).size));
  if (label) {
    // A PV label in sector 1, enough for `blkid -p` to report TYPE=LVM2_member, as pvcreate leaves it.
    const sector = head.subarray(512, 1024);
    sector.write('LABELONE', 0, 'latin1');
    sector.writeBigUInt64LE(1n, 8);
    sector.writeUInt32LE(32, 20);
    sector.write('LVM2 001', 24, 'latin1');
    sector.write('fakefakefakefakefakefakefakefake', 32, 'latin1');
    sector.writeBigUInt64LE(BigInt(head.length), 64);
    sector.writeUInt32LE(lvmCrc(sector.subarray(20)), 16);
  }
  const fd = openSync(file, 'r+');
  writeSync(fd, head, 0, head.length, 0);
  closeSync(fd);
}

/*
 * Volumes hold data as directories under $FAKE_LVM_STATE/data/VG/LV. A mount moves the volume's files into the mount
 * point (what was there is kept aside and comes back at umount), an umount moves them back, a snapshot copies the
 * origin's files as they are now (from where it is mounted, else from its directory): enough to check what knarr
 * reads from and writes to volumes.
 */
const dataDir = (vg, lv) => join(stateDir, 'data', vg, lv);
const asideDir = (target) => join(stateDir, 'aside', Buffer.from(target).toString('hex'));
/** VG and LV of a /dev/VG/LV path, or null for anything else (a bind mount's source). */
function lvOfDev(dev) {
  const m = /^\/dev\/([^/]+)\/([^/]+)$/.exec(dev ?? '');
  return m && state.vgs[m[1]]?.lvs[m[2]] ? { vg: m[1], lv: m[2] } : null;
}
function moveEntries(from, to) {
  mkdirSync(to, { recursive: true });
  if (!existsSync(from)) return;
  for (const n of readdirSync(from)) renameSync(join(from, n), join(to, n));
}
/** Where the LV's files are now: its mount point while mounted, else its data directory. */
function filesOf(vg, lv) {
  const target = Object.entries(state.mounts ?? {}).find(([, src]) => src === `/dev/${vg}/${lv}`)?.[0];
  return target ?? dataDir(vg, lv);
}

switch (tool) {
  case 'pvcreate': {
    const devs = positionals([]);
    devs.forEach(deviceSize);
    for (const dev of devs) {
      writeHead(dev, true);
      if (!state.pvs.includes(dev)) state.pvs.push(dev);
      process.stdout.write(`  Physical volume "${dev}" successfully created.\n`);
    }
    break;
  }
  case 'vgcreate': {
    const [name, ...devs] = positionals([]);
    if (visibleVg(name)) fail(5, `A volume group called ${name} already exists.`);
    // One MiB of metadata per PV, the rest in whole extents.
    const size = devs.reduce((sum, d) => sum + Math.floor((deviceSize(d) - 1024 * 1024) / EXTENT) * EXTENT, 0);
    for (const d of devs) if (!state.pvs.includes(d)) state.pvs.push(d), writeHead(d, true);
    state.vgs[name] = { pvs: devs, size, free: size, lvs: {} };
    process.stdout.write(`  Volume group "${name}" successfully created\n`);
    break;
  }
  case 'lvcreate': {
    const thinOf = opt('-T');
    const vgName = (thinOf ?? positionals(['--type', '-l', '-n', '-V', '-L', '-T', '-p'])[0]).split('/')[0];
    const vg = visibleVg(vgName);
    if (!vg) vgNotFound(vgName);
    const lv = opt('-n');
    if (vg.lvs[lv]) fail(5, `Logical Volume "${lv}" already exists in volume group "${vgName}"`);
    if (args.includes('-s')) {
      // A thin snapshot of VG/LV; it skips activation until `lvchange -ay -K`.
      const [, origin] = positionals(['--type', '-l', '-n', '-V', '-L', '-T', '-p'])[0].split('/');
      if (!vg.lvs[origin]) fail(5, `Failed to find logical volume "${vgName}/${origin}"`);
      vg.lvs[lv] = opt('-p') === 'r' ? 'Vri---tz-k' : 'Vwi---tz-k';
      const from = filesOf(vgName, origin);
      mkdirSync(from, { recursive: true });
      mkdirSync(dataDir(vgName, lv), { recursive: true });
      execFileSync('cp', ['-a', `${from}/.`, dataDir(vgName, lv)]);
    } else if (opt('--type') === 'thin-pool') {
      const pct = /^(\d+)%FREE$/.exec(opt('-l') ?? '');
      const bytes = pct ? Math.floor((vg.free * Number(pct[1])) / 100 / EXTENT) * EXTENT : vg.free;
      vg.free -= bytes;
      vg.lvs[lv] = 'twi-a-tz--';
    } else {
      vg.lvs[lv] = 'Vwi-a-tz--';
      mkdirSync(dataDir(vgName, lv), { recursive: true });
    }
    process.stdout.write(`  Logical volume "${lv}" created.\n`);
    break;
  }
  case 'vgs': {
    const [name] = positionals(['--units', '--separator', '-o']);
    const vg = visibleVg(name);
    if (!vg) vgNotFound(name);
    const values = { vg_name: name, vg_size: vg.size, vg_free: vg.free, vg_attr: 'wz--n-' };
    const fields = (opt('-o') ?? 'vg_name,vg_size,vg_free,vg_attr').split(',');
    process.stdout.write(`  ${fields.map((f) => values[f]).join(opt('--separator') ?? ' ')}\n`);
    break;
  }
  case 'lvs': {
    const [path] = positionals(['-o']);
    const [vgName, lv] = path.split('/');
    const vg = visibleVg(vgName);
    if (!vg) vgNotFound(vgName);
    if (lv === undefined) {
      for (const name of Object.keys(vg.lvs)) process.stdout.write(`  ${name}\n`);
      break;
    }
    if (!vg.lvs[lv]) fail(5, `Failed to find logical volume "${path}"`);
    process.stdout.write(`  ${vg.lvs[lv]}\n`);
    break;
  }
  case 'vgchange': {
    const [name] = positionals([]);
    const vg = visibleVg(name);
    if (!vg) vgNotFound(name);
    if (!args.includes('-ay')) fail(3, 'fake vgchange only knows -ay');
    for (const lv of Object.keys(vg.lvs)) vg.lvs[lv] = `${vg.lvs[lv].slice(0, 4)}a${vg.lvs[lv].slice(5)}`;
    process.stdout.write(`  ${Object.keys(vg.lvs).length} logical volume(s) in volume group "${name}" now active\n`);
    break;
  }
  case 'vgremove': {
    const [name] = positionals([]);
    if (!visibleVg(name)) vgNotFound(name);
    delete state.vgs[name];
    rmSync(join(stateDir, 'data', name), { recursive: true, force: true });
    process.stdout.write(`  Volume group "${name}" successfully removed\n`);
    break;
  }
  case 'pvremove': {
    const devs = positionals([]);
    for (const dev of devs) {
      if (!state.pvs.includes(dev)) fail(5, `No PV found on device ${dev}.`);
      if (Object.values(state.vgs).some((vg) => vg.pvs.includes(dev))) fail(5, `PV ${dev} is used by a VG`);
    }
    for (const dev of devs) {
      writeHead(dev, false);
      state.pvs = state.pvs.filter((p) => p !== dev);
      process.stdout.write(`  Labels on physical volume "${dev}" successfully wiped.\n`);
    }
    break;
  }
  case 'losetup': {
    if (args[0] === '-j') {
      const dev = state.loops[args[1]];
      if (dev) process.stdout.write(`${dev}: [2049]:12 (${args[1]})\n`);
    } else if (args[0] === '--find' && args[1] === '--show') {
      const file = args[2];
      if (!existsSync(file)) fail(1, `losetup: ${file}: failed to set up loop device: No such file or directory`);
      const used = new Set(Object.values(state.loops));
      let n = 7;
      while (used.has(`/dev/loop${n}`)) n++;
      state.loops[file] = `/dev/loop${n}`;
      process.stdout.write(`/dev/loop${n}\n`);
    } else if (args[0] === '-d') {
      const file = Object.keys(state.loops).find((f) => state.loops[f] === args[1]);
      if (!file) fail(1, `losetup: ${args[1]}: detach failed: No such device or address`);
      delete state.loops[file];
    } else fail(3, `fake losetup does not know ${args.join(' ')}`);
    break;
  }
  case 'lvremove':
  case 'lvchange': {
    const [path] = positionals([]);
    const [vgName, lv] = path.split('/');
    const vg = visibleVg(vgName);
    if (!vg) vgNotFound(vgName);
    if (!vg.lvs[lv]) fail(5, `Failed to find logical volume "${path}"`);
    if (tool === 'lvremove') {
      if (Object.values(state.mounts ?? {}).includes(`/dev/${vgName}/${lv}`)) fail(5, `Logical volume ${path} contains a filesystem in use.`);
      delete vg.lvs[lv];
      rmSync(dataDir(vgName, lv), { recursive: true, force: true });
    } else if (args.includes('-ay')) vg.lvs[lv] = `${vg.lvs[lv].slice(0, 4)}a${vg.lvs[lv].slice(5)}`;
    break;
  }
  case 'lvrename': {
    const [vgName, from, to] = positionals([]);
    const vg = visibleVg(vgName);
    if (!vg) vgNotFound(vgName);
    if (!vg.lvs[from]) fail(5, `Existing logical volume "${from}" not found in volume group "${vgName}"`);
    if (vg.lvs[to]) fail(5, `Logical Volume "${to}" already exists in volume group "${vgName}"`);
    vg.lvs[to] = vg.lvs[from];
    delete vg.lvs[from];
    if (existsSync(dataDir(vgName, from))) renameSync(dataDir(vgName, from), dataDir(vgName, to));
    for (const [target, src] of Object.entries(state.mounts ?? {})) if (src === `/dev/${vgName}/${from}`) state.mounts[target] = `/dev/${vgName}/${to}`;
    break;
  }
  case 'mkfs.ext4':
    break;
  // Mounts are only remembered (no device-mapper, nothing to mount), so findmnt can answer as the kernel would.
  case 'mount': {
    const [source, target] = positionals(['-o', '-t']);
    if (source && target) {
      const lv = lvOfDev(source);
      if (lv) {
        if (Object.values(state.mounts ?? {}).includes(source)) fail(32, `mount: ${target}: ${source} already mounted`);
        if (!existsSync(target)) fail(32, `mount: ${target}: mount point does not exist.`);
        moveEntries(target, asideDir(target));
        moveEntries(dataDir(lv.vg, lv.lv), target);
      }
      (state.mounts ??= {})[target] = source;
    }
    break;
  }
  case 'umount': {
    const [target] = positionals([]);
    if (!state.mounts?.[target]) fail(32, `umount: ${target}: not mounted.`);
    const lv = lvOfDev(state.mounts[target]);
    if (lv) {
      moveEntries(target, dataDir(lv.vg, lv.lv));
      moveEntries(asideDir(target), target);
      rmSync(asideDir(target), { recursive: true, force: true });
    }
    delete state.mounts[target];
    break;
  }
  case 'findmnt': {
    const source = state.mounts?.[opt('--mountpoint')];
    if (!source) process.exit(1);
    process.stdout.write(`${source}\n`);
    break;
  }
  default:
    fail(3, `fake-lvm does not play ${tool}`);
}
save();
