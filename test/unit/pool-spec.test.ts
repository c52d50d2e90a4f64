import { describe, expect, it } from 'vitest';
import { buildPoolSpec, notCarrying, parseDeviceList, specConflict, type DeviceProbe, type PoolDefaults, type PoolInitInput } from '../../src/core/pool.js';

const defaults: PoolDefaults = {
  name: 'knarr',
  driver: 'zfs',
  size: '2G',
  loopFile: (p) => `/var/lib/knarr/pools/${p}.img`,
  mountpoint: (p) => `/var/lib/knarr/mnt/${p}`,
};
const input = (i: Partial<PoolInitInput>): PoolInitInput => ({ devices: [], force: false, ...i });
const build = (i: Partial<PoolInitInput>) => buildPoolSpec(input(i), defaults, '/home/op');

describe('buildPoolSpec', () => {
  it('defaults to a zfs pool on a 2G loop file in the state dir', () => {
    expect(build({})).toEqual({
      name: 'knarr',
      driver: 'zfs',
      devices: [],
      loopFile: { path: '/var/lib/knarr/pools/knarr.img', sizeBytes: 2 * 1024 ** 3 },
      path: null,
      mountpoint: '/var/lib/knarr/mnt/knarr',
      force: false,
    });
  });
  it('splits comma-separated and repeated devices', () => {
    expect(build({ devices: ['/dev/sdb,/dev/sdc', '/dev/sdd'] }).devices).toEqual(['/dev/sdb', '/dev/sdc', '/dev/sdd']);
  });
  it('resolves relative paths against the working directory', () => {
    expect(build({ loopFile: 'p.img', size: '1G' }).loopFile).toEqual({ path: '/home/op/p.img', sizeBytes: 1024 ** 3 });
  });
  it('a dir pool takes --path, not devices', () => {
    expect(build({ driver: 'dir', path: '/srv/p' })).toMatchObject({ path: '/srv/p', mountpoint: '/srv/p', loopFile: null });
    expect(() => build({ driver: 'dir', devices: ['/dev/sdb'] })).toThrow(/^--device: the dir driver takes no devices/);
    expect(() => build({ driver: 'zfs', path: '/srv' })).toThrow(/^--path: only the dir driver/);
  });
  it.each<[Partial<PoolInitInput>, RegExp]>([
    [{ driver: 'ext4' }, /^--driver: unknown driver "ext4"/],
    [{ devices: ['/dev/sdb'], loopFile: '/x.img' }, /^--loop-file: give either --device or --loop-file/],
    [{ devices: ['/dev/sdb'], size: '1G' }, /^--size: a pool on devices takes their whole size/],
    [{ devices: ['/dev/sdb', '/dev/sdb'] }, /^--device: a device is listed twice/],
    [{ devices: [','] }, /^--device: an empty device path/],
    [{ size: '0' }, /^--size: /],
    [{ name: 'a b' }, /^--name: /],
  ])('refuses %j', (i, msg) => expect(() => build(i)).toThrow(msg));
});

describe('specConflict', () => {
  const record = { ...build({}), createdAt: 'x' };
  it('accepts the same pool given again', () => {
    expect(specConflict(record, build({}), { driver: true, sources: true })).toBeNull();
  });
  it('names a different driver or different sources', () => {
    expect(specConflict(record, build({ driver: 'btrfs' }), { driver: true, sources: false })).toMatch(/uses the zfs driver, not btrfs/);
    expect(specConflict(record, build({ devices: ['/dev/sdb'] }), { driver: false, sources: true })).toMatch(/loop file .* not devices \/dev\/sdb/);
  });
  it('ignores defaults the operator did not give', () => {
    expect(specConflict(record, build({ driver: 'btrfs' }), { driver: false, sources: false })).toBeNull();
  });
});

describe('parseDeviceList', () => {
  it('takes repeated and comma-separated flags, names the flag given in errors', () => {
    expect(parseDeviceList('--zpool-device', ['/dev/a', '/dev/b,/dev/c'], '/')).toEqual(['/dev/a', '/dev/b', '/dev/c']);
    expect(() => parseDeviceList('--zpool-device', ['/dev/a,'], '/')).toThrow(/^--zpool-device: an empty device path/);
    expect(() => parseDeviceList('--storage-device', ['/dev/a', '/dev/a'], '/')).toThrow(/^--storage-device: a device is listed twice/);
  });
});

describe('notCarrying: a pool is found on its devices by their labels', () => {
  const member = (path: string, label = 'tank', uuid = '42', type = 'zfs_member'): DeviceProbe => ({ path, exists: true, signature: { type, label, uuid } });
  it('accepts devices that all carry the pool, whatever they are called', () => {
    expect(notCarrying([member('/dev/loop5'), member('/dev/loop4')], 'zfs_member', 'tank', '42')).toBeNull();
    // A record made before ids were kept: the label alone, one pool on all devices.
    expect(notCarrying([member('/dev/sdc')], 'zfs_member', 'tank', undefined)).toBeNull();
  });
  it.each([
    [[{ path: '/dev/sdz', exists: false, signature: null }], /\/dev\/sdz does not exist/],
    [[{ path: '/dev/sdb', exists: true, signature: null }], /\/dev\/sdb holds nothing/],
    [[member('/dev/sdb', 'other')], /\/dev\/sdb holds zfs_member "other"/],
    [[member('/dev/sdb', 'tank', '42', 'ext4')], /\/dev\/sdb holds ext4 "tank"/],
    [[member('/dev/sdb', 'tank', '7')], /another pool named tank \(id 7, not 42\)/],
  ])('refuses %j, saying what the devices hold', (probes, msg) => expect(notCarrying(probes as DeviceProbe[], 'zfs_member', 'tank', '42')).toMatch(msg));
  it('refuses two different pools of one name, and drivers without labels', () => {
    expect(notCarrying([member('/dev/a', 'tank', '1'), member('/dev/b', 'tank', '2')], 'zfs_member', 'tank', null)).toMatch(/2 different pools named tank/);
    expect(notCarrying([member('/dev/a')], null, 'tank', null)).toMatch(/does not find pools by their labels/);
  });
});
