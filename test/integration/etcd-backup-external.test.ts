import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { startAuthEtcd, startTlsEtcd, type AuthEtcdInstance, type TlsEtcdInstance } from '../harness/etcd.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('etcd backup of an external etcd', haveTools('etcd', 'etcdctl', 'openssl'), 'needs etcd, etcdctl and openssl');

/** A fleet's own etcd (--etcd) that wants a client certificate, or a user: backup, compact and defrag reach it with what the settings give. */
describe.skipIf(!run)('backup, compact and defrag of an external etcd over TLS and with auth', () => {
  let tmp: TempDir;
  let tls: TlsEtcdInstance;
  let auth: AuthEtcdInstance;

  beforeAll(async () => {
    tmp = await tempDir('knarr-etcd-external-');
    [tls, auth] = await Promise.all([startTlsEtcd(), startAuthEtcd()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([tls?.stop(), auth?.stop()]);
    await tmp?.cleanup();
  });

  it('with a client certificate: the snapshot is taken and checked; without one the endpoint is not healthy', async () => {
    const state = ['--state-dir', `${tmp.path}/state`, '--etcd', tls.url];
    const certs = ['--etcd-ca', tls.certs.ca, '--etcd-cert', tls.certs.clientCert, '--etcd-key', tls.certs.clientKey];
    expect((await knarr([...state, ...certs, 'host', 'list'])).code).toBe(0);
    const backup = await knarr([...state, ...certs, '--json', 'etcd', 'backup', `${tmp.path}/tls.db`]);
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.json()).toMatchObject({ endpoint: tls.url });
    expect(backup.json().keys).toBeGreaterThan(0);
    for (const verb of ['compact', 'defrag']) {
      const r = await knarr([...state, ...certs, 'etcd', verb]);
      expect(r.code, `${verb}: ${r.stderr}`).toBe(0);
    }
    const bare = await knarr([...state, 'etcd', 'backup', `${tmp.path}/bare.db`]);
    expect(bare.code).toBe(6);
    expect(bare.stderr).toContain('is healthy');
  }, 60_000);

  it('with an etcd user: the password goes to etcdctl in its environment, never on its command line', async () => {
    const state = ['--state-dir', `${tmp.path}/auth-state`, '--etcd', auth.url, '--etcd-user', auth.user, '--etcd-password-file', auth.passwordFile];
    expect((await knarr([...state, 'host', 'list'])).code).toBe(0);
    const backup = await knarr([...state, '--json', 'etcd', 'backup', `${tmp.path}/auth.db`]);
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.json().keys).toBeGreaterThan(0);
    const compact = await knarr([...state, 'etcd', 'compact']);
    expect(compact.code, compact.stderr).toBe(0);
    const dry = await knarr([...state, '--dry-run', 'etcd', 'defrag']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('etcdctl --endpoints');
    expect(dry.stdout + dry.stderr).not.toContain(auth.password);
    const wrong = await knarr(['--state-dir', `${tmp.path}/auth-state`, '--etcd', auth.url, 'etcd', 'compact']);
    expect(wrong.code).not.toBe(0);
  }, 60_000);
});
