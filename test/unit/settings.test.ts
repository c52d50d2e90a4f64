import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig, type GlobalFlags } from '../../src/core/config.js';
import { resolveDaemonSettings } from '../../src/core/daemon-settings.js';
import { SETTINGS, flagKey, pickSetting, setting, validateConfigFile } from '../../src/core/settings.js';

const FILE = '/etc/knarr/config.yaml';
const resolve = (flags: GlobalFlags = {}, env: Record<string, string> = {}, file: Record<string, unknown> = {}) =>
  resolveConfig(flags, env, validateConfigFile(FILE, file), FILE, '/work');

describe('the settings table', () => {
  it('gives every setting a unique KNARR_* variable and a unique key, and every flag a unique name where it lives', () => {
    const envs = SETTINGS.map((s) => s.env);
    expect(envs.every((e) => /^KNARR_[A-Z_]+$/.test(e))).toBe(true);
    expect(new Set(envs).size).toBe(envs.length);
    expect(new Set(SETTINGS.map((s) => s.key)).size).toBe(SETTINGS.length);
    const flags = SETTINGS.filter((s) => s.flag).map((s) => `${s.command ?? ''} ${flagKey(s)}`);
    expect(new Set(flags).size).toBe(flags.length);
    for (const s of SETTINGS) expect(s.help, s.key).not.toBe('');
  });

  it('accepts each file key of the table and refuses others, naming the file and key', () => {
    expect(() => validateConfigFile(FILE, { jobs: { agentToken: 'secret' } })).toThrow(/^\/etc\/knarr\/config.yaml: jobs.agentToken: unknown setting/);
    expect(() => validateConfigFile(FILE, { config: '/x' })).toThrow(/^\/etc\/knarr\/config.yaml: config: unknown setting/);
    expect(() => validateConfigFile(FILE, { dots: { author: 7 } })).toThrow(/^\/etc\/knarr\/config.yaml: dots.author: must be a string/);
    expect(validateConfigFile(FILE, { dots: { author: 'ann' }, jobs: { agentCa: '/ca.pem' }, cluster: { user: 'ann' } })).toBeTruthy();
  });

  it('a bad value names where it came from: flag, variable or file key', () => {
    expect(() => resolve({}, { KNARR_ETCD_CLIENT_PORT: 'x' })).toThrow(/^KNARR_ETCD_CLIENT_PORT: "x" is not a number/);
    expect(() => resolve({}, {}, { etcdServer: { clientPort: 70000 } })).toThrow(/^\/etc\/knarr\/config.yaml: etcdServer.clientPort: 70000 is not a port/);
    expect(() => resolve({ fleet: 'a/b' }, { KNARR_FLEET: 'ok' })).toThrow(/^--fleet: /);
    expect(() => resolve({}, { KNARR_FLEET: 'a/b' })).toThrow(/^KNARR_FLEET: /);
    expect(() => resolve({}, {}, { fleet: 'a/b' })).toThrow(/^\/etc\/knarr\/config.yaml: fleet: /);
    expect(() => resolve({}, { KNARR_USER: 'Bad-User' })).toThrow(/^KNARR_USER: "Bad-User" is not a user name/);
  });

  it("a command's flag is not taken for a global setting of the same name, nor the other way round", () => {
    // commander's optsWithGlobals() mixes the command's options in: pool init --name is no daemon name.
    expect(pickSetting(setting('daemon.name'), { flags: { name: 'x' } })).toBeNull();
    expect(pickSetting(setting('daemon.name'), { flags: { name: 'x' }, command: 'daemon' })?.value).toBe('x');
    expect(resolve({ name: 'p1' } as GlobalFlags).daemon).toEqual({});
  });
});

