import { createServer, request } from 'node:http';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { knarr } from '../harness/cli.js';
import { freePort } from '../harness/ports.js';
import {
  startAuthEtcd,
  startEtcd,
  startEtcdCluster,
  startTlsEtcd,
  type AuthEtcdInstance,
  type EtcdInstance,
  type EtcdCluster,
  type TlsEtcdInstance,
} from '../harness/etcd.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('the CLI against a secured or clustered etcd', haveTools('etcd', 'etcdctl', 'openssl'), 'etcd, etcdctl or openssl is not installed');
const BIN = new URL('../../bin/knarr', import.meta.url).pathname;

describe.skipIf(!run)('the CLI reaches etcd over TLS and with auth', () => {
  let tls: TlsEtcdInstance;
  let auth: AuthEtcdInstance;
  let tmp: TempDir;
  beforeAll(async () => {
    [tls, auth, tmp] = await Promise.all([startTlsEtcd(), startAuthEtcd(), tempDir('knarr-etcd-client-')]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([tls?.stop(), auth?.stop(), tmp?.cleanup()]);
  });
  const state = () => ['--state-dir', `${tmp.path}/state`];

  it('https with --etcd-ca, --etcd-cert and --etcd-key works, and so do their variables', async () => {
    const c = tls.certs;
    const r = await knarr([...state(), '--etcd', tls.url, '--etcd-ca', c.ca, '--etcd-cert', c.clientCert, '--etcd-key', c.clientKey, 'host', 'list', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const env = { KNARR_ETCD: tls.url, KNARR_ETCD_CA: c.ca, KNARR_ETCD_CERT: c.clientCert, KNARR_ETCD_KEY: c.clientKey };
    expect((await knarr([...state(), 'host', 'list', '--json'], { env })).code).toBe(0);
  });

  it('without a client certificate: exit 6 naming the endpoint and --etcd-cert', async () => {
    const r = await knarr([...state(), '--etcd', tls.url, '--etcd-ca', tls.certs.ca, 'host', 'list']);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain(tls.url);
    expect(r.stderr).toMatch(/--etcd-cert/);
  });

  it('with a CA that did not sign the member: exit 6 naming --etcd-ca', async () => {
    const c = tls.certs;
    const r = await knarr([...state(), '--etcd', tls.url, '--etcd-ca', c.otherCa, '--etcd-cert', c.clientCert, '--etcd-key', c.clientKey, 'host', 'list']);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/not trusted/);
    expect(r.stderr).toMatch(/--etcd-ca/);
  });

  it('a CA file that cannot be read, or a certificate without its key, is a usage error naming the flag', async () => {
    const missing = await knarr([...state(), '--etcd', tls.url, '--etcd-ca', `${tmp.path}/nope.pem`, 'host', 'list']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--etcd-ca: cannot read .*nope\.pem: ENOENT/);
    const half = await knarr([...state(), '--etcd', tls.url, '--etcd-ca', tls.certs.ca, '--etcd-cert', tls.certs.clientCert, 'host', 'list']);
    expect(half.code).toBe(2);
    expect(half.stderr).toMatch(/--etcd-key/);
  });

  it('an http:// endpoint that serves https, and the reverse, name the scheme to write', async () => {
    const wrong = await knarr([...state(), '--etcd', tls.url.replace('https:', 'http:'), 'host', 'list']);
    expect(wrong.code).toBe(6);
    expect(wrong.stderr).toMatch(/if it serves https, write https:\/\//);
    const plain = await knarr([...state(), '--etcd', auth.url.replace('http:', 'https:'), 'host', 'list']);
    expect(plain.code).toBe(6);
    expect(plain.stderr).toMatch(/if it serves plain http, write http:\/\//);
  });

  it('etcd auth: --etcd-user with KNARR_ETCD_PASSWORD or --etcd-password-file; a wrong one is exit 2', async () => {
    const base = [...state(), '--etcd', auth.url, '--etcd-user', auth.user];
    expect((await knarr([...base, 'host', 'list'], { env: { KNARR_ETCD_PASSWORD: auth.password } })).code).toBe(0);
    expect((await knarr([...base, '--etcd-password-file', auth.passwordFile, 'host', 'list'])).code).toBe(0);
    const wrong = await knarr([...base, 'host', 'list'], { env: { KNARR_ETCD_PASSWORD: 'nope' } });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/refused user root: wrong user or password/);
    const none = await knarr([...state(), '--etcd', auth.url, 'host', 'list']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/requires etcd auth[\s\S]*--etcd-user/);
    const nopw = await knarr([...base, 'host', 'list'], { env: { KNARR_ETCD_PASSWORD: undefined } });
    expect(nopw.code).toBe(2);
    expect(nopw.stderr).toMatch(/--etcd-password-file or KNARR_ETCD_PASSWORD/);
  });

  it('a user and password in the endpoint URL is refused, pointing at --etcd-user', async () => {
    const r = await knarr([...state(), '--etcd', auth.url.replace('//', '//root:pw@'), 'host', 'list']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--etcd-user/);
    expect(r.stderr).not.toContain(':pw@');
  });
});

describe.skipIf(!run)('the CLI against a 3-member etcd', () => {
  let cluster: EtcdCluster;
  let tmp: TempDir;
  beforeAll(async () => {
    [cluster, tmp] = await Promise.all([startEtcdCluster(3), tempDir('knarr-etcd-client-')]);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
    await tmp?.cleanup();
  });
  // A separate process, as an operator runs it: its exit code and its whole time, start-up included.
  const timed = async (endpoints: readonly string[], ...argv: string[]) => {
    const t = Date.now();
    const r = await execa(process.execPath, [BIN, '--state-dir', `${tmp.path}/state`, '--etcd', endpoints.join(','), ...argv], {
      reject: false,
      env: { KNARR_CONFIG: undefined, KNARR_ETCD: undefined },
      timeout: 30_000,
    });
    return { code: r.exitCode, stderr: String(r.stderr), ms: Date.now() - t };
  };

  it('a frozen first member (SIGSTOP) costs a command less than 1 s more', async () => {
    const leader = await cluster.leader();
    const follower = cluster.members.find((m) => m !== leader)!;
    const endpoints = [follower.url, ...cluster.endpoints.filter((e) => e !== follower.url)];
    const healthy = await timed(endpoints, 'host', 'list');
    expect(healthy.code).toBe(0);
    follower.freeze();
    try {
      const frozen = await timed(endpoints, 'host', 'list');
      expect(frozen.code).toBe(0);
      expect(frozen.ms - healthy.ms).toBeLessThan(1000);
    } finally {
      follower.thaw();
    }
  }, 60_000);

  it('two members killed: exit 6 naming the endpoints within the deadline, no hang', async () => {
    await cluster.members[1]!.kill();
    await cluster.members[2]!.kill();
    try {
      const r = await timed(cluster.endpoints, 'host', 'list');
      expect(r.code).toBe(6);
      for (const e of cluster.endpoints) expect(r.stderr).toContain(e);
      expect(r.ms).toBeLessThan(6500);
    } finally {
      const { restartMember } = await import('../harness/etcd.js');
      await restartMember(cluster.members[1]!);
      await restartMember(cluster.members[2]!);
    }
  }, 60_000);
});

/** A proxy in front of etcd that passes every request, but cuts the connection after etcd has applied a transaction, losing its answer. */
async function answerLosingProxy(target: string): Promise<{ url: string; lost: number; close(): Promise<void> }> {
  const state = { lost: 0 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const up = request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
        if (req.url === '/v3/kv/txn') {
          r.resume();
          r.on('end', () => {
            state.lost++;
            req.socket.destroy();
          });
          return;
        }
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      up.end(Buffer.concat(chunks));
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

describe.skipIf(!run)('a transaction whose answer is lost', () => {
  let etcd: EtcdInstance;
  beforeAll(async () => {
    etcd = await startEtcd();
  }, 60_000);
  afterAll(() => etcd?.stop());

  it('is retried on the next member and reported as done when its own write is there', async () => {
    const proxy = await answerLosingProxy(etcd.url);
    // A new client each time: one that lost an answer keeps to the other member after.
    const fresh = async <T>(use: (s: Store) => Promise<T>) => {
      const s = await connectEtcd([proxy.url, etcd.url]);
      try {
        return await use(s);
      } finally {
        await s.close();
      }
    };
    try {
      const p = `/knarr/${Date.now().toString(36)}/`;
      expect(await fresh((s) => s.createIfAbsent(`${p}lock`, 'me'))).toBe(true);
      expect(await fresh((s) => s.increment(`${p}n`))).toBe(1);
      expect(
        await fresh((s) =>
          s.createAllIfAbsent([
            { key: `${p}a`, value: '1' },
            { key: `${p}b`, value: '2' },
          ]),
        ),
      ).toBe(true);
      expect(proxy.lost).toBe(3);
      // Another writer's value is not taken for ours.
      expect(await fresh((s) => s.createIfAbsent(`${p}lock`, 'someone else'))).toBe(false);
      expect(await fresh((s) => s.get(`${p}n`))).toBe('1');
    } finally {
      await proxy.close();
    }
  });
});
