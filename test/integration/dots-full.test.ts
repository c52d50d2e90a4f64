import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHost, type TestHost } from '../harness/hosts.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';

const bin = new URL('../../bin/knarr', import.meta.url).pathname;
const btrfsReady = integration(
  'dots on a full btrfs pool',
  haveTools('mkfs.btrfs', 'btrfs', 'etcd') && readFileSync('/proc/filesystems', 'utf8').includes('btrfs') && existsSync('/dev/loop-control'),
  'btrfs-progs, kernel btrfs, loop devices or etcd missing',
);
const zfsReady = integration('a zfs pull into a too-small pool', (await zfsAnswers()) && haveTools('etcd'), 'zpool does not answer or etcd is missing');

const spawn = (h: TestHost, argv: string[]) => execa(bin, [...h.binArgs, ...argv], { reject: false, env: { KNARR_CONFIG: undefined, CI: 'true' } });
const freeBytes = async (path: string) => Number((await execa('df', ['-B1', '--output=avail', path])).stdout.split('\n')[1]!.trim());

describe.skipIf(!btrfsReady)('a btrfs pool at 0 bytes free', () => {
  let tmp: TempDir;
  let host: TestHost;
  let small: string;
  beforeAll(async () => {
    tmp = await tempDir('knarr-full-btrfs-');
    // The store lives on the host's first pool; the dot fills a second, small one.
    host = await makeHost(tmp.path, 'btrfs', 'a');
    small = uniqueName('kfull');
    const init = await host.run(['pool', 'init', '--name', small, '--driver', 'btrfs', '--loop-file', `${tmp.path}/small.img`, '--size', '128M']);
    expect(init.code, init.stderr).toBe(0);
  });
  afterAll(async () => {
    await host?.run(['dot', 'rm', '--force', 'full']);
    await host?.run(['pool', 'destroy', small, '--yes']);
    await execa('umount', ['-l', `${host?.state}/mnt/${small}`], { reject: false });
    await host?.teardown();
    await tmp?.cleanup();
  });

  it('commit says the pool is full (exit 5, pool named) and leaves nothing behind; the space comes back when files go', async () => {
    expect((await host.run(['dot', 'init', 'full', '--pool', small])).code).toBe(0);
    const data = `${host.state}/mnt/${small}/knarr-dots/full/master/__default__`;
    const dotDir = `${host.state}/mnt/${small}/knarr-dots/full`;
    writeFileSync(`${data}/keep.txt`, 'kept');
    const first = await host.run(['--json', 'dot', 'commit', 'full', '-m', 'before']);
    expect(first.code, first.stderr).toBe(0);
    await execa('dd', ['if=/dev/urandom', `of=${data}/big`, 'bs=1M'], { reject: false });
    await execa('sync');
    expect(await freeBytes(data)).toBe(0);

    for (let i = 0; i < 3; i++) {
      const c = await spawn(host, ['dot', 'commit', 'full', '-m', `try ${i}`]);
      expect(c.exitCode, c.stderr).toBe(5);
      expect(c.stderr).toMatch(new RegExp(`pool ${small} is out of space`));
      expect(c.stderr).not.toMatch(/internal error|bug in knarr/);
    }
    // No orphan snapshot and no temporary file per try.
    expect(readdirSync(`${dotDir}/.commits`)).toEqual([first.json().id]);
    expect(readdirSync(`${dotDir}/.knarr/commits`)).toEqual([`${first.json().id}.json`]);
    expect((await host.run(['--json', 'dot', 'log', 'full'])).json()).toHaveLength(1);

    rmSync(`${data}/big`);
    let free = 0;
    // btrfs hands freed extents back at its next transaction commit.
    for (let i = 0; i < 100 && free < 30 * 1024 * 1024; i++) {
      await execa('btrfs', ['filesystem', 'sync', data]);
      await new Promise((r) => setTimeout(r, 200));
      free = await freeBytes(data);
    }
    expect(free).toBeGreaterThan(30 * 1024 * 1024);
    const after = await host.run(['dot', 'commit', 'full', '-m', 'after']);
    expect(after.code, after.stderr).toBe(0);
    const fsck = await host.run(['--json', 'dot', 'fsck']);
    expect(fsck.code, fsck.stdout).toBe(0);
  }, 120_000);

  it('fsck finds orphan snapshots, temporary files and staging leftovers; --repair removes them and frees their space', async () => {
    const dotDir = `${host.state}/mnt/${small}/knarr-dots/full`;
    const data = `${dotDir}/master/__default__`;
    writeFileSync(`${data}/pinned.bin`, randomBytes(20 * 1024 * 1024));
    // What a commit cut short between its snapshot and its record leaves, and a write cut short, and a pull cut short.
    await execa('btrfs', ['subvolume', 'snapshot', '-r', `${dotDir}/master`, `${dotDir}/.commits/00zzzzzzzz00000000`]);
    writeFileSync(`${dotDir}/.knarr/commits/00zzzzzzzz00000000.json.4242.tmp`, '');
    const staging = `${host.state}/mnt/${small}/knarr-incoming/ghost`;
    mkdirSync(`${staging}/.commits`, { recursive: true });
    await execa('btrfs', ['subvolume', 'create', `${staging}/master`]);
    rmSync(`${data}/pinned.bin`);

    const found = await host.run(['--json', 'dot', 'fsck']);
    expect(found.code).toBe(1);
    const problems = (found.json().findings as { dot: string; problem: string }[]).map((f) => `${f.dot} ${f.problem}`).sort();
    expect(problems).toEqual(['full orphan-snapshot', 'full temp-file', 'ghost staging-leftover']);
    const before = await freeBytes(data);

    const repaired = await host.run(['--json', 'dot', 'fsck', '--repair']);
    expect(repaired.code, repaired.stdout).toBe(0);
    expect(existsSync(`${dotDir}/.commits/00zzzzzzzz00000000`)).toBe(false);
    expect(readdirSync(`${dotDir}/.knarr/commits`).some((n) => n.endsWith('.tmp'))).toBe(false);
    expect(existsSync(staging)).toBe(false);
    expect((await host.run(['dot', 'fsck'])).code).toBe(0);
    let free = before;
    for (let i = 0; i < 100 && free < before + 15 * 1024 * 1024; i++) {
      await execa('btrfs', ['filesystem', 'sync', data]);
      await new Promise((r) => setTimeout(r, 200));
      free = await freeBytes(data);
    }
    // The orphan snapshot pinned the deleted 20 MB: gone with it.
    expect(free).toBeGreaterThan(before + 15 * 1024 * 1024);
  }, 120_000);

  it('a pull onto a dot on the full pool exits 5 and leaves no half-received snapshot', async () => {
    const src = uniqueName('src');
    expect((await host.run(['dot', 'init', src, '--pool', host.pool])).code).toBe(0);
    writeFileSync(`${host.dotPath(src)}/a.txt`, 'a');
    expect((await host.run(['dot', 'commit', src, '-m', 'a'])).code).toBe(0);
    const remote = `${tmp.path}/remote`;
    mkdirSync(remote, { recursive: true });
    expect((await host.run(['dot', 'push', src, `file://${remote}`])).code).toBe(0);
    const pulled = await host.run(['dot', 'pull', `file://${remote}/${src}`, '--as', 'copy', '--pool', small]);
    expect(pulled.code, pulled.stderr).toBe(0);
    writeFileSync(`${host.dotPath(src)}/big.bin`, randomBytes(80 * 1024 * 1024));
    const big = await host.run(['--json', 'dot', 'commit', src, '-m', 'big']);
    expect(big.code).toBe(0);
    expect((await host.run(['dot', 'push', src, `file://${remote}`])).code).toBe(0);
    const ff = await spawn(host, ['dot', 'pull', `file://${remote}/${src}`, '--as', 'copy']);
    expect(ff.exitCode, ff.stderr).toBe(5);
    expect(ff.stderr).toMatch(new RegExp(`pool ${small} is out of space`));
    expect(readdirSync(`${host.state}/mnt/${small}/knarr-dots/copy/.commits`)).not.toContain(big.json().id);
    expect((await host.run(['dot', 'fsck'])).code).toBe(0);
    expect((await host.run(['dot', 'rm', 'copy'])).code).toBe(0);
  }, 120_000);
});

