import { ConflictError, ValidationError } from '../../core/errors.js';
import { statePaths } from '../../core/paths.js';
import { buildPoolSpec, specConflict, type PoolRecord, type PoolSpec } from '../../core/pool.js';
import { listPoolRecords, readPoolRecord, writePoolRecord } from '../../host/local-state.js';
import { pathExists } from '../../host/mounts.js';
import { optBool, optList, optString, type Handler } from '../types.js';
import { poolFields } from './view.js';

function specFromRecord(record: PoolRecord, force: boolean): PoolSpec {
  return { ...record, force };
}

function sourcesOf(p: PoolSpec | PoolRecord): string[] {
  return p.loopFile ? [p.loopFile.path] : p.path ? [p.path] : p.devices;
}

/** `knarr pool init`: create, import or reuse a pool; idempotent. */
export const poolInit: Handler = async ({ opts }, ctx) => {
  const paths = statePaths(ctx.config.stateDir);
  const given = {
    name: optString(opts, 'name'),
    driver: optString(opts, 'driver'),
    devices: optList(opts, 'device'),
    loopFile: optString(opts, 'loopFile'),
    size: optString(opts, 'size'),
    path: optString(opts, 'path'),
    mountpoint: optString(opts, 'mountpoint'),
    force: optBool(opts, 'force'),
  };
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
  if (record) {
    const why = specConflict(record, spec, { driver: given.driver !== undefined, sources: explicitSources });
    if (why) {
      throw new ConflictError(`pool ${spec.name} already exists on this host and ${why}`, {
        hint: `choose another --name, or remove it first with: knarr pool destroy ${spec.name} --yes`,
      });
    }
    if (given.size !== undefined && record.loopFile && spec.loopFile && record.loopFile.sizeBytes !== spec.loopFile.sizeBytes) {
      ctx.events.warn(`pool ${spec.name} exists; its loop file keeps its size (--size is not applied to an existing pool)`);
    }
  } else {
    const mine = new Set(sourcesOf(spec));
    const clash = (await listPoolRecords(ctx.config.stateDir)).find((r) => sourcesOf(r).some((s) => mine.has(s)));
    if (clash) {
      throw new ConflictError(`pool ${clash.name} already uses ${sourcesOf(clash).filter((s) => mine.has(s)).join(', ')}`, {
        hint: 'give each pool its own devices or loop file',
      });
    }
  }

  const effective = record && !explicitSources ? specFromRecord(record, spec.force) : spec;
  const driver = ctx.drivers[effective.driver];
  ctx.events.step(`pool ${effective.name}: checking ${effective.driver} pool`);
  const action = await driver.ensurePool(effective, ctx.runner);
  ctx.events.done();

  const newRecord: PoolRecord = record ?? {
    name: effective.name,
    driver: effective.driver,
    devices: effective.devices,
    loopFile: effective.loopFile,
    path: effective.path,
    mountpoint: effective.mountpoint,
    createdAt: new Date().toISOString(),
  };
  if (ctx.runner.dryRun) {
    return { data: { pool: effective.name, driver: effective.driver, action, dryRun: true } };
  }
  if (!record) await writePoolRecord(ctx.config.stateDir, newRecord);
  const status = await driver.poolStatus(newRecord, ctx.runner);
  return {
    data: { action, ...status },
    view: { kind: 'fields', fields: [['action', action], ...poolFields(status)] },
  };
};
