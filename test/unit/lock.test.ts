import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { tryLock } from '../../src/host/lock.js';

describe('the host-local lock of an operation', () => {
  const dir = mkdtempSync(`${tmpdir()}/knarr-lock-`);
  afterEach(() => rmSync(`${dir}/op.lock`, { force: true }));

  it('is held once; released, it can be taken again', async () => {
    const release = await tryLock(`${dir}/op.lock`);
    expect(release).not.toBeNull();
    expect(readFileSync(`${dir}/op.lock`, 'utf8')).toBe(String(process.pid));
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
