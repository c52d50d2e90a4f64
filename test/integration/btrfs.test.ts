import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { kernelMounts, type Mount } from '../harness/mounts.js';

const SIZE = 256 * 1024 * 1024;

function kernelHasBtrfs(): boolean {
  try {
    return /\bbtrfs$/m.test(readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
}

const ok = integration(
  'btrfs',
  haveTools('mkfs.btrfs', 'losetup', 'blkid') && kernelHasBtrfs() && existsSync('/dev/loop-control'),
  'needs mkfs.btrfs (btrfs-progs), btrfs in /proc/filesystems and /dev/loop-control',
);

const mounts = kernelMounts;

function mountsAt(target: string): Mount[] {
  return mounts().filter((m) => m.target === target);
}

/** Loop devices whose backing file lies under dir (a deleted backing file still counts). */
async function loopsUnder(dir: string): Promise<string[]> {
  const r = await execa('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE'], { reject: false });
  if (r.exitCode !== 0 || !r.stdout.trim()) return [];
  const list = (JSON.parse(r.stdout) as { loopdevices: { name: string; 'back-file': string | null }[] }).loopdevices;
  return list.filter((l) => l['back-file']?.startsWith(`${dir}/`)).map((l) => l.name);
}

async function blkid(file: string): Promise<Record<string, string>> {
  const r = await execa('blkid', ['-p', '-o', 'export', file], { reject: false });
  return Object.fromEntries(
    r.stdout
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Unmounts (lazily, deepest first) and detaches whatever a test left under dir, so a failure leaks nothing. */
async function releaseUnder(dir: string): Promise<void> {
  const left = mounts()
    .filter((m) => m.target.startsWith(`${dir}/`))
    .sort((a, b) => b.target.length - a.target.length);
  for (const m of left) await execa('umount', ['-l', m.target], { reject: false });
  for (const dev of await loopsUnder(dir)) await execa('losetup', ['-d', dev], { reject: false });
}

describe.skipIf(!ok)('btrfs pools on loop files (real btrfs)', () => {
  const dirs: TempDir[] = [];
  let tmp: TempDir;
  let stateDir: string;
  let name: string;
  let img: string;
  let mountpoint: string;
  let record: string;

  beforeEach(async () => {
    tmp = await tempDir('knarr-btrfs-');
    dirs.push(tmp);
    stateDir = `${tmp.path}/state`;
    name = uniqueName('kb');
    img = `${tmp.path}/images/${name}.img`;
    mountpoint = `${stateDir}/mnt/${name}`;
    record = `${stateDir}/pools/${name}.json`;
  });

  afterEach(async () => {
    await releaseUnder(tmp.path);
    await tmp.cleanup();
    dirs.splice(dirs.indexOf(tmp), 1);
  });

  // Safety net for a directory whose afterEach failed half way (a cleanup is only called once: tmp hangs on a second).
  afterAll(async () => {
    for (const d of dirs) {
      await releaseUnder(d.path);
      await rm(d.path, { recursive: true, force: true });
    }
  });

  const cli = (...argv: string[]) => knarr(['--state-dir', stateDir, ...argv]);
  const init = (...extra: string[]) => cli('--json', 'pool', 'init', '--name', name, '--driver', 'btrfs', '--loop-file', img, '--size', '256M', ...extra);

  async function created(): Promise<void> {
    const r = await init();
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().action).toBe('created');
  }

  it('init creates a btrfs filesystem on a new sparse loop file and mounts it; status reports it ONLINE', async () => {
    const r = await init();
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ action: 'created', name, driver: 'btrfs', health: 'ONLINE', online: true, mountpoint, loopFile: img });

    expect(statSync(img).size).toBe(SIZE);
    expect(await blkid(img)).toMatchObject({ TYPE: 'btrfs', LABEL: name });
    const here = mountsAt(mountpoint);
    expect(here).toHaveLength(1);
    expect(here[0]!.fstype).toBe('btrfs');
    expect(await loopsUnder(tmp.path)).toEqual([here[0]!.source]);
    expect(JSON.parse(readFileSync(record, 'utf8'))).toMatchObject({ name, driver: 'btrfs', loopFile: { path: img, sizeBytes: SIZE }, mountpoint });

    const s = await cli('--json', 'pool', 'status', name);
    expect(s.code, s.stderr).toBe(0);
    const status = s.json();
    expect(status).toMatchObject({ name, driver: 'btrfs', health: 'ONLINE', online: true, mountpoint, loopFile: img });
    expect(status.sizeBytes).toBeGreaterThan(0);
    expect(status.sizeBytes).toBeLessThanOrEqual(SIZE);
    expect(status.freeBytes).toBeGreaterThan(0);
    expect(status.freeBytes).toBeLessThanOrEqual(status.sizeBytes);
  });

  it('init again reports "exists" and changes nothing: same mount, loop file and record untouched', async () => {
    await created();
    const mountBefore = mountsAt(mountpoint);
    const imgMtime = statSync(img).mtimeMs;
    const recordText = readFileSync(record, 'utf8');
    const recordMtime = statSync(record).mtimeMs;

    const again = await init();
    expect(again.code, again.stderr).toBe(0);
    expect(again.json()).toMatchObject({ action: 'exists', health: 'ONLINE' });
    // With only the name, the record supplies driver and loop file.
    const byName = await cli('--json', 'pool', 'init', '--name', name);
    expect(byName.code, byName.stderr).toBe(0);
    expect(byName.json()).toMatchObject({ action: 'exists', driver: 'btrfs', loopFile: img });

    expect(mountsAt(mountpoint)).toEqual(mountBefore);
    expect(statSync(img).mtimeMs).toBe(imgMtime);
    expect(readFileSync(record, 'utf8')).toBe(recordText);
    expect(statSync(record).mtimeMs).toBe(recordMtime);
    expect(await loopsUnder(tmp.path)).toHaveLength(1);
  });

  it('after an unmount behind its back, init imports the pool and the data is still there', async () => {
    await created();
    writeFileSync(`${mountpoint}/kept.txt`, 'written before the unmount\n');
    await execa('umount', [mountpoint]);
    expect(mountsAt(mountpoint)).toHaveLength(0);
    const down = await cli('--json', 'pool', 'status', name);
    expect(down.json()).toMatchObject({ health: 'UNMOUNTED', online: false });

    const r = await init();
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ action: 'imported', health: 'ONLINE', online: true });
    expect(mountsAt(mountpoint).map((m) => m.fstype)).toEqual(['btrfs']);
    expect(readFileSync(`${mountpoint}/kept.txt`, 'utf8')).toBe('written before the unmount\n');
  });

  it('refuses an image file that holds ext4 (exit 4, names the file, leaves it untouched); --force formats it', async () => {
    await mkdir(`${tmp.path}/images`);
    await execa('truncate', ['-s', String(SIZE), img]);
    await execa('mkfs.ext4', ['-q', '-F', img]);
    const before = { hash: await sha256(img), mtime: statSync(img).mtimeMs, sig: await blkid(img) };
    expect(before.sig.TYPE).toBe('ext4');

    const r = await cli('pool', 'init', '--name', name, '--driver', 'btrfs', '--loop-file', img, '--size', '256M');
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`${img} holds ext4`);
    expect(r.stderr).toMatch(/--force/);
    expect(await sha256(img)).toBe(before.hash);
    expect(statSync(img).mtimeMs).toBe(before.mtime);
    expect(existsSync(record)).toBe(false);
    expect(existsSync(mountpoint)).toBe(false);
    expect(await loopsUnder(tmp.path)).toEqual([]);

    const forced = await init('--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.json()).toMatchObject({ action: 'created', health: 'ONLINE' });
    expect(await blkid(img)).toMatchObject({ TYPE: 'btrfs', LABEL: name });
    expect(mountsAt(mountpoint).map((m) => m.fstype)).toEqual(['btrfs']);
  });

  it('refuses a second pool on the mountpoint of another btrfs pool', async () => {
    await created();
    const other = uniqueName('kb');
    const otherImg = `${tmp.path}/images/${other}.img`;
    const r = await cli('pool', 'init', '--name', other, '--driver', 'btrfs', '--loop-file', otherImg, '--size', '256M', '--mountpoint', mountpoint);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(mountpoint);
    expect(existsSync(`${stateDir}/pools/${other}.json`)).toBe(false);
    expect(existsSync(otherImg)).toBe(false);
    expect(mountsAt(mountpoint)).toHaveLength(1);
  });

  it('destroy needs --yes; --dry-run prints umount and rm -f; --yes unmounts and removes the loop file and the record', async () => {
    await created();
    const intact = () => {
      expect(mountsAt(mountpoint).map((m) => m.fstype)).toEqual(['btrfs']);
      expect(existsSync(img)).toBe(true);
      expect(existsSync(record)).toBe(true);
    };

    const refused = await cli('pool', 'destroy', name);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/pass --yes/);
    intact();

    const plan = await cli('--dry-run', 'pool', 'destroy', name);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout.split('\n').filter(Boolean)).toEqual([`umount ${mountpoint}`, `rm -f ${img}`]);
    intact();

    const r = await cli('--json', 'pool', 'destroy', name, '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toEqual({ pool: name, driver: 'btrfs', destroyed: true });
    expect(mountsAt(mountpoint)).toHaveLength(0);
    expect(existsSync(img)).toBe(false);
    expect(existsSync(record)).toBe(false);
    expect(await loopsUnder(tmp.path)).toEqual([]);
    expect((await cli('--json', 'pool', 'list')).json()).toEqual([]);
  });

  it('--dry-run init prints truncate, mkfs.btrfs, mkdir -p and mount, one a line, and creates nothing', async () => {
    const r = await cli('--dry-run', 'pool', 'init', '--name', name, '--driver', 'btrfs', '--loop-file', img, '--size', '256M');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean)).toEqual([
      `mkdir -p ${tmp.path}/images`,
      `truncate -s ${SIZE} ${img}`,
      `mkfs.btrfs -L ${name} ${img}`,
      `mkdir -p ${mountpoint}`,
      `mount -t btrfs -o loop ${img} ${mountpoint}`,
    ]);
    expect(r.stdout.endsWith('\n')).toBe(true);
    expect(existsSync(`${tmp.path}/images`)).toBe(false);
    expect(existsSync(stateDir)).toBe(false);
    expect(mounts().filter((m) => m.target.startsWith(tmp.path))).toEqual([]);
  });
});
