import { describe, expect, it } from 'vitest';
import { etcdClientEnv, resolveConfig, validateConfigFile } from '../../src/core/config.js';

describe('the etcd client settings', () => {
  it('are null when not given', () => {
    expect(resolveConfig({}, {}, {}, null, '/srv').etcdClient).toEqual({ ca: null, cert: null, key: null, user: null, password: null, passwordFile: null });
  });

  it('take flag > env > file; a relative file in the config file is taken from its directory, one in a flag from the working directory', () => {
    const file = { etcdCa: 'ca.pem', etcdCert: '/pki/c.pem', etcdKey: 'c.key', etcdUser: 'fileuser', etcdPasswordFile: 'pw' };
    const c = resolveConfig({ etcdKey: 'k.pem' }, { KNARR_ETCD_USER: 'envuser', KNARR_ETCD_PASSWORD: 's3cret' }, file, '/etc/knarr/config.yaml', '/srv');
    expect(c.etcdClient).toEqual({
      ca: '/etc/knarr/ca.pem',
      cert: '/pki/c.pem',
      key: '/srv/k.pem',
      user: 'envuser',
      password: 's3cret',
      passwordFile: '/etc/knarr/pw',
    });
  });

  it('never take a password from the config file', () => {
    expect(() => validateConfigFile('/etc/knarr/config.yaml', { etcdPassword: 'x' })).toThrow(/etcdPassword: unknown setting/);
  });

  it('go to a knarr process this one starts as the same variables', () => {
    const c = resolveConfig({ etcdCa: '/a/ca.pem', etcdUser: 'u' }, { KNARR_ETCD_PASSWORD: 'p' }, {}, null, '/');
    expect(etcdClientEnv(c.etcdClient)).toEqual({ KNARR_ETCD_CA: '/a/ca.pem', KNARR_ETCD_USER: 'u', KNARR_ETCD_PASSWORD: 'p' });
    const back = resolveConfig({}, etcdClientEnv(c.etcdClient), {}, null, '/');
    expect(back.etcdClient).toEqual(c.etcdClient);
  });
});
