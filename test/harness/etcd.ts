import { execa, type ResultPromise } from 'execa';
import { freePort } from './ports.js';
import { tempDir, type TempDir } from './tmp.js';

export interface EtcdInstance {
  url: string;
  stop(): Promise<void>;
}

/** The argv of a one-member test etcd (name t) serving clientUrl; its peer stays on loopback since there is only one member. */
function singleMemberArgs(dataDir: string, clientUrl: string, peerPort: number, extraArgs: readonly string[] = []): string[] {
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    '--name',
    't',
    '--data-dir',
    dataDir,
    '--listen-client-urls',
    clientUrl,
    '--advertise-client-urls',
    clientUrl,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    `t=${peer}`,
    ...extraArgs,
  ];
}

/** A private etcd on free ports and its own data directory, for store tests. Clients reach it on host (e.g. a netns fabric's gateway). */
export async function startEtcd(host = '127.0.0.1', extraArgs: readonly string[] = []): Promise<EtcdInstance> {
  const dir: TempDir = await tempDir('knarr-etcd-');
  const url = `http://${host}:${await freePort(host)}`;
  const proc = spawnEtcd(singleMemberArgs(`${dir.path}/data`, url, await freePort(), extraArgs));
  return running(proc, dir, url, {}, 'test etcd');
}

/** Waits until the member answers healthy (killing it and removing dir if it never does), then hands it back with its stop. */
async function running(proc: ResultPromise, dir: TempDir, url: string, tls: { ca?: string; cert?: string; key?: string }, what: string): Promise<EtcdInstance> {
  try {
    await waitHealthy(url, tls, what);
  } catch (e) {
    proc.kill('SIGKILL');
    await proc;
    await dir.cleanup();
    throw e;
  }
  return {
    url,
    async stop() {
      proc.kill('SIGTERM');
      await proc;
      await dir.cleanup();
    },
  };
}

/** Runs one etcd member in the foreground of a child process; the caller waits for it to be healthy. */
function spawnEtcd(args: readonly string[]): ResultPromise {
  return execa('etcd', [...args], { reject: false, cleanup: true, stdio: 'ignore' });
}

/** Waits until url/health answers true (over TLS with ca, cert and key when given). */
async function waitHealthy(url: string, tls: { ca?: string; cert?: string; key?: string } = {}, what = 'test etcd', timeoutMs = 30_000): Promise<void> {
  const { request } = await import(url.startsWith('https:') ? 'node:https' : 'node:http');
  const { readFileSync } = await import('node:fs');
  const opts = Object.fromEntries(Object.entries(tls).map(([k, v]) => [k, readFileSync(v!)]));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = request(`${url}/health`, { ...opts, timeout: 1000 }, (res: import('node:http').IncomingMessage) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(res.statusCode === 200 && text.includes('true')));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
      req.end();
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not become healthy`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** PEM files of a test CA and what it signed, made with openssl in a temporary directory. */
export interface TestCerts {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Another CA, which signed nothing of the above. */
  otherCa: string;
  /** A client certificate signed by the other CA. */
  strangerCert: string;
  strangerKey: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await execa('openssl', args, { cwd: dir });
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(
    dir,
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`].concat([
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
    ]),
  );
}

