import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireLock, holderAlive, tryLock, tryLockFile } from '../../src/host/lock.js';
import { ConflictError } from '../../src/core/errors.js';

describe('the host-local lock of an operation', () => {
  const dir = mkdtempSync(`${tmpdir()}/knarr-lock-`);
  afterEach(() => rmSync(`${dir}/op.lock`, { force: true }));

  it('is held once; released, it can be taken again', async () => {
    const release = await tryLock(`${dir}/op.lock`);
    expect(release).not.toBeNull();
    expect(readFileSync(`${dir}/op.lock`, 'utf8').split('\n')[0]).toBe(String(process.pid));
    expect(await tryLock(`${dir}/op.lock`)).toBeNull();
    await release!();
    expect(existsSync(`${dir}/op.lock`)).toBe(false);
    expect(await tryLock(`${dir}/op.lock`)).not.toBeNull();
  });

  it('is taken over from an owner that died, not from a live knarr process', async () => {
    const gone = await execa('true');
    writeFileSync(`${dir}/op.lock`, String(gone.pid));
    expect(await tryLock(`${dir}/op.lock`)).not.toBeNull();
    rmSync(`${dir}/op.lock`);
    const live = execa('node', ['-e', 'setTimeout(() => {}, 30000)', 'knarr'], { reject: false });
    try {
      writeFileSync(`${dir}/op.lock`, String(live.pid));
      expect(await tryLock(`${dir}/op.lock`)).toBeNull();
    } finally {
      live.kill('SIGKILL');
      await live;
    }
  });
});

describe('a lock that waits, and its stale holders', () => {
  const dir = mkdtempSync(`${tmpdir()}/knarr-lock-wait-`);
  const opts = (wait: boolean, told: string[] = []) => ({
    what: 'test',
    stale: (h: { pid: number; host: string | null; what: string | null; ageMs: number }) => !holderAlive(h),
    wait,
    busy: (h: { pid: number }) => new ConflictError(`held by ${h.pid}`),
    onWait: (h: { what: string | null }) => void told.push(h.what ?? ''),
    signal: new AbortController().signal,
  });

  it('a second taker fails at once without waiting, or waits (told once) until the first lets go', async () => {
    const path = `${dir}/w.lock`;
    const release = await acquireLock(path, opts(false));
    await expect(acquireLock(path, opts(false))).rejects.toThrow(/held by/);
    const told: string[] = [];
    let second = false;
    const waiting = acquireLock(path, opts(true, told)).then((r) => ((second = true), r));
    await new Promise((r) => setTimeout(r, 300));
    expect(second).toBe(false);
    expect(told).toEqual(['test']);
    await release();
    await (await waiting)();
    expect(existsSync(path)).toBe(false);
  });

  it('many takers of a lock whose holder died: exactly one gets it', async () => {
    const path = `${dir}/s.lock`;
    const child = execa('true');
    const gone = child.pid!;
    await child;
    writeFileSync(path, `${gone}\n\nold\n`);
    const tries = await Promise.all(Array.from({ length: 8 }, () => tryLockFile(path, [String(process.pid), '', 'x'], (h) => h.pid === gone)));
    expect(tries.filter((t) => 'release' in t)).toHaveLength(1);
  });

  it('a lock taken in an earlier boot is stale even when its pid is alive now, and whatever the hostname was then', async () => {
    const path = `${dir}/b.lock`;
    writeFileSync(path, `${process.pid}\nold-name\ndot commit\n00000000-0000-0000-0000-000000000000\n`);
    const release = await tryLock(path);
    expect(release).not.toBeNull();
    await release!();
    const live = execa('node', ['-e', 'setTimeout(() => {}, 30000)', 'knarr'], { reject: false });
    try {
      writeFileSync(path, `${live.pid}\nold-name\ndot commit\n${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}\n`);
      expect(await tryLock(path)).toBeNull();
    } finally {
      live.kill('SIGKILL');
      await live;
    }
  });

  it('a release does not remove a lock that another holder took over meanwhile', async () => {
    const path = `${dir}/r.lock`;
    const got = await tryLockFile(path, ['1', '', 'a'], () => true);
    expect('release' in got).toBe(true);
    const other = await tryLockFile(path, ['2', '', 'b'], () => true);
    expect('release' in other).toBe(true);
    if ('release' in got) await got.release();
    expect(readFileSync(path, 'utf8')).toBe('2\n\nb\n');
  });
});
