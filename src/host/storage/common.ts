import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError, ExternalCommandError } from '../../core/errors.js';
import { pathExists, probeSignature, type Signature } from '../mounts.js';
import type { Runner } from '../runner.js';
import { notCarrying } from '../../core/pool.js';
import { shellCommand } from '../../core/shell.js';
import type { LoopFileSpec, PoolSpec } from './driver.js';

/** Creates a sparse image file (and its folder); shown as `truncate -s` under --dry-run. */
export async function createLoopFile(runner: Runner, loop: LoopFileSpec): Promise<void> {
  await runner.mkdirp(dirname(loop.path));
  await runner.run(['truncate', '-s', String(loop.sizeBytes), loop.path]);
}

export interface SourceProbe {
  path: string;
  exists: boolean;
  signature: Signature | null;
}

export async function probeSources(runner: Runner, sources: string[]): Promise<SourceProbe[]> {
  return Promise.all(
    sources.map(async (path) => {
      const exists = await pathExists(path);
      return { path, exists, signature: exists ? await probeSignature(runner, path) : null };
    }),
  );
}

/**
 * A device pool this host made is imported, never made again: devices that no longer carry it were
 * renamed at boot, and formatting them would put an empty pool in its place (and maybe over other data).
 */
export function refuseRemake(spec: PoolSpec, probes: SourceProbe[], memberType: string): void {
  if (!spec.madeHere || spec.devices.length === 0) return;
  const why = notCarrying(probes, memberType, spec.name, spec.uuid) ?? 'the pool is not found on them';
  throw new ConflictError(`pool ${spec.name} was made on this host, but ${spec.devices.join(',')} do not carry it: ${why}`, {
    hint: `device names can change between boots: see which devices hold it with ${shellCommand(['blkid', '-p', ...spec.devices])} (or lsblk -f) and give those; nothing was formatted`,
  });
}

/** Refuses to format over another filesystem or pool unless --force; returns true when forcing over data. */
export function checkForeign(probes: SourceProbe[], force: boolean, pool: string): boolean {
  const foreign = probes.filter((p) => p.signature !== null);
  if (foreign.length === 0) return false;
  if (force) return true;
  const what = foreign
    .map((p) => `${p.path} holds ${p.signature!.type}${p.signature!.label ? ` "${p.signature!.label}"` : ''}`)
    .join('; ');
  throw new ConflictError(`refusing to create pool ${pool}: ${what}`, {
    hint: 'its data would be lost; pass --force to overwrite it, or choose another device',
  });
}

/** Runs a destroy that a just-released mount can make fail as "busy" for a moment; retries for up to 5 s. */
export async function runRetryingBusy(runner: Runner, argv: string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await runner.run(argv);
      return;
    } catch (e) {
      if (!(e instanceof ExternalCommandError) || !/busy/.test(e.stderr) || attempt >= 20) throw e;
      await sleep(250);
    }
  }
}
