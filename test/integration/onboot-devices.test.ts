import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { kernelMounts } from '../harness/mounts.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';

const loops = haveTools('losetup', 'blkid') && existsSync('/dev/loop-control');
const btrfsKernel = (() => {
  try {
    return /\bbtrfs$/m.test(readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
})();
const drivers = {
  zfs: integration(
    'onboot on renamed devices (zfs)',
    loops && (await zfsAnswers()) && haveTools('etcd'),
    'needs losetup, blkid, a zpool that answers and etcd',
  ),
  btrfs: integration('onboot on renamed devices (btrfs)', loops && btrfsKernel && haveTools('mkfs.btrfs', 'etcd'), 'needs losetup, blkid, btrfs and etcd'),
};
const mounted = (path: string) => kernelMounts().some((m) => m.target === path);

for (const driver of ['zfs', 'btrfs'] as const) {
  describe.skipIf(!drivers[driver])(`onboot after a reboot that renamed the pool's devices (${driver})`, () => {
    let tmp: TempDir;
    let state: string;
    let config: string;
    let pool: string;
    let files: string[];
    // Every loop device this suite attached, detached in afterAll whatever happened.
    const attached = new Set<string>();
    const attach = async (file: string, at?: string) => {
      const dev = at ? await attachAt(file, at) : (await execa('losetup', ['--find', '--show', file])).stdout.trim();
      attached.add(dev);
      return dev;
    };
    /** Attaches file as the named device: another test running meanwhile may hold that name a moment (busy); wait for it. */
    const attachAt = async (file: string, at: string) => {
      for (let i = 0; ; i++) {
        const r = await execa('losetup', [at, file], { reject: false });
        if (r.exitCode === 0) return at;
        if (!/busy/i.test(r.stderr) || i >= 120) throw new Error(`losetup ${at} ${file}: ${r.stderr}`);
        await new Promise((res) => setTimeout(res, 250));
      }
    };
    const detach = async (dev: string) => {
      await execa('losetup', ['-d', dev]);
      attached.delete(dev);
    };
    /** Attaches file under a name not in avoid: each attach takes the next free name, the ones to avoid are let go after. */
    const attachAvoiding = async (file: string, avoid: string[]) => {
      const skipped: string[] = [];
      let dev = await attach(file);
      while (avoid.includes(dev)) {
        skipped.push(dev);
        dev = await attach(file);
      }
      for (const d of skipped) await detach(d);
      return dev;
    };
    const app = () => `${tmp.path}/app`;
    const boot = (devices: string[], stateDir = state) =>
      knarr([
        '--json',
        '--state-dir',
        stateDir,
        '--config',
        config,
        'onboot',
        '--driver',
        driver,
        '--pool',
        pool,
        '--storage-device',
        devices.join(','),
        '--dot',
        'app',
        '--mountpoint',
        app(),
      ]);
    /** A reboot: mounts gone, the pool exported, the devices detached. */
    const shutdown = async (devices: string[], stateDir = state) => {
      await execa('umount', [app()]);
      if (driver === 'zfs') await execa('zpool', ['export', pool]);
      else await execa('umount', [`${stateDir}/mnt/${pool}`]);
      for (const d of devices) await detach(d);
    };

    beforeAll(async () => {
      tmp = await tempDir(`knarr-onboot-${driver}-`);
      state = `${tmp.path}/state`;
      config = `${tmp.path}/host.yaml`;
      writeFileSync(config, `etcdServer:\n  clientPort: ${await freePort()}\n  peerPort: ${await freePort()}\n`);
      files = [`${tmp.path}/disk0.img`, `${tmp.path}/disk1.img`, `${tmp.path}/blank.img`, `${tmp.path}/other0.img`, `${tmp.path}/other1.img`];
      for (const f of files) await execa('truncate', ['-s', '256M', f]);
      pool = uniqueName(`kdev${driver[0]}`);
    });
    afterAll(async () => {
      await execa('umount', ['-l', app()], { reject: false });
      for (const s of [state, `${tmp.path}/state2`]) {
        await knarr(['--state-dir', s, '--config', config, 'etcd', 'down']);
        if (driver === 'btrfs') await execa('umount', ['-l', `${s}/mnt/${pool}`], { reject: false });
      }
      if (driver === 'zfs') await destroyPoolQuietly(pool);
      for (const d of attached) await execa('losetup', ['-d', d], { reject: false });
      await tmp?.cleanup();
    });

    it('imports the pool by its labels when the devices come back swapped or under other names, and keeps the data', async () => {
      const first = [await attach(files[0]!), await attach(files[1]!)];
      const made = await boot(first);
      expect(made.code, made.stderr).toBe(0);
      expect(made.json()).toMatchObject({ poolAction: 'created', dotAction: 'created' });
      writeFileSync(`${app()}/precious`, 'kept across boots');
      await shutdown(first);

      // The same two names, swapped: each now holds the other disk.
      const swapped = [await attach(files[1]!, first[0]), await attach(files[0]!, first[1])];
      const order = [swapped[1]!, swapped[0]!];
      expect(order).toEqual([first[1], first[0]]);
      const r1 = await boot(order);
      expect(r1.code, r1.stderr).toBe(0);
      expect(r1.json()).toMatchObject({ poolAction: 'imported', dotAction: 'kept' });
      expect(r1.stderr).toContain(`pool ${pool} found on ${order.join(',')}`);
      expect(readFileSync(`${app()}/precious`, 'utf8')).toBe('kept across boots');
      expect(JSON.parse(readFileSync(`${state}/pools/${pool}.json`, 'utf8')).devices).toEqual(order);
      await shutdown(swapped);

      // Other names altogether.
      const renamed = [await attachAvoiding(files[0]!, first), await attachAvoiding(files[1]!, first)];
      expect(renamed.some((d) => first.includes(d))).toBe(false);
      const r2 = await boot(renamed);
      expect(r2.code, r2.stderr).toBe(0);
      expect(r2.json()).toMatchObject({ poolAction: 'imported', dotAction: 'kept' });
      expect(readFileSync(`${app()}/precious`, 'utf8')).toBe('kept across boots');
      expect(mounted(app())).toBe(true);
      const again = await boot(renamed);
      expect(again.code, again.stderr).toBe(0);
      expect(again.json()).toMatchObject({ poolAction: 'exists', dotAction: 'kept' });
    });

    it('a state directory at another path finds the dot where the pool has it, not in an empty directory', async () => {
      const devices = JSON.parse(readFileSync(`${state}/pools/${pool}.json`, 'utf8')).devices as string[];
      await execa('umount', [app()]);
      if (driver === 'zfs') await execa('zpool', ['export', pool]);
      else await execa('umount', [`${state}/mnt/${pool}`]);
      const other = `${tmp.path}/state2`;
      const r = await boot(devices, other);
      expect(r.code, r.stderr).toBe(0);
      expect(r.json()).toMatchObject({ poolAction: 'imported', dotAction: 'kept' });
      expect(readFileSync(`${app()}/precious`, 'utf8')).toBe('kept across boots');
      await knarr(['--state-dir', other, '--config', config, 'etcd', 'down']);
      await shutdown([], other);
      const back = await boot(devices);
      expect(back.code, back.stderr).toBe(0);
      expect(readFileSync(`${app()}/precious`, 'utf8')).toBe('kept across boots');
    });

    it('other disks under the recorded names are refused, never formatted into a new empty pool', async () => {
      const recorded = JSON.parse(readFileSync(`${state}/pools/${pool}.json`, 'utf8')).devices as string[];
      await shutdown(recorded);
      const others = [await attach(files[3]!, recorded[0]), await attach(files[4]!, recorded[1])];
      const r = await boot(recorded);
      expect(r.code).toBe(10);
      const err = JSON.parse(r.stderr.trim().split('\n').pop()!).error;
      expect(err.message).toContain(`pool ${pool} was made on this host, but ${recorded.join(',')} do not carry it`);
      expect(err.hint).not.toMatch(/destroy/);
      for (const d of others) expect((await execa('blkid', ['-p', d], { reject: false })).exitCode).toBe(2);
      for (const d of others) await detach(d);
      // The pool's own disks back, under whatever names: the data is there.
      const back = [await attach(files[0]!), await attach(files[1]!)];
      const again = await boot(back);
      expect(again.code, again.stderr).toBe(0);
      expect(again.json()).toMatchObject({ poolAction: 'imported', dotAction: 'kept' });
      expect(readFileSync(`${app()}/precious`, 'utf8')).toBe('kept across boots');
    });

    it('refuses devices that do not carry the pool, says what they hold, and never hints at destroying it', async () => {
      const blank = await attach(files[2]!);
      const r = await boot([blank]);
      expect(r.code).toBe(10);
      const err = JSON.parse(r.stderr.trim().split('\n').pop()!).error;
      expect(err.message).toContain(`${blank} holds nothing`);
      expect(err.hint).toMatch(/blkid -p /);
      expect(err.hint).not.toMatch(/destroy/);
      // Nothing was written over the blank device, and the pool is untouched.
      expect((await execa('blkid', ['-p', blank], { reject: false })).exitCode).toBe(2);
      expect(readFileSync(`${app()}/precious`, 'utf8')).toBe('kept across boots');
    });
  });
}
