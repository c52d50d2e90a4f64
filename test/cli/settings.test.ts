import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

let tmp: TempDir;
let state: string;
let config: string;
beforeEach(async () => {
  tmp = await tempDir();
  state = `${tmp.path}/state`;
  config = `${tmp.path}/config.yaml`;
});
afterEach(() => tmp.cleanup());

/** knarr with the test's config file and state directory, and env on top of a clean environment. */
const run = (argv: string[], env: Record<string, string> = {}) => knarr(['--config', config, '--state-dir', state, ...argv], { env });

describe('one setting per area through the CLI: flag > env > file > default', () => {
  it('global: --no-dry-run switches off KNARR_DRY_RUN=1, which switches off dryRun: true in the file', async () => {
    writeFileSync(config, 'dryRun: true\n');
    const fromFile = await run(['--json', 'pool', 'init', '--name', 'p1', '--driver', 'dir']);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(existsSync(`${state}/pools/p1.json`)).toBe(false);
    const envOn = await run(['--json', 'pool', 'init', '--name', 'p1', '--driver', 'dir'], { KNARR_DRY_RUN: '1' });
    expect(envOn.code, envOn.stderr).toBe(0);
    expect(existsSync(`${state}/pools/p1.json`)).toBe(false);
    const envOff = await run(['--json', 'pool', 'init', '--name', 'p1', '--driver', 'dir'], { KNARR_DRY_RUN: '0' });
    expect(envOff.code, envOff.stderr).toBe(0);
    expect(envOff.json().action).toBe('created');
    const flagOff = await run(['--json', '--no-dry-run', 'pool', 'init', '--name', 'p2', '--driver', 'dir'], { KNARR_DRY_RUN: '1' });
    expect(flagOff.code, flagOff.stderr).toBe(0);
    expect(flagOff.json().action).toBe('created');
    expect(existsSync(`${state}/pools/p2.json`)).toBe(true);
  });

  it('pool: the name and driver of pool init from the file, KNARR_POOL_*, and its own flag', async () => {
    writeFileSync(config, 'pool:\n  name: filepool\n  driver: dir\n');
    const fromFile = await run(['--json', 'pool', 'init']);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(fromFile.json()).toMatchObject({ name: 'filepool', driver: 'dir' });
    writeFileSync(config, 'pool:\n  name: filepool\n  driver: zfs\n');
    const fromEnv = await run(['--json', 'pool', 'init'], { KNARR_POOL_NAME: 'envpool', KNARR_POOL_DRIVER: 'dir' });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    expect(fromEnv.json()).toMatchObject({ name: 'envpool', driver: 'dir' });
    const fromFlag = await run(['--json', 'pool', 'init', '--name', 'flagpool'], { KNARR_POOL_NAME: 'envpool', KNARR_POOL_DRIVER: 'dir' });
    expect(fromFlag.json()).toMatchObject({ name: 'flagpool', driver: 'dir' });
  });

  it.skipIf(!integration('etcd settings through the CLI', haveTools('etcd'), 'etcd is not installed'))(
    "etcd: the managed etcd's client port from the file, KNARR_ETCD_CLIENT_PORT, and etcd up --client-port",
    async () => {
      writeFileSync(config, '');
      expect((await run(['pool', 'init', '--driver', 'dir'])).code).toBe(0);
      const plan = async (argv: string[], env: Record<string, string> = {}) => {
        const r = await run(['--dry-run', 'etcd', 'up', ...argv], env);
        expect(r.code, r.stderr).toBe(0);
        return /--listen-client-urls http:\/\/127\.0\.0\.1:(\d+)/.exec(r.stdout)?.[1];
      };
      expect(await plan([])).toBe('2379');
      writeFileSync(config, 'etcdServer:\n  clientPort: 12379\n');
      expect(await plan([])).toBe('12379');
      expect(await plan([], { KNARR_ETCD_CLIENT_PORT: '22379' })).toBe('22379');
      expect(await plan(['--client-port', '32379'], { KNARR_ETCD_CLIENT_PORT: '22379' })).toBe('32379');
    },
  );

  it('cluster and scheduler: a bad value is named by its source, and a higher source sets a lower one aside', async () => {
    writeFileSync(config, 'cluster:\n  bridge: not/a/bridge\nscheduler:\n  strategy: random\n');
    const bad = await run(['pool', 'list']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/config.yaml: cluster.bridge: "not\/a\/bridge" is not an interface name/);
    const envBridge = await run(['pool', 'list'], { KNARR_CLUSTER_BRIDGE: 'br0' });
    expect(envBridge.stderr).toMatch(/config.yaml: scheduler.strategy: "random" is not a strategy/);
    const envBoth = await run(['--json', 'pool', 'list'], { KNARR_CLUSTER_BRIDGE: 'br0', KNARR_SCHEDULER_STRATEGY: 'binpack' });
    expect(envBoth.code, envBoth.stderr).toBe(0);
    const badEnv = await run(['pool', 'list'], { KNARR_CLUSTER_BRIDGE: 'br0', KNARR_SCHEDULER_STRATEGY: 'fastest' });
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toMatch(/^knarr: KNARR_SCHEDULER_STRATEGY: "fastest" is not a strategy/);
  });

  it('daemon: --ttl over KNARR_DAEMON_TTL over daemon.ttl in the file, each named when bad', async () => {
    writeFileSync(config, 'daemon:\n  ttl: 1\n');
    const file = await run(['daemon']);
    expect(file.code).toBe(2);
    expect(file.stderr).toMatch(/config.yaml: daemon.ttl: must be a whole number of seconds from 2 to 300/);
    const env = await run(['daemon'], { KNARR_DAEMON_TTL: '500' });
    expect(env.stderr).toMatch(/^knarr: KNARR_DAEMON_TTL: must be a whole number of seconds from 2 to 300/);
    // A good --ttl sets both aside: the agent gets as far as the next check (--share), before it touches etcd.
    mkdirSync(state, { recursive: true });
    const flag = await run(['daemon', '--ttl', '5', '--share', `${tmp.path}/missing`], { KNARR_DAEMON_TTL: '500' });
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/^knarr: --share: .*missing is not a directory/);
    const envShare = await run(['daemon', '--ttl', '5'], { KNARR_DAEMON_SHARE: `${tmp.path}/gone` });
    expect(envShare.stderr).toMatch(/gone is not a directory/);
  });
});
