import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

// Our kernels have no device-mapper: LVM is checked at the argv level with recording fake binaries.
const FAKE = new URL('../harness/fake-lvm/fake-lvm.mjs', import.meta.url).pathname;
const FAKED = [
  'pvcreate',
  'vgcreate',
  'lvcreate',
  'lvremove',
  'lvchange',
  'vgs',
  'lvs',
  'vgchange',
  'vgremove',
  'pvremove',
  'losetup',
  'mkfs.ext4',
  'mount',
  'umount',
  'findmnt',
];
const READS = new Set(['vgs', 'lvs', 'losetup', 'findmnt']);
const run = integration('dots on lvm (argv level)', haveTools('etcd'), 'etcd is not installed');

describe.skipIf(!run)('dots on an LVM pool, at the argv level', () => {
  let tmp: TempDir;
  let env: Record<string, string>;
  let base: string[];
  let log: string;
  let seen = 0;
  /** The changing commands run since the last call, as argv arrays. */
  const changes = (): string[][] => {
    const all = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as string[]);
    const fresh = all.slice(seen);
    seen = all.length;
    return fresh.filter((a) => !READS.has(a[0]!) && !(a[0] === 'mount' && a.length === 1));
  };
  const k = (argv: string[]) => knarr([...base, ...argv], { env });

  beforeAll(async () => {
    tmp = await tempDir('knarr-lvm-dots-');
    const bin = `${tmp.path}/bin`;
    mkdirSync(bin);
    for (const t of FAKED) symlinkSync(FAKE, `${bin}/${t}`);
    log = `${tmp.path}/argv.log`;
    writeFileSync(log, '');
    env = { PATH: `${bin}:${process.env.PATH}`, FAKE_LVM_LOG: log, FAKE_LVM_STATE: `${tmp.path}/lvm-state` };
    const config = `${tmp.path}/config.yaml`;
    writeFileSync(config, `etcdServer:\n  clientPort: ${await freePort()}\n  peerPort: ${await freePort()}\n`);
    base = ['--state-dir', `${tmp.path}/state`, '--config', config];
    for (const d of ['a', 'b']) await execa('truncate', ['-s', '256M', `${tmp.path}/${d}.img`]);
    expect((await k(['pool', 'init', '--name', 'vg0', '--driver', 'lvm', '--device', `${tmp.path}/a.img,${tmp.path}/b.img`])).code).toBe(0);
    const up = await k(['etcd', 'up']);
    expect(up.code, up.stderr).toBe(0);
    changes();
  });
  afterAll(async () => {
    await k(['etcd', 'down']);
    await tmp?.cleanup();
  });

  it('init makes a thin volume per branch, formats and mounts it', async () => {
    const r = await k(['dot', 'init', 'app']);
    expect(r.code, r.stderr).toBe(0);
    const mnt = `${tmp.path}/state/mnt/vg0/knarr-dots/app/master`;
    expect(changes()).toEqual([
      ['lvcreate', '-y', '-V', '10G', '-T', 'vg0/knarr-thin', '-n', 'kd.app.master'],
      ['mkfs.ext4', '-q', '/dev/vg0/kd.app.master'],
      ['mount', '/dev/vg0/kd.app.master', mnt],
    ]);
    expect(existsSync(`${mnt}/__default__`)).toBe(true);
  });

  it('commit is a read-only thin snapshot; branch and clone are writable snapshots of it', async () => {
    const c = await k(['--json', 'dot', 'commit', 'app', '-m', 'one']);
    expect(c.code, c.stderr).toBe(0);
    const id = c.json().id;
    expect(changes()).toEqual([['lvcreate', '-y', '-s', '-p', 'r', '-n', `kc.app.${id}`, 'vg0/kd.app.master']]);
    expect(JSON.parse(readFileSync(`${tmp.path}/state/mnt/vg0/knarr-dots/app/.knarr/commits/${id}.json`, 'utf8')).message).toBe('one');

    expect((await k(['dot', 'branch', 'app', 'exp'])).code).toBe(0);
    expect(changes()).toEqual([
      ['lvcreate', '-y', '-s', '-p', 'rw', '-n', 'kd.app.exp', `vg0/kc.app.${id}`],
      ['lvchange', '-ay', '-K', 'vg0/kd.app.exp'],
      ['mount', '/dev/vg0/kd.app.exp', `${tmp.path}/state/mnt/vg0/knarr-dots/app/exp`],
    ]);
    const clone = await k(['--json', 'dot', 'clone', 'app', 'app2']);
    expect(clone.code, clone.stderr).toBe(0);
    expect(clone.json().copyOnWrite).toBe(true);
    expect(changes().slice(0, 2)).toEqual([
      ['lvcreate', '-y', '-s', '-p', 'rw', '-n', 'kd.app2.master', `vg0/kc.app.${id}`],
      ['lvchange', '-ay', '-K', 'vg0/kd.app2.master'],
    ]);
  });

  it('status mounts the head snapshot read-only for as long as it reads it', async () => {
    const head = (await k(['--json', 'dot', 'log', 'app'])).json()[0].id as string;
    changes();
    const r = await k(['--json', 'dot', 'status', 'app']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ base: head });
    const argv = changes();
    expect(argv[0]).toEqual(['lvchange', '-ay', '-K', `vg0/kc.app.${head}`]);
    expect(argv[1]?.slice(0, 4)).toEqual(['mount', '-o', 'ro,noload', `/dev/vg0/kc.app.${head}`]);
    expect(argv[2]).toEqual(['umount', argv[1]![4]]);
    expect(argv).toHaveLength(3);
    expect(existsSync(argv[1]![4]!)).toBe(false);
  });

  it('reset --force drops the newer snapshot and rebuilds the branch from the older one', async () => {
    const log1 = (await k(['--json', 'dot', 'log', 'app'])).json();
    const two = (await k(['--json', 'dot', 'commit', 'app', '-m', 'two'])).json();
    changes();
    const r = await k(['dot', 'reset', 'app', '--hard', log1[0].id, '--force']);
    expect(r.code, r.stderr).toBe(0);
    expect(changes()).toEqual(
      expect.arrayContaining([
        ['lvremove', '-y', 'vg0/kd.app.master'],
        ['lvremove', '-y', `vg0/kc.app.${two.id}`],
        ['lvcreate', '-y', '-s', '-p', 'rw', '-n', 'kd.app.master', `vg0/kc.app.${log1[0].id}`],
      ]),
    );
    expect((await k(['--json', 'dot', 'log', 'app'])).json().map((c: { id: string }) => c.id)).toEqual([log1[0].id]);
  });

  it('rm removes every volume of the dot', async () => {
    changes();
    expect((await k(['dot', 'rm', 'app2'])).code).toBe(0);
    // rm -rf of its folder is a real command, not in the fakes' log.
    expect(changes()).toEqual([
      ['umount', `${tmp.path}/state/mnt/vg0/knarr-dots/app2/master`],
      ['lvremove', '-y', 'vg0/kd.app2.master'],
    ]);
    expect(existsSync(`${tmp.path}/state/mnt/vg0/knarr-dots/app2`)).toBe(false);
    const rm = await k(['dot', 'rm', 'app']);
    expect(rm.code, rm.stderr).toBe(0);
    const removed = changes().map((a) => a[2]);
    expect(removed).toEqual(expect.arrayContaining(['vg0/kd.app.master', 'vg0/kd.app.exp']));
    expect(removed.some((n) => n?.startsWith('vg0/kc.app.'))).toBe(true);
    const lvs = await execa('lvs', ['--noheadings', '-o', 'lv_name', 'vg0'], { env: { ...process.env, ...env } });
    expect(
      lvs.stdout
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
        .sort(),
    ).toEqual(['knarr-etcd', 'knarr-thin']);
  });
});
