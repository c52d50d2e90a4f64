import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CommitRecord } from '../../core/dots.js';
import { ConflictError, ExternalCommandError, NoSpaceError } from '../../core/errors.js';
import { writeJsonAtomic } from '../local-state.js';
import { mountAt, onlyEmptyFolders, pathExists, probeSignature, type Signature } from '../mounts.js';
import type { Runner } from '../runner.js';
import { notCarrying } from '../../core/pool.js';
import { shellCommand } from '../../core/shell.js';
import type { LoopFileSpec, PoolSpec } from './driver.js';

/** Creates a sparse image file (and its folder); shown as `truncate -s` under --dry-run. */
export async function createLoopFile(runner: Runner, loop: LoopFileSpec): Promise<void> {
  await runner.mkdirp(dirname(loop.path));
  await runner.run(['truncate', '-s', String(loop.sizeBytes), loop.path]);
}

/** Folder (zfs: dataset) under a pool's mountpoint that holds its dots. */
export const DOTS_DIR = 'knarr-dots';

/** Name of the thin pool in an lvm pool's volume group. */
export const THIN_POOL = 'knarr-thin';

/** Folders directly under path (subdots of a branch filesystem); none when it is absent. */
export async function subdirsOf(path: string): Promise<string[]> {
  try {
    return (await readdir(path, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
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
    hint:
      `device names can change between boots: see which devices hold it with ${shellCommand(['blkid', '-p', ...spec.devices])} (or lsblk -f) and ` +
      `give those; nothing was formatted`,
  });
}

/** Refuses to format over another filesystem or pool unless --force; returns true when forcing over data. */
export function checkForeign(probes: SourceProbe[], force: boolean, pool: string): boolean {
  const foreign = probes.filter((p) => p.signature !== null);
  if (foreign.length === 0) return false;
  if (force) return true;
  const what = foreign.map((p) => `${p.path} holds ${p.signature!.type}${p.signature!.label ? ` "${p.signature!.label}"` : ''}`).join('; ');
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

/** An error that says the filesystem or pool is full: ENOSPC from node, or a tool's "No space left" / zfs's "out of space". */
export function isNoSpace(e: unknown): boolean {
  if ((e as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC') return true;
  return e instanceof ExternalCommandError && /no space left|out of space|ENOSPC/i.test(e.stderr);
}

/** Runs fn; a full pool comes out as a clear error naming it (exit 5), anything else as it was. */
export function spaceGuard<T>(pool: string, fn: () => Promise<T>): Promise<T> {
  return spaceGuardOf(`pool ${pool}`, `remove files, old commits or dots; see knarr pool status ${pool}`, fn);
}

/** spaceGuard for any place: `what` is named in the error, `how` says how to free space there. */
export async function spaceGuardOf<T>(what: string, how: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!isNoSpace(e)) throw e;
    throw new NoSpaceError(`${what} is out of space: ${(e as Error).message.split('\n')[0]}`, {
      hint: `free space on it (${how}) and run the command again; nothing of this try was kept`,
      cause: e,
    });
  }
}

/**
 * Clears a branch's mount path while its filesystem is away, so it can be mounted there again:
 * empty folders (a mkdir -p into the unmounted path) go; anything else is moved aside, never deleted.
 * Returns where it was moved, or null.
 */
export async function clearMountPath(runner: Runner, path: string): Promise<string | null> {
  if (!(await pathExists(path)) || (await mountAt(path))) return null;
  if (await onlyEmptyFolders(path)) {
    await runner.run(['rm', '-r', '--one-file-system', path]);
    return null;
  }
  const aside = `${dirname(path)}/.${basename(path)}.lost-${Date.now().toString(36)}`;
  await runner.run(['mv', '-T', path, aside]);
  return aside;
}

/**
 * Writes a commit's record at path, knarr's own bookkeeping (--dry-run leaves it out). A snapshot without its record
 * would pin its blocks unseen (a full pool stays full): when the write fails, dropSnapshot removes it too.
 */
export async function writeCommitRecord(runner: Runner, path: string, commit: CommitRecord, dropSnapshot: () => Promise<void>): Promise<void> {
  if (runner.dryRun) return;
  await writeJsonAtomic(path, commit).catch(async (e) => {
    await dropSnapshot();
    throw e;
  });
}

/** The commit records a tree or lvm dot keeps in dir (its .knarr/commits); none when dir is absent. */
export async function readCommitRecords(dir: string): Promise<CommitRecord[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return Promise.all(names.filter((n) => n.endsWith('.json')).map(async (n) => JSON.parse(await readFile(`${dir}/${n}`, 'utf8')) as CommitRecord));
}
