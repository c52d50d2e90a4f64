import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { InternalError } from '../core/errors.js';
import { statePaths } from '../core/paths.js';
import type { PoolRecord } from './storage/driver.js';

/** Writes JSON through a temporary file, fsync and rename, so neither a crash nor a power cut leaves half a record. */
export function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  return writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** Writes text through a temporary file of its own, fsync and rename: a reader sees the old file or the new one, never half of one. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    // A full disk fails the write: no empty temporary file is left behind.
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dirname(path));
}

/** Makes the renames and removals in dir durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Sync on purpose: these records are small, and reading them must not start the thread pool on the start-up path. */
export async function readJson<T>(path: string): Promise<T | null> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new InternalError(`${path} is not valid JSON`, { hint: 'move the file aside and re-run the command', cause: e });
  }
}

export async function readPoolRecord(stateDir: string, name: string): Promise<PoolRecord | null> {
  return readJson<PoolRecord>(statePaths(stateDir).poolRecord(name));
}

export async function listPoolRecords(stateDir: string): Promise<PoolRecord[]> {
  const dir = statePaths(stateDir).poolsDir;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const records = await Promise.all(
    names
      .filter((n) => n.endsWith('.json'))
      .sort()
      .map((n) => readPoolRecord(stateDir, n.slice(0, -'.json'.length))),
  );
  return records.filter((r): r is PoolRecord => r !== null);
}

export async function writePoolRecord(stateDir: string, record: PoolRecord): Promise<void> {
  await writeJsonAtomic(statePaths(stateDir).poolRecord(record.name), record);
}

export async function removePoolRecord(stateDir: string, name: string): Promise<void> {
  await rm(statePaths(stateDir).poolRecord(name), { force: true });
}
