import { existsSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { tempDir, type TempDir } from '../harness/tmp.js';

let tmp: TempDir;
let stateDir: string;
beforeEach(async () => {
  tmp = await tempDir();
  stateDir = `${tmp.path}/state`;
});
afterEach(() => tmp.cleanup());

describe('bad input to pool init is refused before anything is created', () => {
  const cases: [string, string[], RegExp][] = [
    ['unknown driver', ['--driver', 'ntfs'], /^knarr: --driver: unknown driver "ntfs"; use one of zfs, btrfs, lvm, dir$/],
    ['name with a slash', ['--name', 'a/b'], /^knarr: --name: "a\/b" contains "\/"/],
    ['name with ..', ['--name', 'a..b'], /^knarr: --name: "a\.\.b" contains "\.\."/],
    ['name with a space', ['--name', 'a b'], /^knarr: --name: "a b" contains a space/],
    ['name with a leading dash', ['--name=-x'], /^knarr: --name: "-x" starts with "-"/],
    ['missing device', ['--device', '/dev/knarr-no-such-disk'], /^knarr: --device: \/dev\/knarr-no-such-disk does not exist/],
    ['zero size', ['--size', '0'], /^knarr: --size: "0" must be greater than zero$/],
    ['negative size', ['--size=-1G'], /^knarr: --size: "-1G" must be greater than zero$/],
    ['size that is not a size', ['--size', 'lots'], /^knarr: --size: "lots" is not a size/],
  ];
  for (const [what, flags, message] of cases) {
    it(`${what}: exit 2, one line naming the field, nothing on disk`, async () => {
      const loop = `${tmp.path}/pool.img`;
      const args = flags.includes('--device') ? flags : [...flags, '--loop-file', loop];
      const r = await knarr(['--state-dir', stateDir, 'pool', 'init', ...args]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr.trimEnd()).toMatch(message);
      expect(existsSync(stateDir)).toBe(false);
      expect(existsSync(loop)).toBe(false);
    });
  }
});

describe('usage errors', () => {
  it('an unknown command exits 2', async () => {
    const r = await knarr(['nonsense']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'nonsense'/);
  });

  it('a group without a subcommand shows its help on stderr and exits 2', async () => {
    const r = await knarr(['pool']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Commands:[\s\S]*init/);
  });

  it('--json reports an error as one JSON line with code and field', async () => {
    const r = await knarr(['--json', '--state-dir', stateDir, 'pool', 'init', '--name', 'a b']);
    expect(r.code).toBe(2);
    const err = JSON.parse(r.stderr).error;
    expect(err).toMatchObject({ code: 'E_USAGE', field: '--name', exitCode: 2 });
  });

  it('an unknown output format names the flag', async () => {
    const r = await knarr(['-o', 'xml', '--state-dir', stateDir, 'pool', 'list']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--output: "xml" is not a format/);
  });
});
