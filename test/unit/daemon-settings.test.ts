import { describe, expect, it } from 'vitest';
import { validateConfigFile } from '../../src/core/config.js';
import { resolveDaemonSettings, restartNeeded } from '../../src/core/daemon-settings.js';
import { sectionLayer } from '../../src/core/settings.js';

const where = { configFile: '/etc/knarr/config.yaml', stateDir: '/var/lib/knarr', cwd: '/work', hostname: 'box1' };
const resolve = (flags: Record<string, unknown> = {}, file?: Record<string, unknown>) =>
  resolveDaemonSettings(flags, sectionLayer('daemon', { file: file ? { daemon: file } : {}, configFile: where.configFile }), where);

describe('knarr daemon settings: flag > config file daemon: section > default', () => {
  it('defaults: the hostname, no tags, 127.0.0.1:7946, ten seconds, the token in the state dir, recovery', () => {
    expect(resolve()).toEqual({
      name: 'box1',
      tags: [],
      listen: { host: '127.0.0.1', port: 7946 },
      ttlSeconds: 10,
      tokenFile: '/var/lib/knarr/agent.token',
      tls: null,
      maxConnections: 1024,
      allowHostMounts: true,
      advertise: null,
      prune: false,
      mode: 'recovery',
      share: null,
      drainSeconds: 30,
      restartGraceSeconds: 30,
      leaveOnStop: false,
      collectSeconds: 300,
      etcdDefrag: { checkSeconds: 300, minFreeBytes: 64 * 1024 ** 2 },
      hubDir: null,
    });
  });

  it('the hub directory: --hub (from the working directory) wins over hub.dir from env or the file', () => {
    expect(resolveDaemonSettings({ hub: 'hubdir' }, {}, { ...where, hubDir: '/srv/hub' }).hubDir).toBe('/work/hubdir');
    expect(resolveDaemonSettings({}, {}, { ...where, hubDir: '/srv/hub' }).hubDir).toBe('/srv/hub');
  });

  it("the etcd member's scheduled defrag: from the file, 0 turns it off, a bad size names its key", () => {
    expect(resolve({}, { etcdDefragCheck: 0, etcdDefragMinFree: '1G' }).etcdDefrag).toEqual({ checkSeconds: 0, minFreeBytes: 1024 ** 3 });
    expect(() => resolve({}, { etcdDefragMinFree: 'lots' })).toThrow(/daemon\.etcdDefragMinFree/);
    expect(() => resolve({}, { etcdDefragCheck: -1 })).toThrow(/daemon\.etcdDefragCheck/);
  });

  it('the file sets each one; a flag wins over it', () => {
    const file = {
      name: 'h1',
      tags: ['ssd', 'zone=eu'],
      listen: '0.0.0.0:8000',
      ttl: 30,
      tokenFile: 'tok',
      tlsCert: '/c.pem',
      tlsKey: '/k.pem',
      advertise: '10.0.0.5',
      prune: true,
      mode: 'new',
      share: '/srv/share',
    };
    const s = resolve({}, file);
    expect(s).toMatchObject({
      name: 'h1',
      tags: ['ssd', 'zone=eu'],
      listen: { host: '0.0.0.0', port: 8000 },
      ttlSeconds: 30,
      tokenFile: '/etc/knarr/tok',
      tls: { cert: '/c.pem', key: '/k.pem' },
      advertise: '10.0.0.5',
      prune: true,
      mode: 'new',
      share: '/srv/share',
    });
    // A relative path in the file is taken from the file's directory; a flag's from the working directory.
    expect(resolve({ tokenFile: 'tok' }, file).tokenFile).toBe('/work/tok');
    const f = resolve({ name: 'h2', tags: ['gpu,fast'], ttl: '5', mode: 'recovery' }, file);
    expect(f).toMatchObject({ name: 'h2', tags: ['fast', 'gpu'], ttlSeconds: 5, mode: 'recovery', prune: true });
  });

  it('a comma-separated tags string in the file is a list', () => {
    expect(resolve({}, { tags: 'b,a' }).tags).toEqual(['a', 'b']);
  });

  it('every error names the flag, or the file and key its value came from', () => {
    expect(() => resolve({ listen: 'nowhere' })).toThrow(/^--listen: "nowhere" is not ADDRESS:PORT/);
    expect(() => resolve({}, { listen: 'nowhere' })).toThrow(/^\/etc\/knarr\/config.yaml: daemon.listen: /);
    expect(() => resolve({}, { ttl: 1 })).toThrow(/^\/etc\/knarr\/config.yaml: daemon.ttl: must be a whole number of seconds from 2 to 300/);
    expect(() => resolve({ ttl: 'ten' })).toThrow(/^--ttl: /);
    expect(() => resolve({}, { tags: ['bad tag'] })).toThrow(/^\/etc\/knarr\/config.yaml: daemon.tags: "bad tag" is not a tag/);
    expect(() => resolve({ tags: ['..'] })).toThrow(/^--tags: "\.\." is not a tag; start with a letter or digit/);
    expect(() => resolve({ tags: ['-lead'] })).toThrow(/^--tags: "-lead" is not a tag; start with a letter or digit/);
    expect(() => resolve({ tags: [''] })).toThrow(/^--tags: an empty tag/);
    expect(() => resolve({ tags: ['ssd,,gpu'] })).toThrow(/^--tags: an empty tag/);
    expect(resolve({ tags: ['ssd, zone=eu'] }).tags).toEqual(['ssd', 'zone=eu']);
    expect(() => resolve({}, { name: 'a b' })).toThrow(/^\/etc\/knarr\/config.yaml: daemon.name: "a b" contains a space/);
    expect(() => resolve({}, { mode: 'fresh' })).toThrow(/^\/etc\/knarr\/config.yaml: daemon.mode: use recovery/);
    expect(() => resolve({ drainTimeout: '-1' })).toThrow(/^--drain-timeout: must be a whole number of seconds from 0 to 3600/);
    expect(resolve({}, { drainTimeout: 0 }).drainSeconds).toBe(0);
    expect(() => resolve({ restartGrace: '5s' })).toThrow(/^--restart-grace: /);
    expect(() => resolve({}, { restartGrace: 4000 })).toThrow(
      /^\/etc\/knarr\/config.yaml: daemon.restartGrace: must be a whole number of seconds from 0 to 3600/,
    );
    expect(resolve({ restartGrace: '0', leaveOnStop: true })).toMatchObject({ restartGraceSeconds: 0, leaveOnStop: true });
    expect(() => resolve({}, { advertise: 'here' })).toThrow(/^\/etc\/knarr\/config.yaml: daemon.advertise: "here" is not an IP address/);
    expect(() => resolve({ tlsCert: '/c.pem' })).toThrow(/^--tls-key: TLS needs both/);
    expect(() => resolve({}, { tlsKey: '/k.pem' })).toThrow(/^\/etc\/knarr\/config.yaml: daemon.tlsCert: TLS needs both/);
  });

  it('the config file check refuses unknown daemon keys and wrong types, naming them', () => {
    expect(() => validateConfigFile('/f.yaml', { daemon: { colour: 'red' } })).toThrow(
      /^\/f.yaml: daemon.colour: unknown setting; known settings are name, tags, listen/,
    );
    expect(() => validateConfigFile('/f.yaml', { daemon: { ttl: '10s' } })).toThrow(/^\/f.yaml: daemon.ttl: must be a number/);
    expect(() => validateConfigFile('/f.yaml', { daemon: { prune: 'yes' } })).toThrow(/^\/f.yaml: daemon.prune: must be true or false/);
    expect(() => validateConfigFile('/f.yaml', { daemon: { tags: [1] } })).toThrow(/^\/f.yaml: daemon.tags: must be a list of strings/);
    expect(validateConfigFile('/f.yaml', { daemon: { tags: ['a'], prune: true } })).toEqual({ daemon: { tags: ['a'], prune: true } });
  });

  it('a reload applies tags, prune, the token file and the certificate; anything else needs a restart', () => {
    const running = resolve({}, { tags: ['a'], listen: '127.0.0.1:7000' });
    expect(
      restartNeeded(running, resolve({}, { tags: ['b'], prune: true, tokenFile: '/t', listen: '127.0.0.1:7000', restartGrace: 5, leaveOnStop: true })),
    ).toEqual([]);
    expect(restartNeeded(running, resolve({}, { tags: ['a'], listen: '127.0.0.1:7001', ttl: 20, mode: 'new' }))).toEqual(['listen', 'ttlSeconds', 'mode']);
  });
});
