import { existsSync, writeFileSync } from 'node:fs';
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

describe('bad input that used to pass, or to be named wrong', () => {
  it('an empty --etcd or KNARR_ETCD is an error, and no managed etcd is started', async () => {
    const flag = await knarr(['--state-dir', stateDir, '--etcd', '', 'dot', 'list']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/^knarr: --etcd: is empty; give the fleet's endpoints/);
    const env = await knarr(['--state-dir', stateDir, 'dot', 'list'], { env: { KNARR_ETCD: '' } });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/^knarr: KNARR_ETCD: is empty/);
    const path = await knarr(['--state-dir', stateDir, '--etcd', 'http://127.0.0.1:2379/v3/kv', 'dot', 'list']);
    expect(path.code).toBe(2);
    expect(path.stderr).toMatch(/has a path \(\/v3\/kv\); an etcd endpoint is http\(s\):\/\/HOST:PORT/);
    expect(existsSync(stateDir)).toBe(false);
  });

  it('a config file key __proto__ is refused as unknown', async () => {
    const file = `${tmp.path}/config.yaml`;
    writeFileSync(file, '__proto__:\n  stateDir: /elsewhere\n');
    const r = await knarr(['--config', file, '--state-dir', stateDir, 'pool', 'list']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/config\.yaml: __proto__: unknown setting/);
  });

  it('a config file nested far too deep is refused, not a stack overflow', async () => {
    const file = `${tmp.path}/deep.yaml`;
    writeFileSync(file, `pool: ${'['.repeat(5000)}${']'.repeat(5000)}\n`);
    const r = await knarr(['--config', file, '--state-dir', stateDir, 'pool', 'list']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^knarr: --config: .*deep\.yaml is nested too deeply to be a config file/);
  });

  it('onboot names its own flags: --pool, not --name', async () => {
    const r = await knarr(['--state-dir', stateDir, 'onboot', '--storage-device', '/dev/null', '--pool', 'a b', '--dot', 'x', '--mountpoint', `${tmp.path}/m`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^knarr: --pool: "a b" contains a space/);
    const nl = await knarr(['--state-dir', stateDir, 'onboot', '--zpool-device', '/dev/null', '--dot', 'my\napp', '--mountpoint', `${tmp.path}/m`]);
    expect(nl.code).toBe(2);
    expect(nl.stderr).toMatch(/^knarr: --dot: "my\\napp" contains a newline/);
    const noDot = await knarr(['--state-dir', stateDir, 'onboot', '--zpool-device', '/dev/null']);
    expect(noDot.code).toBe(2);
    expect(noDot.stderr).toMatch(/^knarr: --dot: give the dot to bring up.*or --daemon alone/);
    // A driver knarr has not is bad input (exit 2) before any boot step, not a failed pool step (exit 10).
    const driver = await knarr([
      '--state-dir',
      stateDir,
      'onboot',
      '--storage-device',
      '/dev/null',
      '--driver',
      'ntfs',
      '--dot',
      'x',
      '--mountpoint',
      `${tmp.path}/m`,
    ]);
    expect(driver.code).toBe(2);
    expect(driver.stderr).toMatch(/^knarr: --driver: unknown driver "ntfs"; use one of zfs, btrfs, lvm, dir$/m);
    expect(existsSync(stateDir)).toBe(false);
  });

  it('a deeply nested job spec is refused with a clear error, not a stack overflow', async () => {
    const file = `${tmp.path}/deep.json`;
    writeFileSync(file, `${'{"a":'.repeat(3000)}1${'}'.repeat(3000)}`);
    const r = await knarr(['--state-dir', stateDir, 'job', 'run', '-f', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^knarr: --file: nested 3000 levels deep; a job spec nests at most 32/);
    const block = `${tmp.path}/deep.yaml`;
    writeFileSync(block, Array.from({ length: 3000 }, (_, i) => `${' '.repeat(i)}a${i}:`).join('\n'));
    const b = await knarr(['--state-dir', stateDir, 'job', 'run', '-f', block]);
    expect(b.code).toBe(2);
    expect(b.stderr).not.toMatch(/call stack/);
  });

  it('a hint with a path quotes it for the shell', async () => {
    const dir = `${tmp.path}/no such $(touch p)`;
    const r = await knarr(['--etcd', 'http://127.0.0.1:9', 'etcd', 'backup', `${dir}/snap.db`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`hint: create it first: mkdir -p '${dir}'`);
  });
});
