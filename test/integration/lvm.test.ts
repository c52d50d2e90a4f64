// LVM at the argv level: our kernels have no device-mapper, so recording fakes (test/harness/fake-lvm) stand in for
// the LVM tools and losetup. blkid, truncate and the image files are real.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';

const FAKE = fileURLToPath(new URL('../harness/fake-lvm/fake-lvm.mjs', import.meta.url));
const FAKED = ['pvcreate', 'vgcreate', 'lvcreate', 'vgs', 'lvs', 'vgchange', 'vgremove', 'pvremove', 'losetup', 'mkfs.ext4'];
const THIN = ['lvcreate', '-y', '--type', 'thin-pool', '-l', '90%FREE', '-n', 'knarr-thin'];
const MiB = 1024 * 1024;

interface FakeState {
  pvs: string[];
  vgs: Record<string, { pvs: string[]; size: number; free: number; lvs: Record<string, string> }>;
  loops: Record<string, string>;
}

/** Read-only probes; everything else the fakes record changes the host. */
function isProbe(argv: string[]): boolean {
  return argv[0] === 'vgs' || argv[0] === 'lvs' || (argv[0] === 'losetup' && argv[1] === '-j');
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

async function signature(file: string): Promise<string | null> {
  const r = await execa('blkid', ['-p', '-o', 'value', '-s', 'TYPE', file], { reject: false });
  return r.exitCode === 0 ? r.stdout.trim() : null;
}

describe('lvm pools (argv level, fake LVM tools)', () => {
  let tmp: TempDir;
  let stateDir: string;
  let env: Record<string, string>;
  let logFile: string;
  let fakeState: string;
  let name: string;
  let devA: string;
  let devB: string;
  let mountpoint: string;
  let record: string;

  beforeEach(async () => {
    tmp = await tempDir('knarr-lvm-');
    stateDir = `${tmp.path}/state`;
    const bin = `${tmp.path}/bin`;
    await mkdir(bin);
    // git may not keep the executable bit on a fresh checkout.
    chmodSync(FAKE, 0o755);
    for (const tool of FAKED) symlinkSync(FAKE, `${bin}/${tool}`);
    logFile = `${tmp.path}/fake-lvm.log`;
    fakeState = `${tmp.path}/fake-lvm-state`;
    writeFileSync(logFile, '');
    env = { PATH: `${bin}:${process.env.PATH}`, FAKE_LVM_LOG: logFile, FAKE_LVM_STATE: fakeState };
    name = uniqueName('kl');
    devA = `${tmp.path}/disk-a`;
    devB = `${tmp.path}/disk-b`;
    await execa('truncate', ['-s', '64M', devA, devB]);
    mountpoint = `${stateDir}/mnt/${name}`;
    record = `${stateDir}/pools/${name}.json`;
  });

  afterEach(() => tmp.cleanup());

  const cli = (...argv: string[]) => knarr(['--state-dir', stateDir, ...argv], { env });
  const initDevices = (...extra: string[]) => cli('--json', 'pool', 'init', '--name', name, '--driver', 'lvm', '--device', `${devA},${devB}`, ...extra);

  /** Every argv the fakes saw, in order. */
  function recorded(): string[][] {
    return readFileSync(logFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as string[]);
  }
  function mutating(): string[][] {
    return recorded().filter((a) => !isProbe(a));
  }
  /** Forgets what the fakes saw, so the next assertion covers one command only. */
  function clearLog(): void {
    writeFileSync(logFile, '');
  }
  function editFake(change: (s: FakeState) => void): void {
    const s = JSON.parse(readFileSync(`${fakeState}/state.json`, 'utf8')) as FakeState;
    change(s);
    writeFileSync(`${fakeState}/state.json`, JSON.stringify(s));
  }

  async function created(): Promise<void> {
    const r = await initDevices();
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().action).toBe('created');
    clearLog();
  }

  it('init on two devices runs pvcreate, vgcreate, lvcreate thin-pool in order; a second run changes nothing', async () => {
    const r = await initDevices();
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ action: 'created', name, driver: 'lvm', health: 'ONLINE', online: true, devices: [devA, devB], loopFile: null });
    expect(mutating()).toEqual([
      ['pvcreate', devA, devB],
      ['vgcreate', name, devA, devB],
      [...THIN, name],
    ]);
    expect(JSON.parse(readFileSync(record, 'utf8'))).toMatchObject({ name, driver: 'lvm', devices: [devA, devB], loopFile: null });
    expect(existsSync(mountpoint)).toBe(true);
    const recordText = readFileSync(record, 'utf8');

    clearLog();
    const again = await initDevices();
    expect(again.code, again.stderr).toBe(0);
    expect(again.json()).toMatchObject({ action: 'exists', health: 'ONLINE' });
    expect(recorded().length).toBeGreaterThan(0);
    expect(mutating()).toEqual([]);
    expect(readFileSync(record, 'utf8')).toBe(recordText);
  });

  it('an inactive thin pool is activated with vgchange -ay and reported "imported"', async () => {
    await created();
    editFake((s) => (s.vgs[name]!.lvs['knarr-thin'] = 'twi---tz--'));

    const r = await initDevices();
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ action: 'imported', health: 'ONLINE' });
    expect(mutating()).toEqual([['vgchange', '-ay', name]]);

    clearLog();
    const again = await initDevices();
    expect(again.json().action).toBe('exists');
    expect(mutating()).toEqual([]);
  });

  it('a volume group left without its thin pool (an interrupted init) gets the thin pool on the next init', async () => {
    await created();
    editFake((s) => delete s.vgs[name]!.lvs['knarr-thin']);

    const r = await initDevices();
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().action).toBe('created');
    expect(mutating()).toEqual([[...THIN, name]]);
  });

  it('status reports the sizes vgs gives; destroy needs --yes, then runs vgremove and pvremove and keeps the devices', async () => {
    await created();
    // Sizes past 2^32, so a 32-bit parse would show.
    editFake((s) => Object.assign(s.vgs[name]!, { size: 5 * 2 ** 40, free: 2 ** 40 + 4 * MiB }));
    const s = await cli('--json', 'pool', 'status', name);
    expect(s.code, s.stderr).toBe(0);
    expect(s.json()).toMatchObject({
      name,
      driver: 'lvm',
      health: 'ONLINE',
      online: true,
      sizeBytes: 5 * 2 ** 40,
      freeBytes: 2 ** 40 + 4 * MiB,
      usedBytes: 4 * 2 ** 40 - 4 * MiB,
      devices: [devA, devB],
    });

    const refused = await cli('pool', 'destroy', name);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/pass --yes/);
    expect(existsSync(record)).toBe(true);

    const plan = await cli('--dry-run', 'pool', 'destroy', name);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout.split('\n').filter(Boolean)).toEqual([`vgremove -y -f ${name}`, `pvremove -y ${devA} ${devB}`]);
    expect(mutating()).toEqual([]);
    expect(existsSync(record)).toBe(true);

    const r = await cli('--json', 'pool', 'destroy', name, '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toEqual({ pool: name, driver: 'lvm', destroyed: true });
    expect(mutating()).toEqual([
      ['vgremove', '-y', '-f', name],
      ['pvremove', '-y', devA, devB],
    ]);
    expect(existsSync(record)).toBe(false);
    expect(existsSync(devA) && existsSync(devB)).toBe(true);
    expect(await signature(devA)).toBeNull();
    expect((await cli('pool', 'status', name)).code).toBe(3);
  });

  it('--loop-file: truncate makes the file, losetup attaches it, the PV is the loop device; after a reboot init imports it', async () => {
    const img = `${tmp.path}/images/pool.img`;
    const init = (...extra: string[]) => cli('--json', 'pool', 'init', '--name', name, '--driver', 'lvm', '--loop-file', img, '--size', '128M', ...extra);
    const r = await init();
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ action: 'created', health: 'ONLINE', loopFile: img, devices: [] });
    expect(statSync(img).size).toBe(128 * MiB);
    expect(mutating()).toEqual([
      ['losetup', '--find', '--show', img],
      ['pvcreate', '/dev/loop7'],
      ['vgcreate', name, '/dev/loop7'],
      [...THIN, name],
    ]);

    // A reboot: loop devices are gone and the thin pool comes up inactive.
    editFake((s) => {
      s.loops = {};
      s.vgs[name]!.lvs['knarr-thin'] = 'twi---tz--';
    });
    clearLog();
    const plan = await cli('--dry-run', 'pool', 'init', '--name', name);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout.split('\n').filter(Boolean)).toEqual([`losetup --find --show ${img}`, `mkdir -p ${mountpoint}`, `vgchange -ay ${name}`]);
    expect(mutating()).toEqual([]);

    const back = await cli('--json', 'pool', 'init', '--name', name);
    expect(back.code, back.stderr).toBe(0);
    expect(back.json()).toMatchObject({ action: 'imported', health: 'ONLINE' });
    expect(mutating()).toEqual([
      ['losetup', '--find', '--show', img],
      ['vgchange', '-ay', name],
    ]);

    clearLog();
    const gone = await cli('--json', 'pool', 'destroy', name, '--yes');
    expect(gone.code, gone.stderr).toBe(0);
    expect(mutating()).toEqual([
      ['vgremove', '-y', '-f', name],
      ['pvremove', '-y', '/dev/loop7'],
      ['losetup', '-d', '/dev/loop7'],
    ]);
    expect(existsSync(img)).toBe(false);
    expect(existsSync(record)).toBe(false);
  });

  it('a loop file holding a PV of another volume group is refused and not left attached', async () => {
    const img = `${tmp.path}/other.img`;
    const otherState = `${tmp.path}/other-state`;
    const other = await knarr(['--state-dir', otherState, 'pool', 'init', '--name', uniqueName('ko'), '--driver', 'lvm', '--loop-file', img, '--size', '64M'], {
      env,
    });
    expect(other.code, other.stderr).toBe(0);
    editFake((s) => (s.loops = {}));
    clearLog();

    const r = await cli('pool', 'init', '--name', name, '--driver', 'lvm', '--loop-file', img);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`${img} holds LVM2_member`);
    expect(mutating().filter((a) => a[0] !== 'losetup')).toEqual([]);
    expect(JSON.parse(readFileSync(`${fakeState}/state.json`, 'utf8')).loops).toEqual({});
    expect(existsSync(record)).toBe(false);
  });

  it('--dry-run init prints pvcreate, vgcreate and lvcreate, and nothing is run or written', async () => {
    const r = await cli('--dry-run', 'pool', 'init', '--name', name, '--driver', 'lvm', '--device', `${devA},${devB}`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean)).toEqual([
      `pvcreate ${devA} ${devB}`,
      `vgcreate ${name} ${devA} ${devB}`,
      `lvcreate -y --type thin-pool -l 90%FREE -n knarr-thin ${name}`,
      `mkdir -p ${mountpoint}`,
    ]);
    expect(recorded().map((a) => a[0])).toEqual(['vgs']);
    expect(existsSync(stateDir)).toBe(false);
    expect(await signature(devA)).toBeNull();

    const img = `${tmp.path}/images/pool.img`;
    const loop = await cli('--dry-run', 'pool', 'init', '--name', name, '--driver', 'lvm', '--loop-file', img, '--size', '128M');
    expect(loop.code, loop.stderr).toBe(0);
    expect(loop.stdout.split('\n').filter(Boolean)).toEqual([
      `mkdir -p ${tmp.path}/images`,
      `truncate -s ${128 * MiB} ${img}`,
      `losetup --find --show ${img}`,
      `pvcreate '<loop device of ${img}>'`,
      `vgcreate ${name} '<loop device of ${img}>'`,
      `lvcreate -y --type thin-pool -l 90%FREE -n knarr-thin ${name}`,
      `mkdir -p ${mountpoint}`,
    ]);
    expect(mutating()).toEqual([]);
    expect(existsSync(img)).toBe(false);
  });

  it('refuses a device holding ext4 (exit 4) and leaves it untouched; --force passes -ff -y to pvcreate', async () => {
    await execa('mkfs.ext4', ['-q', '-F', devA]);
    const before = sha256(devA);

    const r = await cli('pool', 'init', '--name', name, '--driver', 'lvm', '--device', `${devA},${devB}`);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`${devA} holds ext4`);
    expect(r.stderr).not.toContain(devB);
    expect(mutating()).toEqual([]);
    expect(sha256(devA)).toBe(before);
    expect(existsSync(record)).toBe(false);

    const forced = await initDevices('--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.json().action).toBe('created');
    expect(mutating()).toEqual([
      ['pvcreate', '-ff', '-y', devA, devB],
      ['vgcreate', name, devA, devB],
      [...THIN, name],
    ]);
  });

  it('--dry-run etcd up on an lvm pool plans a thin volume, formats and mounts it', async () => {
    await created();
    const [client, peer] = [await freePort(), await freePort()];
    const r = await cli('--dry-run', 'etcd', 'up', '--pool', name, '--client-port', String(client), '--peer-port', String(peer));
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines.slice(0, 4)).toEqual([
      `lvcreate -y -V 1G -T ${name}/knarr-thin -n knarr-etcd`,
      `mkfs.ext4 -q /dev/${name}/knarr-etcd`,
      `mkdir -p ${mountpoint}/knarr-etcd`,
      `mount /dev/${name}/knarr-etcd ${mountpoint}/knarr-etcd`,
    ]);
    expect(mutating()).toEqual([]);
    expect(existsSync(`${mountpoint}/knarr-etcd`)).toBe(false);
  });
});
