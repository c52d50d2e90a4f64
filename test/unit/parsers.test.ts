import { describe, expect, it } from 'vitest';
import { parseBlkidExport, parseMountinfo } from '../../src/host/mounts.js';
import { parseVgs } from '../../src/host/storage/lvm/pool.js';
import { listedId, parseImportable, parseZfsGet } from '../../src/host/storage/zfs/pool.js';

describe('outside tools output parsers', () => {
  it('parses mountinfo, unescaping octal', () => {
    const text = [
      '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
      '90 22 0:50 / /var/lib/knarr/mnt/p\\040q rw,relatime - btrfs /dev/loop0 rw,space_cache',
    ].join('\n');
    expect(parseMountinfo(text)).toEqual([
      { source: '/dev/vda', target: '/', fstype: 'ext4' },
      { source: '/dev/loop0', target: '/var/lib/knarr/mnt/p q', fstype: 'btrfs' },
    ]);
  });
  it('parses blkid export output', () => {
    expect(parseBlkidExport('DEVNAME=z.img\nLABEL=tank\nTYPE=zfs_member\nUSAGE=filesystem\n')).toEqual({ type: 'zfs_member', label: 'tank', uuid: null });
    expect(parseBlkidExport('LABEL=tank\nUUID=3901016875626964769\nUUID_SUB=1421\nTYPE=zfs_member\n')).toEqual({
      type: 'zfs_member',
      label: 'tank',
      uuid: '3901016875626964769',
    });
    expect(parseBlkidExport('DEVNAME=e.img\nTYPE=ext4\n')).toEqual({ type: 'ext4', label: null, uuid: null });
    expect(parseBlkidExport('')).toBeNull();
  });
  it('parses zpool import listings', () => {
    const text = '  pool: tank\n    id: 1\n state: ONLINE\n\n   pool: other\n';
    expect(parseImportable(text)).toEqual(['tank', 'other']);
    expect(listedId(text, '1')).toBe('1');
    expect(listedId(text, '12')).toBeNull();
    expect(listedId(text, null)).toBeNull();
    expect(listedId('   id: .*\n', '.*')).toBeNull();
    expect(parseImportable('no pools available to import')).toEqual([]);
  });
  it('parses zfs get -H -p', () => {
    const m = parseZfsGet('used\t536576\navailable\t494391296\nmountpoint\t/mnt/tank\n');
    expect(m.get('used')).toBe('536576');
    expect(m.get('mountpoint')).toBe('/mnt/tank');
  });
  it('parses vgs', () => {
    expect(parseVgs('  tank|1069547520|1069547520|wz--n-\n')).toEqual({ name: 'tank', sizeBytes: 1069547520, freeBytes: 1069547520, attr: 'wz--n-' });
    expect(parseVgs('\n')).toBeNull();
  });
});

describe('etcd prefix ranges', () => {
  it('ends a prefix range just after the last key that starts with it', async () => {
    const { prefixEnd } = await import('../../src/state/store.js');
    const end = (p: string) => Buffer.from(prefixEnd(p), 'base64').toString('latin1');
    expect(end('/knarr/a/')).toBe('/knarr/a0');
    expect(end('a')).toBe('b');
  });
});
