import { ValidationError } from './errors.js';
import { validatePath, validatePoolName } from './names.js';
import { parseSize } from './size.js';

export const DRIVER_NAMES = ['zfs', 'btrfs', 'lvm', 'dir'] as const;
export type DriverName = (typeof DRIVER_NAMES)[number];

export interface LoopFileSpec {
  path: string;
  sizeBytes: number;
}

/** A validated request for a pool; every path is absolute. */
export interface PoolSpec {
  name: string;
  driver: DriverName;
  devices: string[];
  loopFile: LoopFileSpec | null;
  /** Directory of a dir pool. */
  path: string | null;
  mountpoint: string;
  force: boolean;
  /** This host made the pool (it has its record): it is imported, never made again on devices that do not carry it. */
  madeHere?: boolean;
  uuid?: string | null;
}

/** What knarr keeps about a pool on the host (the pool carries etcd, so it cannot live in etcd). */
export interface PoolRecord {
  name: string;
  driver: DriverName;
  devices: string[];
  loopFile: LoopFileSpec | null;
  path: string | null;
  mountpoint: string;
  createdAt: string;
  /** The pool's id as its devices carry it (see blkid); devices are found by it when their names change. */
  uuid?: string | null;
}

/** `pool init` flags as given; undefined where the operator gave nothing. */
export interface PoolInitInput {
  name?: string;
  driver?: string;
  devices: string[];
  loopFile?: string;
  size?: string;
  path?: string;
  mountpoint?: string;
  force: boolean;
}

export interface PoolDefaults {
  name: string;
  driver: string;
  size: string;
  loopFile: (pool: string) => string;
  mountpoint: (pool: string) => string;
}

export function parseDriverName(field: string, value: string): DriverName {
  if (!(DRIVER_NAMES as readonly string[]).includes(value)) {
    throw new ValidationError(field, `unknown driver ${JSON.stringify(value)}; use one of ${DRIVER_NAMES.join(', ')}`);
  }
  return value as DriverName;
}

function absolute(field: string, value: string, cwd: string): string {
  if (value.includes('\0')) throw new ValidationError(field, 'contains a NUL character');
  return validatePath(field, value.startsWith('/') ? value : `${cwd}/${value}`.replace(/\/\.\//g, '/'));
}

/** Device flags as given (repeated, comma-separated) to absolute paths, each once; field names the flag in errors. */
export function parseDeviceList(field: string, given: readonly string[], cwd: string): string[] {
  const devices = given.flatMap((d) => d.split(',')).map((d) => d.trim());
  devices.forEach((d) => {
    if (d === '') throw new ValidationError(field, 'an empty device path; give paths like /dev/sdb,/dev/sdc');
  });
  const devicePaths = devices.map((d) => absolute(field, d, cwd));
  if (new Set(devicePaths).size !== devicePaths.length) throw new ValidationError(field, 'a device is listed twice');
  return devicePaths;
}

/**
 * Turns `pool init` flags into a PoolSpec, or throws naming the field; pure, so bad input
 * is refused before anything on the host is touched. With no device, a loop file is the default.
 */
export function buildPoolSpec(input: PoolInitInput, defaults: PoolDefaults, cwd: string): PoolSpec {
  const name = validatePoolName('--name', input.name ?? defaults.name);
  const driver = parseDriverName('--driver', input.driver ?? defaults.driver);
  const devicePaths = parseDeviceList('--device', input.devices, cwd);
  const size = input.size !== undefined ? parseSize('--size', input.size) : undefined;

  if (driver === 'dir') {
    if (devicePaths.length > 0) throw new ValidationError('--device', 'the dir driver takes no devices; give --path DIR');
    if (input.loopFile !== undefined) throw new ValidationError('--loop-file', 'the dir driver takes no loop file; give --path DIR');
    const path = input.path !== undefined ? absolute('--path', input.path, cwd) : defaults.mountpoint(name);
    return { name, driver, devices: [], loopFile: null, path, mountpoint: path, force: input.force };
  }
  if (input.path !== undefined) throw new ValidationError('--path', `only the dir driver takes --path; give --device or --loop-file for ${driver}`);
  if (devicePaths.length > 0 && input.loopFile !== undefined) {
    throw new ValidationError('--loop-file', 'give either --device or --loop-file, not both');
  }
  if (devicePaths.length > 0 && size !== undefined) {
    throw new ValidationError('--size', 'a pool on devices takes their whole size; --size goes with --loop-file');
  }
  const mountpoint = input.mountpoint !== undefined ? absolute('--mountpoint', input.mountpoint, cwd) : defaults.mountpoint(name);
  if (devicePaths.length > 0) {
    return { name, driver, devices: devicePaths, loopFile: null, path: null, mountpoint, force: input.force };
  }
  const loopPath = input.loopFile !== undefined ? absolute('--loop-file', input.loopFile, cwd) : defaults.loopFile(name);
  const sizeBytes = size ?? parseSize('pool.size', defaults.size);
  return { name, driver, devices: [], loopFile: { path: loopPath, sizeBytes }, path: null, mountpoint, force: input.force };
}

/** Why an existing record and a new spec disagree, or null; a pool is never silently rebuilt. */
export function specConflict(record: PoolRecord, spec: PoolSpec, explicit: { driver: boolean; sources: boolean }): string | null {
  if (explicit.driver && record.driver !== spec.driver) return `it uses the ${record.driver} driver, not ${spec.driver}`;
  if (explicit.sources) {
    const had = record.loopFile ? `loop file ${record.loopFile.path}` : record.path ? `path ${record.path}` : `devices ${record.devices.join(',')}`;
    const want = spec.loopFile ? `loop file ${spec.loopFile.path}` : spec.path ? `path ${spec.path}` : `devices ${spec.devices.join(',')}`;
    if (had !== want) return `it is on ${had}, not ${want}`;
  }
  return null;
}

/** What a device holds, by its on-disk signature (blkid). */
export interface DeviceProbe {
  path: string;
  exists: boolean;
  signature: { type: string; label: string | null; uuid: string | null } | null;
}

/**
 * Why the devices do not all carry pool `name` (of the driver's member type, with the pool's id when
 * known, one id on all), or null when they do: a pool is found by its labels, whatever its devices are called.
 */
export function notCarrying(probes: readonly DeviceProbe[], memberType: string | null, name: string, uuid: string | null | undefined): string | null {
  if (memberType === null) return 'its driver does not find pools by their labels';
  const ids = new Set<string | null>();
  const wrong: string[] = [];
  for (const p of probes) {
    const s = p.signature;
    if (!p.exists) wrong.push(`${p.path} does not exist`);
    else if (s === null) wrong.push(`${p.path} holds nothing`);
    else if (s.type !== memberType || s.label !== name) wrong.push(`${p.path} holds ${s.type}${s.label ? ` "${s.label}"` : ''}`);
    else if (uuid && s.uuid !== uuid) wrong.push(`${p.path} holds another pool named ${name} (id ${s.uuid}, not ${uuid})`);
    else ids.add(s.uuid);
  }
  if (wrong.length > 0) return wrong.join('; ');
  return ids.size > 1 ? `the devices hold ${ids.size} different pools named ${name}` : null;
}
