import { existsSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';

const ready = await zfsAnswers();
const run = integration('zfs', ready, 'zpool does not answer (install zfs-fuse; the test setup starts its daemon)');

const pools: string[] = [];
let tmp: TempDir;
let state: string;
beforeEach(async () => {
  tmp = await tempDir('knarr-zfs-');
  state = `${tmp.path}/state`;
});
afterEach(async () => {
  while (pools.length) await destroyPoolQuietly(pools.pop()!);
  await tmp.cleanup();
});

const pool = () => {
  const name = uniqueName('kz');
  pools.push(name);
  return name;
};
const zpoolNames = async () => (await execa('zpool', ['list', '-H', '-o', 'name'])).stdout.split('\n').filter(Boolean);

describe.skipIf(!run)('zfs pools on real zfs (zfs-fuse on sparse files)', () => {
  it('init on a loop file creates the pool; a re-run changes nothing', async () => {
    const name = pool();
    const loop = `${tmp.path}/p.img`;
    const args = ['--json', '--state-dir', state, 'pool', 'init', '--name', name, '--loop-file', loop, '--size', '256M'];
    const first = await knarr(args);
    expect(first.code, first.stderr).toBe(0);
    expect(first.json()).toMatchObject({ action: 'created', name, driver: 'zfs', health: 'ONLINE', online: true, loopFile: loop });
    expect(first.json().sizeBytes).toBeGreaterThan(200 * 1024 ** 2);
    expect(statSync(loop).size).toBe(256 * 1024 ** 2);
    expect(await zpoolNames()).toContain(name);

    const record = `${state}/pools/${name}.json`;
    const before = { record: readFileSync(record, 'utf8'), loopMtime: statSync(loop).mtimeMs };
    const second = await knarr([...args.slice(0, 1), '-v', ...args.slice(1)]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.json().action).toBe('exists');
    // -v lists every outside command: a re-run only probes.
    const commands = second.stderr.split('\n').filter((l) => l.startsWith('+ '));
    expect(
      commands.every((l) => /^\+ (zpool list|zfs get)/.test(l)),
      commands.join('\n'),
    ).toBe(true);
    expect(readFileSync(record, 'utf8')).toBe(before.record);

    const status = await knarr(['--json', '--state-dir', state, 'pool', 'status', name]);
    expect(status.json()).toMatchObject({ name, health: 'ONLINE', mountpoint: `${state}/mnt/${name}` });
    expect(status.json().freeBytes).toBeGreaterThan(0);
  });

  it('an exported pool is imported, with its data', async () => {
    const name = pool();
    const loop = `${tmp.path}/p.img`;
    const args = ['--json', '--state-dir', state, 'pool', 'init', '--name', name, '--loop-file', loop, '--size', '128M'];
    expect((await knarr(args)).code).toBe(0);
    writeFileSync(`${state}/mnt/${name}/kept.txt`, 'survives export');
    await execa('zpool', ['export', name]);
    expect(await zpoolNames()).not.toContain(name);

    const again = await knarr(args);
    expect(again.code, again.stderr).toBe(0);
    expect(again.json().action).toBe('imported');
    expect(readFileSync(`${state}/mnt/${name}/kept.txt`, 'utf8')).toBe('survives export');
  });

  it('a fresh state dir finds the pool already on the devices (the reboot case)', async () => {
    const name = pool();
    const devs = [`${tmp.path}/d0.img`, `${tmp.path}/d1.img`];
    for (const d of devs) await execa('truncate', ['-s', '128M', d]);
    const first = await knarr(['--json', '--state-dir', state, 'pool', 'init', '--name', name, '--device', devs.join(',')]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.json()).toMatchObject({ action: 'created', devices: devs });
    await execa('zpool', ['export', name]);
    const other = await knarr(['--json', '--state-dir', `${tmp.path}/state2`, 'pool', 'init', '--name', name, '--device', devs.join(',')]);
    expect(other.code, other.stderr).toBe(0);
    expect(other.json().action).toBe('imported');
  });

  it('a device holding another filesystem is refused unless --force', async () => {
    const name = pool();
    const dev = `${tmp.path}/ext4.img`;
    await execa('truncate', ['-s', '128M', dev]);
    await execa('mkfs.ext4', ['-q', '-F', dev]);
    const refused = await knarr(['--state-dir', state, 'pool', 'init', '--name', name, '--device', dev]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain(`refusing to create pool ${name}: ${dev} holds ext4`);
    expect(await zpoolNames()).not.toContain(name);
    expect((await execa('blkid', ['-p', '-o', 'value', '-s', 'TYPE', dev])).stdout).toBe('ext4');
    expect(existsSync(`${state}/pools/${name}.json`)).toBe(false);

    const forced = await knarr(['--json', '--state-dir', state, 'pool', 'init', '--name', name, '--device', dev, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.json().action).toBe('created');
  });

  it('--dry-run prints the zpool commands and creates nothing', async () => {
    const name = uniqueName('kz');
    const r = await knarr(['--dry-run', '--state-dir', state, 'pool', 'init', '--name', name, '--driver', 'zfs', '--device', '/dev/sdz']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`zpool create -m ${state}/mnt/${name} ${name} /dev/sdz\n`);
    expect(r.stderr).toMatch(/warning: \/dev\/sdz does not exist on this host/);
    expect(existsSync(state)).toBe(false);

    const loop = `${tmp.path}/dry.img`;
    const l = await knarr(['--dry-run', '--state-dir', state, 'pool', 'init', '--name', name, '--loop-file', loop, '--size', '1G']);
    expect(l.stdout.split('\n').filter(Boolean)).toEqual([
      `mkdir -p ${tmp.path}`,
      `truncate -s 1073741824 ${loop}`,
      `zpool create -m ${state}/mnt/${name} ${name} ${loop}`,
    ]);
    expect(existsSync(loop)).toBe(false);
    expect(await zpoolNames()).not.toContain(name);
  });

  it('destroy needs --yes, then removes the pool, its loop file and its record', async () => {
    const name = pool();
    const loop = `${tmp.path}/p.img`;
    expect((await knarr(['--state-dir', state, 'pool', 'init', '--name', name, '--loop-file', loop, '--size', '128M'])).code).toBe(0);
    const refused = await knarr(['--state-dir', state, 'pool', 'destroy', name]);
    expect(refused.code).toBe(2);
    expect(await zpoolNames()).toContain(name);
    const plan = await knarr(['--dry-run', '--state-dir', state, 'pool', 'destroy', name]);
    expect(plan.stdout).toBe(`zpool destroy -f ${name}\nrm -f ${loop}\n`);
    expect(await zpoolNames()).toContain(name);
    const done = await knarr(['--state-dir', state, 'pool', 'destroy', name, '--yes']);
    expect(done.code, done.stderr).toBe(0);
    expect(await zpoolNames()).not.toContain(name);
    expect(existsSync(loop)).toBe(false);
    expect(existsSync(`${state}/pools/${name}.json`)).toBe(false);
  });
});