describe('every area resolves flag > env > file > default', () => {
  it('global: a value and a boolean, which a --no- flag switches off', () => {
    const file = { fleet: 'filefleet', dryRun: true };
    expect(resolve().fleet).toBe('default');
    expect(resolve({}, {}, file).fleet).toBe('filefleet');
    expect(resolve({}, { KNARR_FLEET: 'envfleet' }, file).fleet).toBe('envfleet');
    expect(resolve({ fleet: 'flagfleet' }, { KNARR_FLEET: 'envfleet' }, file).fleet).toBe('flagfleet');
    expect(resolve().dryRun).toBe(false);
    expect(resolve({}, {}, file).dryRun).toBe(true);
    expect(resolve({}, { KNARR_DRY_RUN: '0' }, file).dryRun).toBe(false);
    expect(resolve({}, { KNARR_DRY_RUN: '1' }).dryRun).toBe(true);
    expect(resolve({ dryRun: false }, { KNARR_DRY_RUN: '1' }, file).dryRun).toBe(false);
    expect(resolve({ dryRun: true }, { KNARR_DRY_RUN: '0' }).dryRun).toBe(true);
    expect(resolve({ verbose: false }, { KNARR_VERBOSE: 'yes' }).verbose).toBe(false);
    expect(resolve({ quiet: false }, {}, { quiet: true }).quiet).toBe(false);
  });

  it('global: --json over output at its level and below; --no-json sets KNARR_JSON aside', () => {
    expect(resolve({}, { KNARR_JSON: '1' }, { output: 'yaml' }).output).toBe('json');
    expect(resolve({ output: 'yaml' }, { KNARR_JSON: '1' }).output).toBe('yaml');
    expect(resolve({ json: false }, { KNARR_JSON: '1' }).output).toBe('table');
    expect(resolve({ json: false }, { KNARR_JSON: '1', KNARR_OUTPUT: 'yaml' }).output).toBe('yaml');
    expect(resolve({ json: true, output: 'yaml' }).output).toBe('json');
  });

  it('pool', () => {
    const file = { pool: { name: 'filepool', driver: 'btrfs' } };
    expect(resolve().pool).toEqual({ name: 'knarr', driver: 'zfs', size: '2G' });
    expect(resolve({}, {}, file).pool).toEqual({ name: 'filepool', driver: 'btrfs', size: '2G' });
    expect(resolve({}, { KNARR_POOL_NAME: 'envpool', KNARR_POOL_SIZE: '4G' }, file).pool).toEqual({ name: 'envpool', driver: 'btrfs', size: '4G' });
  });

  it('etcd (the managed server)', () => {
    expect(resolve().etcdServer).toEqual({ clientPort: 2379, peerPort: 2380 });
    expect(resolve({}, {}, { etcdServer: { clientPort: 12379 } }).etcdServer.clientPort).toBe(12379);
    expect(resolve({}, { KNARR_ETCD_CLIENT_PORT: '22379' }, { etcdServer: { clientPort: 12379 } }).etcdServer.clientPort).toBe(22379);
  });

  it('cluster', () => {
    const file = { cluster: { network: '10.50.0.0/16', user: 'fileuser' } };
    expect(resolve().cluster).toEqual({ network: '10.240.0.0/16', bridge: 'knarrbr0', user: null });
    expect(resolve({}, {}, file).cluster).toEqual({ network: '10.50.0.0/16', bridge: 'knarrbr0', user: 'fileuser' });
    expect(resolve({}, { KNARR_CLUSTER_NETWORK: '10.60.0.0/16', KNARR_USER: 'envuser' }, file).cluster).toEqual({
      network: '10.60.0.0/16',
      bridge: 'knarrbr0',
      user: 'envuser',
    });
    // A bad file value that env overrides is not consulted; a bad env value is named.
    expect(resolve({}, { KNARR_CLUSTER_NETWORK: '10.60.0.0/16' }, { cluster: { network: 'nope' } }).cluster.network).toBe('10.60.0.0/16');
    expect(() => resolve({}, {}, { cluster: { network: 'nope' } })).toThrow(/^\/etc\/knarr\/config.yaml: cluster.network: /);
  });

  it('scheduler', () => {
    expect(resolve().scheduler.strategy).toBe('spread');
    expect(resolve({}, {}, { scheduler: { strategy: 'binpack' } }).scheduler.strategy).toBe('binpack');
    expect(resolve({}, { KNARR_SCHEDULER_STRATEGY: 'spread' }, { scheduler: { strategy: 'binpack' } }).scheduler.strategy).toBe('spread');
    expect(() => resolve({}, {}, { scheduler: { strategy: 'random' } })).toThrow(/^\/etc\/knarr\/config.yaml: scheduler.strategy: "random" is not a strategy/);
  });

  it('jobs', () => {
    expect(resolve({ stateDir: '/s' }).jobs).toEqual({ agentToken: null, agentTokenFile: '/s/agent.token', agentCa: null });
    expect(resolve({}, {}, { jobs: { agentTokenFile: '/file/tok', agentCa: '/file/ca.pem' } }).jobs).toEqual({
      agentToken: null,
      agentTokenFile: '/file/tok',
      agentCa: '/file/ca.pem',
    });
    expect(resolve({}, { KNARR_AGENT_TOKEN_FILE: '/env/tok', KNARR_AGENT_TOKEN: 't0k' }, { jobs: { agentTokenFile: '/file/tok' } }).jobs).toEqual({
      agentToken: 't0k',
      agentTokenFile: '/env/tok',
      agentCa: null,
    });
    expect(resolve({}, {}, { jobs: { agentTokenFile: 'tok' } }).jobs.agentTokenFile).toBe('/etc/knarr/tok');
    expect(resolve({}, { KNARR_AGENT_TOKEN_FILE: 'tok' }).jobs.agentTokenFile).toBe('/work/tok');
  });

  it('dots', () => {
    expect(resolve().dots).toEqual({ author: null, sshConfig: null, remoteKnarr: 'knarr', hubTokenFile: null, hubCaFile: null });
    const file = { dots: { author: 'file@a', remoteKnarr: 'sudo knarr', hubTokenFile: 'hub.token' } };
    expect(resolve({}, {}, file).dots).toEqual({
      author: 'file@a',
      sshConfig: null,
      remoteKnarr: 'sudo knarr',
      hubTokenFile: '/etc/knarr/hub.token',
      hubCaFile: null,
    });
    expect(resolve({}, { KNARR_AUTHOR: 'env@a', KNARR_SSH_CONFIG: '/ssh', KNARR_HUB_TOKEN_FILE: 't', KNARR_HUB_CA_FILE: '/ca.pem' }, file).dots).toEqual({
      author: 'env@a',
      sshConfig: '/ssh',
      remoteKnarr: 'sudo knarr',
      hubTokenFile: '/work/t',
      hubCaFile: '/ca.pem',
    });
  });

  it('daemon: --ttl, --prune (--no-prune switches off what env set) and paths by source', () => {
    const where = { configFile: FILE, stateDir: '/var/lib/knarr', cwd: '/work', hostname: 'box1' };
    const daemon = (flags: Record<string, unknown>, env: Record<string, string>, file: Record<string, unknown>) =>
      resolveDaemonSettings(flags, resolve({}, env, { daemon: file }).daemon, where);
    expect(daemon({}, {}, {})).toMatchObject({ ttlSeconds: 10, prune: false, tokenFile: '/var/lib/knarr/agent.token', tags: [] });
    expect(daemon({}, {}, { ttl: 20, prune: true, tokenFile: 'tok' })).toMatchObject({ ttlSeconds: 20, prune: true, tokenFile: '/etc/knarr/tok' });
    expect(
      daemon(
        {},
        { KNARR_DAEMON_TTL: '30', KNARR_DAEMON_PRUNE: '0', KNARR_DAEMON_TOKEN_FILE: 'tok', KNARR_DAEMON_TAGS: 'b,a' },
        { ttl: 20, prune: true, tokenFile: 'tok' },
      ),
    ).toMatchObject({ ttlSeconds: 30, prune: false, tokenFile: '/work/tok', tags: ['a', 'b'] });
    expect(daemon({ ttl: '40', prune: true }, { KNARR_DAEMON_TTL: '30', KNARR_DAEMON_PRUNE: '0' }, { ttl: 20 })).toMatchObject({ ttlSeconds: 40, prune: true });
    expect(daemon({ prune: false }, { KNARR_DAEMON_PRUNE: '1' }, { prune: true }).prune).toBe(false);
    expect(() => daemon({}, { KNARR_DAEMON_TTL: '1' }, { ttl: 20 })).toThrow(/^KNARR_DAEMON_TTL: must be a whole number of seconds from 2 to 300/);
    // A bad variable or file value that a flag sets aside is not consulted, and other commands do not read it.
    expect(daemon({ ttl: '40' }, { KNARR_DAEMON_TTL: '1' }, { ttl: 1 }).ttlSeconds).toBe(40);
    expect(resolve({}, { KNARR_DAEMON_TTL: '1' }, { daemon: { ttl: 1 } }).fleet).toBe('default');
    expect(() => daemon({}, { KNARR_DAEMON_PRUNE: 'maybe' }, {})).toThrow(/^KNARR_DAEMON_PRUNE: "maybe" is not a boolean/);
    expect(() => daemon({}, { KNARR_DAEMON_TLS_CERT: '/c.pem' }, {})).toThrow(/^KNARR_DAEMON_TLS_KEY: TLS needs both/);
  });
});

describe('nothing but the composition root reads knarr settings from the environment', () => {
  const root = new URL('../../src/', import.meta.url).pathname;
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : f.endsWith('.ts') ? [join(dir, f)] : []));
  it('no env.KNARR_* or env["KNARR_*"] in src, and process.env only in the CLI entry', () => {
    for (const f of files(root)) {
      const text = readFileSync(f, 'utf8');
      expect(text, f).not.toMatch(/\benv\s*(\.\s*KNARR_|\[\s*['"`]KNARR_)/);
      if (!f.endsWith('/cli/main.ts')) expect(text, f).not.toMatch(/process\.env/);
    }
  });
});
