import { describe, expect, it } from 'vitest';
import { checkManifestNames } from '../../src/commands/dot/pull.js';
import type { Manifest } from '../../src/core/remote.js';
import { parseRemoteUrl } from '../../src/core/remote.js';

const id = '00mx5mticgdf74eeb9';
const good = (): Manifest =>
  ({
    version: 2,
    dot: 'pgdata',
    format: 'zfs',
    subdots: ['__default__', 'redis'],
    branches: { master: { commits: [id] } },
    commits: {
      [id]: {
        record: { id, dot: 'pgdata', branch: 'master', parent: null, message: 'm', author: 'a', time: 't', meta: {} },
        base: null,
        file: `${id}.zfs`,
        bytes: 1,
        sha256: '',
        crc32: '00000000',
      },
    },
  }) as unknown as Manifest;

describe("a remote's manifest is input like any other", () => {
  it('passes a manifest whose names are all a command line could give', () => {
    expect(() => checkManifestNames(good(), 'pgdata', 'hub')).not.toThrow();
  });

  it.each([
    ['another dot', (m: Manifest) => void (m.dot = 'other'), /names dot "other"/],
    [
      'a commit id that climbs out of the pool',
      (m: Manifest) =>
        void ((m.commits as Record<string, unknown>)['../../../root/.ssh'] = {
          ...m.commits[id]!,
          record: { ...m.commits[id]!.record, id: '../../../root/.ssh' },
        }),
      /commit "\.\.\/\.\.\/\.\.\/root\/\.ssh"/,
    ],
    ['a record of another dot', (m: Manifest) => void (m.commits[id]!.record.dot = 'evil'), /belongs to dot "evil"/],
    ['a subdot with a slash', (m: Manifest) => void m.subdots.push('../x'), /subdot "\.\.\/x"/],
    ['a branch with a slash', (m: Manifest) => void (m.branches['a/b'] = { commits: [id] }), /branch "a\/b"/],
    [
      'a branch listing a commit it lacks',
      (m: Manifest) => void m.branches.master!.commits.push('00mx5mticgdf74eeb8'),
      /lists commit 00mx5mticgdf74eeb8, which it does not hold/,
    ],
  ])('refuses %s', (_what, spoil, message) => {
    const m = good();
    spoil(m);
    expect(() => checkManifestNames(m, 'pgdata', 'hub')).toThrow(message);
  });

  it('an ssh remote host or user that ssh would read as an option or split is refused', () => {
    expect(() => parseRemoteUrl('REMOTE', 'ssh://-oProxyCommand=id/')).toThrow(/is not a host name/);
    expect(() => parseRemoteUrl('REMOTE', 'ssh://a%20b@host/')).toThrow(/is not a user name/);
    expect(parseRemoteUrl('REMOTE', 'ssh://me@10.0.0.5:2222/srv')).toMatchObject({ user: 'me', host: '10.0.0.5', port: 2222, path: '/srv' });
  });

  it('a file remote must name a directory: file://, file:/// and file://// (the root filesystem) are refused', () => {
    for (const url of ['file://', 'file:///', 'file:////', 'file:///./']) expect(() => parseRemoteUrl('URL', url), url).toThrow(/names no directory/);
    expect(parseRemoteUrl('URL', 'file:///mnt/usb/')).toMatchObject({ kind: 'file', path: '/mnt/usb', url: 'file:///mnt/usb' });
  });
});
