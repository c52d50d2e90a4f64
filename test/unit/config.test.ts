import { describe, expect, it } from 'vitest';
import { defaults, resolveConfig, validateConfigFile } from '../../src/core/config.js';

const resolve = (flags = {}, env = {}, file = {}) => resolveConfig(flags, env, file, null, '/work');

describe('config precedence: flag > env > file > default', () => {
  it('uses defaults when nothing is given', () => {
    const c = resolve();
    expect(c.stateDir).toBe(defaults().stateDir);
    expect(c.output).toBe('table');
    expect(c.etcd).toEqual([]);
    expect(c.fleet).toBe('default');
    expect(Object.isFrozen(c)).toBe(true);
  });
  it('file beats default, env beats file, flag beats env', () => {
    const file = { stateDir: '/from/file', fleet: 'filefleet', output: 'yaml' };
    const env = { KNARR_STATE_DIR: '/from/env', KNARR_FLEET: 'envfleet' };
    expect(resolve({}, {}, file).stateDir).toBe('/from/file');
    expect(resolve({}, env, file).stateDir).toBe('/from/env');
    expect(resolve({ stateDir: '/from/flag' }, env, file).stateDir).toBe('/from/flag');
    expect(resolve({}, env, file).fleet).toBe('envfleet');
    expect(resolve({}, {}, file).output).toBe('yaml');
    expect(resolve({}, { KNARR_OUTPUT: 'json' }, file).output).toBe('json');
    expect(resolve({ output: 'table' }, { KNARR_OUTPUT: 'json' }, file).output).toBe('table');
  });
  it('--json and KNARR_JSON select json', () => {
    expect(resolve({ json: true }).output).toBe('json');
    expect(resolve({}, { KNARR_JSON: '1' }).output).toBe('json');
  });
  it('booleans come from env as 1/0', () => {
    expect(resolve({}, { KNARR_DRY_RUN: '1' }).dryRun).toBe(true);
    expect(resolve({}, { KNARR_VERBOSE: 'true' }, { verbose: false }).verbose).toBe(true);
    expect(() => resolve({}, { KNARR_QUIET: 'maybe' })).toThrow(/^KNARR_QUIET: "maybe" is not a boolean/);
  });
  it('etcd endpoints come as a comma list or a YAML list', () => {
    expect(resolve({ etcd: 'http://a:2379, http://b:2379' }).etcd).toEqual(['http://a:2379', 'http://b:2379']);
    expect(resolve({}, {}, { etcd: ['http://c:2379'] }).etcd).toEqual(['http://c:2379']);
    expect(() => resolve({ etcd: 'a:2379' })).toThrow(/^--etcd: /);
  });
  it('an empty --etcd or KNARR_ETCD is an error, not the managed etcd', () => {
    expect(() => resolve({ etcd: '' })).toThrow(/^--etcd: is empty; give the fleet's endpoints/);
    expect(() => resolve({ etcd: ' , ' })).toThrow(/^--etcd: is empty/);
    expect(() => resolve({}, { KNARR_ETCD: '' })).toThrow(/^KNARR_ETCD: is empty/);
    expect(resolve({}, {}).etcd).toEqual([]);
  });
  it('an endpoint with a path, a query or a user and password is refused, the password not shown', () => {
    expect(() => resolve({ etcd: 'http://a:2379/v3' })).toThrow(/^--etcd: "http:\/\/a:2379\/v3" has a path \(\/v3\)/);
    expect(() => resolve({ etcd: 'http://a:2379/?x=1' })).toThrow(/has a query or fragment/);
    let message = '';
    try {
      resolve({}, { KNARR_ETCD: 'http://root:s3cret@a:2379' });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^KNARR_ETCD: "http:\/\/root:\*\*\*@a:2379" carries a user and password/);
    expect(message).not.toContain('s3cret');
    expect(resolve({ etcd: 'http://a:2379/' }).etcd).toEqual(['http://a:2379']);
    expect(resolve({ etcd: 'https://[::1]:2379' }).etcd).toEqual(['https://[::1]:2379']);
  });
  it("the hub directory: KNARR_HUB_DIR over the file's hub: {dir}; none by default", () => {
    expect(resolve().hub.dir).toBeNull();
    expect(validateConfigFile('f.yaml', { hub: { dir: '/srv/hub' } })).toEqual({ hub: { dir: '/srv/hub' } });
    expect(() => validateConfigFile('f.yaml', { hub: { path: '/srv/hub' } })).toThrow(/f\.yaml: hub\.path: unknown setting/);
    expect(resolve({}, {}, { hub: { dir: '/srv/hub' } }).hub.dir).toBe('/srv/hub');
    expect(resolve({}, { KNARR_HUB_DIR: 'rel/hub' }, { hub: { dir: '/srv/hub' } }).hub.dir).toBe('/work/rel/hub');
  });
  it('a relative state dir is taken from the working directory', () => {
    expect(resolve({ stateDir: 'st' }).stateDir).toBe('/work/st');
  });
  it('file settings for the pool and etcd server', () => {
    const c = resolve({}, {}, { pool: { name: 'tank', size: '4G' }, etcdServer: { clientPort: 12379 } });
    expect(c.pool).toEqual({ name: 'tank', driver: 'zfs', size: '4G' });
    expect(c.etcdServer).toEqual({ clientPort: 12379, peerPort: 2380 });
    expect(() => resolve({}, {}, { etcdServer: { clientPort: 70000 } })).toThrow(/etcdServer.clientPort/);
  });
  it('a bad fleet name is refused', () => {
    expect(() => resolve({ fleet: 'a/b' })).toThrow(/^--fleet: /);
  });
});

describe('config file validation names the key', () => {
  it('refuses unknown keys and wrong types', () => {
    expect(() => validateConfigFile('/etc/knarr/config.yaml', { stateDirr: '/x' })).toThrow(/config.yaml: stateDirr: unknown setting/);
    expect(() => validateConfigFile('f', { verbose: 'yes' })).toThrow(/f: verbose: must be true or false/);
    expect(() => validateConfigFile('f', { pool: { nam: 'x' } })).toThrow(/f: pool.nam: unknown setting/);
    expect(() => validateConfigFile('f', ['a'])).toThrow(/must be a YAML mapping/);
    // As the YAML and JSON parsers hand them over: an own key named __proto__.
    expect(() => validateConfigFile('f', JSON.parse('{"__proto__": {"stateDir": "/x"}}'))).toThrow(/^f: __proto__: unknown setting/);
    expect(() => validateConfigFile('f', JSON.parse('{"constructor": 1}'))).toThrow(/^f: constructor: unknown setting/);
  });
  it('accepts an empty file', () => {
    expect(validateConfigFile('f', null)).toEqual({});
  });
});
