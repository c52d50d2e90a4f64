import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { execa } from 'execa';
import { spawnHostAgent, type AgentUnderTest } from './agent.js';
import { knarr } from './cli.js';
import { eventually } from './eventually.js';
import type { NetHost } from './netns.js';

/** A CA and a server certificate for ip (PEM files in dir), as an operator makes them with openssl for a hub. */
export async function hubCertificates(dir: string, ip: string): Promise<{ ca: string; cert: string; key: string }> {
  mkdirSync(dir, { recursive: true });
  const openssl = (args: string[]) => execa('openssl', args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=hub test ca']);
  await openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${ip}`]);
  writeFileSync(`${dir}/server.ext`, `subjectAltName=IP:${ip}\nextendedKeyUsage=serverAuth\n`);
  await openssl(
    ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2'].concat([
      '-extfile',
      'server.ext',
    ]),
  );
  return { ca: `${dir}/ca.pem`, cert: `${dir}/server.pem`, key: `${dir}/server.key` };
}

export interface HubResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read fields of the answer without declaring its shape.
  json<T = any>(): T;
}

/** A hub token as `knarr hub token create` prints it, and the file a remote reads it from. */
export interface HubToken {
  id: string;
  user: string;
  access: 'read' | 'write';
  token: string;
  file: string;
}

/** An agent serving a hub over https on a network-namespace host. */
export interface HubUnderTest {
  host: NetHost;
  agent: AgentUnderTest;
  /** https://IP:7946 */
  base: string;
  /** The hub's directory, on the filesystem every host shares. */
  dir: string;
  /** The CA that signed the hub's certificate. */
  ca: string;
  /** Makes a token with `knarr hub token create` on the hub's directory. */
  token(user: string, access: 'read' | 'write'): Promise<HubToken>;
  revoke(id: string): Promise<void>;
  /** One request to the hub's API, as any HTTP client sends it. */
  request(method: string, path: string, opts?: { token?: string; headers?: Record<string, string>; body?: string | Buffer }): Promise<HubResponse>;
}

/** Starts `knarr daemon --hub DIR` with TLS on host (its store is etcd at etcdUrl) and waits until the hub answers. */
export async function startHub(host: NetHost, etcdUrl: string, dir: string): Promise<HubUnderTest> {
  const tls = await hubCertificates(`${dir}/tls`, host.ip);
  const hubDir = `${dir}/hub`;
  const agent = spawnHostAgent(host, {
    etcd: etcdUrl,
    stateDir: `${dir}/agent-state`,
    flags: ['--tls-cert', tls.cert, '--tls-key', tls.key, '--hub', hubDir],
  });
  const base = `https://${host.ip}:7946`;
  const ca = readFileSync(tls.ca);
  let tokens = 0;
  const hub: HubUnderTest = {
    host,
    agent,
    base,
    dir: hubDir,
    ca: tls.ca,
    async token(user, access) {
      const r = await knarr(['--json', 'hub', 'token', 'create', user, `--${access}`, '--hub', hubDir]);
      if (r.code !== 0) throw new Error(`hub token create ${user}: ${r.stderr}`);
      const t = r.json();
      const file = `${dir}/token-${user}-${access}-${tokens++}`;
      writeFileSync(file, `${t.token}\n`, { mode: 0o600 });
      return { ...t, file };
    },
    async revoke(id) {
      const r = await knarr(['hub', 'token', 'revoke', id, '--hub', hubDir]);
      if (r.code !== 0) throw new Error(`hub token revoke ${id}: ${r.stderr}`);
    },
    request(method, path, opts = {}) {
      return new Promise((resolve, reject) => {
        const headers: Record<string, string> = { ...opts.headers };
        if (opts.token) headers.authorization = `Bearer ${opts.token}`;
        const req = request(`${base}${path}`, { method, ca, headers, timeout: 30_000 }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body,
              json: () => JSON.parse(body),
            });
          });
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
        req.on('error', reject);
        req.end(opts.body);
      });
    },
  };
  try {
    // Any answer over TLS from the hub's routes: the agent is up and serves the hub.
    await eventually(
      async () => {
        const r = await hub.request('GET', '/hub/v1/dots');
        if (r.status !== 200) throw new Error(`GET /hub/v1/dots: ${r.status} ${r.body}`);
      },
      60_000,
      250,
    );
  } catch (e) {
    const { log } = await agent.stop();
    throw new Error(`the hub did not answer: ${(e as Error).message}\nagent log:\n${log.slice(-3000)}`);
  }
  return hub;
}
