import { ConflictError, ValidationError } from '../../core/errors.js';
import { statePaths } from '../../core/paths.js';
import { buildPoolSpec, notCarrying, specConflict, type PoolInitInput, type PoolRecord, type PoolSpec } from '../../core/pool.js';
import { shellCommand } from '../../core/shell.js';
import { probeSources } from '../../host/storage/common.js';
import { poolSources, type EnsureAction, type PoolStatus } from '../../host/storage/driver.js';
import { listPoolRecords, readPoolRecord, writePoolRecord } from '../../host/local-state.js';
import { pathExists } from '../../host/mounts.js';
import type { CommandResult, Context } from '../types.js';
import { poolFields } from './view.js';

function specFromRecord(record: PoolRecord, force: boolean): PoolSpec {
  return { ...record, force };
}

function sourcesOf(p: PoolSpec | PoolRecord): string[] {
  return p.loopFile ? [p.loopFile.path] : p.path ? [p.path] : p.devices;
}

/** What pool init returns: the pool's status after it, or under --dry-run what it would do. */
export type PoolInitResult = ({ action: EnsureAction } & PoolStatus) | { pool: string; driver: string; action: EnsureAction; dryRun: true };

/** `knarr pool init`: create, import or reuse a pool; idempotent. */
export async function poolInit(given: PoolInitInput, ctx: Context): Promise<CommandResult<PoolInitResult>> {
  const paths = statePaths(ctx.config.stateDir);
  const spec = buildPoolSpec(
    given,
    {
      name: ctx.config.pool.name,
      driver: ctx.config.pool.driver,
      size: ctx.config.pool.size,
      loopFile: paths.defaultLoopFile,
      mountpoint: paths.poolMountpoint,
    },
    ctx.cwd,
  );

  for (const dev of spec.devices) {
    if (await pathExists(dev)) continue;
    if (!ctx.runner.dryRun) throw new ValidationError('--device', `${dev} does not exist; check the device path (lsblk lists them)`);
    ctx.events.warn(`${dev} does not exist on this host; the plan assumes it will`);
  }

  const record = await readPoolRecord(ctx.config.stateDir, spec.name);
  const explicitSources = given.devices.length > 0 || given.loopFile !== undefined || given.path !== undefined;
  // Devices come back under other names after a reboot: the pool is then found by its labels on the ones given.
  let moved = false;
  if (record) {
    const driverWhy = specConflict(record, spec, { driver: given.driver !== undefined, sources: false });
    if (driverWhy) {
      throw new ConflictError(`pool ${spec.name} already exists on this host and ${driverWhy}`, {
        hint: 'a pool keeps its driver: leave out --driver, or give another --name for a new pool',
      });
    }
    const why = specConflict(record, spec, { driver: false, sources: explicitSources });
    if (why) {
      const byLabel = record.devices.length > 0 && spec.devices.length > 0;
      const notHere = byLabel
        ? notCarrying(await probeSources(ctx.runner, spec.devices), ctx.drivers[record.driver].memberType, record.name, record.uuid)
        : null;
      if (!byLabel || notHere !== null) {
        throw new ConflictError(`pool ${spec.name} already exists on this host and ${why}${notHere ? `: ${notHere}` : ''}`, {
          hint: byLabel
            ? `device names can change between boots: see which devices hold pool ${spec.name} with ${shellCommand(['blkid', '-p', ...spec.devices])} ` +
              `(or lsblk -f) and give those, or another --name for a new pool`
            : `give the ${record.loopFile ? 'loop file' : record.path ? 'path' : 'devices'} it was made on, or another --name for a new pool`,
        });
      }
      moved = true;
    }
    if (given.size !== undefined && record.loopFile && spec.loopFile && record.loopFile.sizeBytes !== spec.loopFile.sizeBytes) {
      ctx.events.warn(`pool ${spec.name} exists; its loop file keeps its size (--size is not applied to an existing pool)`);
    }
  } else {
    const mine = new Set(sourcesOf(spec));
    const clash = (await listPoolRecords(ctx.config.stateDir)).find((r) => sourcesOf(r).some((s) => mine.has(s)));
    if (clash) {
      throw new ConflictError(
        `pool ${clash.name} already uses ${sourcesOf(clash)
          .filter((s) => mine.has(s))
          .join(', ')}`,
        {
          hint: 'give each pool its own devices or loop file',
        },
      );
    }
  }

  const chosen =
    record && moved ? { ...specFromRecord(record, spec.force), devices: spec.devices } : record && !explicitSources ? specFromRecord(record, spec.force) : spec;
  const effective: PoolSpec = { ...chosen, madeHere: record !== null, uuid: record?.uuid ?? null };
  const driver = ctx.drivers[effective.driver];
  ctx.events.step(`pool ${effective.name}: checking ${effective.driver} pool`);
  const action = await driver.ensurePool(effective, ctx.runner);
  ctx.events.done();

  let newRecord: PoolRecord = record ?? {
    name: effective.name,
    driver: effective.driver,
    devices: effective.devices,
    loopFile: effective.loopFile,
    path: effective.path,
    mountpoint: effective.mountpoint,
    createdAt: new Date().toISOString(),
  };
  if (moved) newRecord = { ...newRecord, devices: effective.devices };
  if (ctx.runner.dryRun) {
    return { data: { pool: effective.name, driver: effective.driver, action, dryRun: true } };
  }
  let status = await driver.poolStatus(newRecord, ctx.runner);
  // The pool says where it is mounted (a zfs pool made under another state directory keeps its mountpoint): dots are found there.
  if (status.online && status.mountpoint.startsWith('/') && status.mountpoint !== newRecord.mountpoint) {
    ctx.events.warn(
      `pool ${newRecord.name} is mounted ` +
        `at ${status.mountpoint}${given.mountpoint !== undefined ? `, not ${newRecord.mountpoint} as given` : ''}; knarr uses it there`,
    );
    newRecord = { ...newRecord, mountpoint: status.mountpoint };
    status = await driver.poolStatus(newRecord, ctx.runner);
  }
  if (!newRecord.uuid && driver.memberType !== null && poolSources(newRecord).length > 0) {
    // The id is a help for later boots, not a condition of this one: a device blkid finds ambivalent goes without.
    const [probe] = await probeSources(ctx.runner, poolSources(newRecord).slice(0, 1)).catch(() => []);
    if (probe?.signature?.type === driver.memberType) newRecord = { ...newRecord, uuid: probe.signature.uuid };
  }
  if (moved)
    ctx.events.warn(`pool ${newRecord.name} found on ${newRecord.devices.join(',')} (it was on ${record!.devices.join(',')}); its record now names them`);
  if (JSON.stringify(newRecord) !== JSON.stringify(record)) await writePoolRecord(ctx.config.stateDir, newRecord);
  return {
    data: { action, ...status },
    view: { kind: 'fields', fields: [['action', action], ...poolFields(status)] },
  };
}