describe.skipIf(!zfsReady)('a zfs pull into a pool too small for it', () => {
  let tmp: TempDir;
  let host: TestHost;
  let tiny: string;
  beforeAll(async () => {
    tmp = await tempDir('knarr-full-zfs-');
    host = await makeHost(tmp.path, 'zfs', 'a');
    tiny = uniqueName('ktiny');
    const init = await host.run(['pool', 'init', '--name', tiny, '--driver', 'zfs', '--loop-file', `${tmp.path}/tiny.img`, '--size', '64M']);
    expect(init.code, init.stderr).toBe(0);
  });
  afterAll(async () => {
    const destroyed = await host?.run(['pool', 'destroy', tiny, '--yes']);
    if (destroyed?.code !== 0) await destroyPoolQuietly(tiny);
    await host?.teardown();
    await tmp?.cleanup();
  });

  it('exits 5 naming the pool, leaves no staging, and a re-run fails the same clean way', async () => {
    const dot = uniqueName('big');
    expect((await host.run(['dot', 'init', dot, '--pool', host.pool])).code).toBe(0);
    writeFileSync(`${host.dotPath(dot)}/a.bin`, randomBytes(24 * 1024 * 1024));
    expect((await host.run(['dot', 'commit', dot, '-m', 'one'])).code).toBe(0);
    writeFileSync(`${host.dotPath(dot)}/b.bin`, randomBytes(64 * 1024 * 1024));
    expect((await host.run(['dot', 'commit', dot, '-m', 'two'])).code).toBe(0);
    const remote = `${tmp.path}/remote`;
    mkdirSync(remote);
    const push = await host.run(['dot', 'push', dot, `file://${remote}`]);
    expect(push.code, push.stderr).toBe(0);

    for (let i = 0; i < 2; i++) {
      const pull = await spawn(host, ['dot', 'pull', `file://${remote}/${dot}`, '--as', `${dot}x`, '--pool', tiny]);
      expect(pull.exitCode, pull.stderr).toBe(5);
      expect(pull.stderr).toMatch(new RegExp(`pool ${tiny} is out of space`));
      expect(pull.stderr).not.toMatch(/internal error|bug in knarr/);
      const left = await execa('zfs', ['list', '-H', '-o', 'name', '-r', `${tiny}/knarr-incoming`], { reject: false });
      expect(left.stdout.split('\n').filter((n) => n.includes(`${dot}x`))).toEqual([]);
    }
    expect((await host.run(['--json', 'dot', 'list'])).json().map((d: { name: string }) => d.name)).not.toContain(`${dot}x`);
    const fsck = await host.run(['--json', 'dot', 'fsck']);
    expect(fsck.code, fsck.stdout).toBe(0);
  }, 240_000);

  it('a push to a full file:// remote exits 5 naming the remote, leaves no partial stream, and keeps the manifest as it was', async () => {
    const dot = uniqueName('rf');
    expect((await host.run(['dot', 'init', dot, '--pool', host.pool])).code).toBe(0);
    writeFileSync(`${host.dotPath(dot)}/small.txt`, 'small');
    expect((await host.run(['dot', 'commit', dot, '-m', 'small'])).code).toBe(0);
    const remote = `${tmp.path}/usb`;
    mkdirSync(remote);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', remote]);
    try {
      const first = await host.run(['dot', 'push', dot, `file://${remote}`]);
      expect(first.code, first.stderr).toBe(0);
      const manifest = readFileSync(`${remote}/${dot}/manifest.json`, 'utf8');
      writeFileSync(`${host.dotPath(dot)}/big.bin`, randomBytes(4 * 1024 * 1024));
      expect((await host.run(['dot', 'commit', dot, '-m', 'big'])).code).toBe(0);
      const push = await spawn(host, ['dot', 'push', dot, `file://${remote}`]);
      expect(push.exitCode, push.stderr).toBe(5);
      expect(push.stderr).toMatch(new RegExp(`remote file://${remote} is out of space`));
      expect(push.stderr).not.toMatch(/internal error|bug in knarr/);
      expect(readdirSync(`${remote}/${dot}/streams`).filter((f) => f.endsWith('.partial'))).toEqual([]);
      expect(readdirSync(`${remote}/${dot}`).filter((f) => f.endsWith('.tmp') || f.endsWith('.lock'))).toEqual([]);
      expect(readFileSync(`${remote}/${dot}/manifest.json`, 'utf8')).toBe(manifest);
    } finally {
      await execa('umount', ['-l', remote], { reject: false });
    }
  }, 120_000);

  it('staging a pull left behind is reported by fsck and reached by dot rm', async () => {
    await execa('zfs', ['create', '-p', `${tiny}/knarr-incoming/ghost/master`]);
    const found = await host.run(['--json', 'dot', 'fsck']);
    expect(found.code).toBe(1);
    expect(found.json().findings).toEqual([expect.objectContaining({ dot: 'ghost', problem: 'staging-leftover', repaired: false })]);
    const rm = await host.run(['dot', 'rm', 'ghost']);
    expect(rm.code, rm.stderr).toBe(0);
    expect((await execa('zfs', ['list', `${tiny}/knarr-incoming/ghost`], { reject: false })).exitCode).not.toBe(0);
    expect((await host.run(['dot', 'fsck'])).code).toBe(0);
    expect((await host.run(['dot', 'rm', 'ghost'])).code).toBe(3);
  }, 120_000);
});
