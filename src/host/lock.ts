import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/** A live knarr process, not a recycled pid of something else. */
export function knarrAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('knarr');
  } catch {
    return false;
  }
}

/**
 * An exclusive lock between this host's knarr processes: a file holding the owner's pid, made with
 * O_EXCL. One whose owner is gone is taken over. Returns the release function, or null when a live
 * process holds it.
 */
export async function tryLock(path: string): Promise<(() => Promise<void>) | null> {
  await mkdir(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => rm(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (owner === process.pid || (owner > 0 && knarrAlive(owner))) return null;
      // Its owner died holding it (a crash, kill -9): take it over.
      await rm(path, { force: true });
    }
  }
  return null;
}
