import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, open, readFile, rm, stat, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KnarrError } from '../core/errors.js';
import { InterruptedError } from '../core/errors.js';

/** A live knarr process, not a recycled pid of something else. */
export function knarrAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('knarr');
  } catch {
    return false;
  }
}

/** Who holds a lock file: its lines are pid, host, what the holder does and the boot it ran in; age is since its last refresh. */
export interface LockHolder {
  pid: number;
  host: string | null;
  what: string | null;
  boot: string | null;
  ageMs: number;
}

function parseHolder(text: string, ageMs: number): LockHolder {
  const [pid, host, what, boot] = text.split('\n');
  return { pid: Number(pid), host: host || null, what: what || null, boot: boot || null, ageMs };
}

/** This machine's boot: a lock taken in an earlier one is gone whatever its pid is now. */
function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

/** A holder on this machine (a host-local lock; the hostname may have changed since) is this process or a live knarr process of this boot. */
export function holderAlive(h: LockHolder): boolean {
  if (h.boot !== null && h.boot !== bootId()) return false;
  return h.pid === process.pid || knarrAlive(h.pid);
}

const BREAKER_STALE_MS = 10_000;

/** Removes a stale lock file only while it holds the text judged stale, so a fresh holder is never removed. False while another process breaks it. */
async function breakStale(path: string, text: string): Promise<boolean> {
  const breaker = `${path}.break`;
  let fh: FileHandle;
  try {
    fh = await open(breaker, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // Breaking takes milliseconds: a breaker this old was left by a crash.
    const st = await stat(breaker).catch(() => null);
    if (st && Date.now() - st.mtimeMs > BREAKER_STALE_MS) await rm(breaker, { force: true });
    return false;
  }
  try {
    if ((await readFile(path, 'utf8').catch(() => null)) === text) await rm(path, { force: true });
    return true;
  } finally {
    await fh.close();
    await rm(breaker, { force: true });
  }
}

export type LockAttempt = { release: () => Promise<void>; refresh: () => Promise<void> } | { holder: LockHolder };

/**
 * One try at a lock file. It appears whole (written aside, then hard-linked into place, which fails
 * when the lock exists, on NFS too); a holder that stale() judges gone is broken. Released, the file
 * goes only while it is still this holder's.
 */
export async function tryLockFile(path: string, owner: string[], stale: (h: LockHolder) => boolean): Promise<LockAttempt> {
  await mkdir(dirname(path), { recursive: true });
  const text = `${owner.join('\n')}\n`;
  const aside = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(aside, text, { mode: 0o600 });
  try {
    for (;;) {
      try {
        await link(aside, path);
        const mine = async () => (await readFile(path, 'utf8').catch(() => null)) === text;
        return {
          release: async () => void ((await mine()) && (await rm(path, { force: true }))),
          refresh: async () => void ((await mine()) && (await utimes(path, new Date(), new Date()).catch(() => undefined))),
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const [seen, st] = await Promise.all([readFile(path, 'utf8').catch(() => null), stat(path).catch(() => null)]);
      if (seen === null || st === null) continue;
      const holder = parseHolder(seen, Date.now() - st.mtimeMs);
      // Held, or being broken by another taker: the caller tries again later.
      if (!stale(holder) || !(await breakStale(path, seen))) return { holder };
    }
  } finally {
    await rm(aside, { force: true });
  }
}

/**
 * An exclusive lock between this host's knarr processes. One whose owner is gone is taken over.
 * Returns the release function, or null when a live process holds it.
 */
export async function tryLock(path: string): Promise<(() => Promise<void>) | null> {
  const got = await tryLockFile(path, [String(process.pid)], (h) => !holderAlive(h));
  return 'release' in got ? got.release : null;
}

export interface AcquireOptions {
  /** Who takes it: shown to whoever waits. */
  what: string;
  stale: (h: LockHolder) => boolean;
  /** false: fail at once with busy(holder) instead of waiting. */
  wait: boolean;
  busy: (h: LockHolder) => KnarrError;
  /** Told once, when the wait begins. */
  onWait: (h: LockHolder) => void;
  signal: AbortSignal;
  /** Touches the file this often while held, so its age tells a live holder from a lost one. */
  refreshMs?: number;
}

/** Takes the lock, waiting for its holder (or failing at once); resolves to the release function. */
export async function acquireLock(path: string, opts: AcquireOptions): Promise<() => Promise<void>> {
  const owner = [String(process.pid), hostname(), opts.what, bootId()];
  let told = false;
  for (let pause = 20; ; pause = Math.min(pause * 2, 250)) {
    if (opts.signal.aborted) throw new InterruptedError();
    const got = await tryLockFile(path, owner, opts.stale);
    if ('release' in got) {
      if (!opts.refreshMs) return got.release;
      const timer = setInterval(() => void got.refresh(), opts.refreshMs);
      timer.unref();
      return async () => {
        clearInterval(timer);
        await got.release();
      };
    }
    if (!opts.wait) throw opts.busy(got.holder);
    if (!told) opts.onWait(got.holder);
    told = true;
    await sleep(pause, undefined, { signal: opts.signal }).catch(() => undefined);
  }
}
