import { basename, dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError, ExternalCommandError } from '../../core/errors.js';
import { mountAt, onlyEmptyFolders, pathExists, probeSignature, type Signature } from '../mounts.js';
import type { Runner } from '../runner.js';
import type { LoopFileSpec } from './driver.js';

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