async function signed(dir: string, ca: string, name: string, cn: string, ext: string): Promise<void> {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(`${dir}/${name}.ext`, ext);
  await openssl(dir, [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${cn}`,
  ]);
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
  ]);
}

/** A CA, a server certificate for 127.0.0.1, a client certificate (CN root), and a stranger CA with its own client. */
export async function makeTestCerts(dir: string): Promise<TestCerts> {
  await makeCa(dir, 'ca');
  await makeCa(dir, 'other-ca');
  await signed(dir, 'ca', 'server', 'etcd', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  await signed(dir, 'ca', 'client', 'root', 'extendedKeyUsage=clientAuth\n');
  await signed(dir, 'other-ca', 'stranger', 'root', 'extendedKeyUsage=clientAuth\n');
  const p = (f: string) => `${dir}/${f}`;
  return {
    dir,
    ca: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
    otherCa: p('other-ca.pem'),
    strangerCert: p('stranger.pem'),
    strangerKey: p('stranger.key'),
  };
}

export interface TlsEtcdInstance extends EtcdInstance {
  certs: TestCerts;
}

/** A one-member etcd serving https on 127.0.0.1 that requires a client certificate signed by its CA (--client-cert-auth). */
export async function startTlsEtcd(): Promise<TlsEtcdInstance> {
  const dir = await tempDir('knarr-etcd-tls-');
  const certs = await makeTestCerts(dir.path);
  const url = `https://127.0.0.1:${await freePort()}`;
  const tlsArgs = ['--cert-file', certs.serverCert, '--key-file', certs.serverKey, '--trusted-ca-file', certs.ca, '--client-cert-auth'];
  const proc = spawnEtcd(singleMemberArgs(`${dir.path}/data`, url, await freePort(), tlsArgs));
  const client = { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey };
  return { ...(await running(proc, dir, url, client, 'test etcd over TLS')), certs };
}

export interface AuthEtcdInstance extends EtcdInstance {
  user: string;
  password: string;
  /** A file holding the password, as --etcd-password-file takes it. */
  passwordFile: string;
}

/** A private etcd with auth enabled: user root (role root) with a random password; tokens live tokenTtl seconds. */
export async function startAuthEtcd(tokenTtl = 300): Promise<AuthEtcdInstance> {
  const etcd = await startEtcd('127.0.0.1', ['--auth-token-ttl', String(tokenTtl)]);
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const dir = await tempDir('knarr-etcd-auth-');
  const passwordFile = `${dir.path}/password`;
  const { writeFileSync } = await import('node:fs');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  const env = { ETCDCTL_API: '3' };
  await execa('etcdctl', ['--endpoints', etcd.url, 'user', 'add', `root:${password}`], { env });
  await execa('etcdctl', ['--endpoints', etcd.url, 'auth', 'enable'], { env });
  return {
    url: etcd.url,
    user: 'root',
    password,
    passwordFile,
    async stop() {
      await etcd.stop();
      await dir.cleanup();
    },
  };
}

/** One member of a test cluster: it can be killed, frozen (SIGSTOP), thawed and started again with its data. */
export interface EtcdMember {
  name: string;
  url: string;
  readonly running: boolean;
  kill(): Promise<void>;
  freeze(): void;
  thaw(): void;
  start(): Promise<void>;
}

export interface EtcdCluster {
  endpoints: string[];
  members: EtcdMember[];
  /** The member that leads now (asked of the running members). */
  leader(): Promise<EtcdMember>;
  /** Thaws and kills every member, then removes the data. */
  stop(): Promise<void>;
}

/** A cluster of size members on 127.0.0.1 with private ports and data directories. */
export async function startEtcdCluster(size = 3): Promise<EtcdCluster> {
  const dir = await tempDir('knarr-etcd-cluster-');
  const token = `t-${Math.random().toString(36).slice(2)}`;
  const specs: { name: string; client: number; peer: number }[] = [];
  for (let i = 0; i < size; i++) specs.push({ name: `m${i}`, client: await freePort(), peer: await freePort() });
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`).join(',');
  const members: EtcdMember[] = specs.map((s) => {
    const url = `http://127.0.0.1:${s.client}`;
    let proc: ResultPromise | null = null;
    let frozen = false;
    const args = [
      '--name',
      s.name,
      '--data-dir',
      `${dir.path}/${s.name}`,
      '--listen-client-urls',
      url,
      '--advertise-client-urls',
      url,
      '--listen-peer-urls',
      `http://127.0.0.1:${s.peer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${s.peer}`,
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-token',
      token,
      '--initial-cluster-state',
      'new',
      '--heartbeat-interval',
      '100',
      '--election-timeout',
      '1000',
    ];
    return {
      name: s.name,
      url,
      get running() {
        return proc !== null;
      },
      async kill() {
        if (!proc) return;
        if (frozen) this.thaw();
        proc.kill('SIGKILL');
        await proc;
        proc = null;
      },
      freeze() {
        if (proc && !frozen) {
          process.kill(proc.pid!, 'SIGSTOP');
          frozen = true;
        }
      },
      thaw() {
        if (proc && frozen) {
          process.kill(proc.pid!, 'SIGCONT');
          frozen = false;
        }
      },
      async start() {
        if (proc) return;
        proc = spawnEtcd(args);
      },
    };
  });
  await Promise.all(members.map((m) => m.start()));
  const cluster: EtcdCluster = {
    endpoints: members.map((m) => m.url),
    members,
    async leader() {
      for (const m of members) {
        if (!m.running) continue;
        const res = await fetch(`${m.url}/v3/maintenance/status`, { method: 'POST', body: '{}' }).catch(() => null);
        if (!res?.ok) continue;
        const status = (await res.json()) as { leader?: string; header?: { member_id?: string } };
        for (const other of members) {
          const r = await fetch(`${other.url}/v3/maintenance/status`, { method: 'POST', body: '{}' }).catch(() => null);
          const s = r?.ok ? ((await r.json()) as { header?: { member_id?: string } }) : null;
          if (s?.header?.member_id === status.leader) return other;
        }
      }
      throw new Error('no member of the test cluster knows a leader');
    },
    async stop() {
      for (const m of members) await m.kill();
      await dir.cleanup();
    },
  };
  try {
    await Promise.all(members.map((m) => waitHealthy(m.url, {}, `test etcd member ${m.name}`)));
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

/** Starts a member again and waits until it is healthy (it rejoins with its data). */
export async function restartMember(m: EtcdMember): Promise<void> {
  await m.start();
  await waitHealthy(m.url, {}, `test etcd member ${m.name}`);
}
