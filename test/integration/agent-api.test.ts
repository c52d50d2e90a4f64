import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { agentUnderTest, type AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { haveDockerd, startDockerd, type Dockerd } from '../harness/dockerd.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('agent API limits', haveTools('etcd', 'prlimit'), 'etcd or prlimit is missing');

/** A GET on a connection of its own, as the CLI makes one: the status, or the socket error's code. */
const get = (url: string, token: string) =>
  new Promise<number | string>((resolve) => {
    const req = request(url, { agent: false, headers: { authorization: `Bearer ${token}` }, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.end();
  });

describe.skipIf(!run)("the agent's API under abuse", () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  let port: number;
  let agent: AgentUnderTest | null = null;
  const base = () => ['--etcd', etcd.url, '--state-dir', `${tmp.path}/state`];
  const k = (argv: string[], env: Record<string, string> = {}) => knarr([...base(), ...argv], { env });
  const hosts = async () => Object.fromEntries((await k(['--json', 'host', 'list'])).json().map((h: { name: string }) => [h.name, h]));
  // Few descriptors, as a busy host has: without a connection limit an idle flood takes them all.
  const startAgent = async (name: string, listen: string, flags: string[] = [], env?: Record<string, string>) =>
    (agent = await agentUnderTest({ etcd: etcd.url, stateDir: `${tmp.path}/state`, name, listen, flags, env, wrap: ['prlimit', '--nofile=1024:1024'] }));

  beforeAll(async () => {
    tmp = await tempDir('knarr-agent-api-');
    etcd = await startEtcd();
    port = await freePort();
  });
  afterEach(async () => {
    await agent?.stop();
    agent = null;
  });
  afterAll(async () => {
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it('2,000 idle connections do not shut out a request with the token; a connection that says nothing is closed', async () => {
    await startAgent('flood', `127.0.0.1:${port}`, ['--max-connections', '64']);
    const token = readFileSync(`${tmp.path}/state/agent.token`, 'utf8').trim();
    const url = `http://127.0.0.1:${port}/v1/health`;
    const idle = new Set<Socket>();
    let opened = 0;
    let flooding = true;
    const open = () =>
      new Promise<void>((resolve) => {
        const s = connect(port, '127.0.0.1');
        opened++;
        idle.add(s);
        s.on('error', () => undefined);
        s.once('connect', () => resolve());
        s.once('close', () => {
          idle.delete(s);
          resolve();
        });
      });
    try {
      for (let i = 0; i < 2100; i += 100) await Promise.all(Array.from({ length: 100 }, open));
      // The flood goes on while the requests are made: each closed connection is opened again.
      const churn = (async () => {
        while (flooding) await Promise.all(Array.from({ length: 50 }, open));
      })();
      const statuses: (number | string)[] = [];
      for (let i = 0; i < 20; i++) statuses.push(await get(url, token));
      flooding = false;
      await churn;
      expect(opened).toBeGreaterThan(2100);
      expect(statuses).toEqual(Array(20).fill(200));
      // The agent still does its work: its host stays up.
      expect((await hosts()).flood.up).toBe(true);
      // One that sends nothing is closed after the header timeout (10 s).
      const quiet = connect(port, '127.0.0.1');
      quiet.on('error', () => undefined);
      const t0 = Date.now();
      await new Promise((r) => quiet.once('close', r));
      expect(Date.now() - t0).toBeGreaterThan(8000);
      expect(Date.now() - t0).toBeLessThan(15_000);
    } finally {
      flooding = false;
      for (const s of idle) s.destroy();
    }
  }, 90_000);

  it('warns when it listens off loopback without TLS', async () => {
    const open = await startAgent('open', `0.0.0.0:${port}`);
    expect((await open.stop('SIGTERM')).log).toMatch(
      /the API listens on 0\.0\.0\.0 without TLS: its token, which lets its holder run anything on this host, crosses the network/,
    );
    const local = await startAgent('local', `127.0.0.1:${port}`);
    expect((await local.stop('SIGTERM')).log).not.toMatch(/without TLS/);
  }, 60_000);

  it('refuses a token file others can read, naming the fix; 0600 starts', async () => {
    const tokenFile = `${tmp.path}/loose/agent.token`;
    mkdirSync(`${tmp.path}/loose`, { recursive: true });
    writeFileSync(tokenFile, 'a-long-enough-token-for-the-agent\n');
    chmodSync(tokenFile, 0o644);
    const r = await k(['daemon', '--name', 'loose', '--listen', `127.0.0.1:${port}`, '--token-file', tokenFile]);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/the token file .*agent\.token is open to group or others \(mode 0644\)/);
    expect(r.stderr).toMatch(/chmod 600 .*agent\.token/);
    chmodSync(tokenFile, 0o640);
    expect((await k(['daemon', '--name', 'loose', '--listen', `127.0.0.1:${port}`, '--token-file', tokenFile])).stderr).toMatch(/mode 0640/);
    chmodSync(tokenFile, 0o600);
    await startAgent('loose', `127.0.0.1:${port}`, ['--token-file', tokenFile]);
  }, 60_000);

  describe.skipIf(!integration('agent API with jobs', haveDockerd(), 'dockerd, docker or busybox-static is missing'))('with a docker engine', () => {
    let d: Dockerd;
    beforeAll(async () => {
      d = await startDockerd(`${tmp.path}/docker`);
    }, 120_000);
    afterAll(async () => {
      await d?.stop();
    });

    it('a foreground job with a 50 KB env runs; a spec over 1 MiB is refused naming the limit, by the CLI and by the agent', async () => {
      await startAgent('big', `127.0.0.1:${port}`, [], d.env);
      const value = 'x'.repeat(50_000);
      const r = await k(['job', 'run', '--host', 'big', '--network', 'none', '-e', `BIG=${value}`, d.image, '--', 'sh', '-c', 'echo ${#BIG}']);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('50000');
      expect(r.code).toBe(0);
      // A job that is quiet longer than the header timeout keeps its connection.
      const quiet = await k(['job', 'run', '--host', 'big', '--network', 'none', d.image, '--', 'sh', '-c', 'sleep 12; echo late']);
      expect(quiet.stdout.trim()).toBe('late');

      const spec = `${tmp.path}/huge.json`;
      writeFileSync(spec, JSON.stringify({ name: 'huge', image: d.image, host: 'big', network: 'none', env: { BIG: 'y'.repeat(1_100_000) } }));
      const huge = await k(['job', 'run', '-f', spec]);
      expect(huge.code).toBe(2);
      expect(huge.stderr).toMatch(/a foreground job's spec may be at most 1048576 bytes \(1 MiB\)/);
      // An older or other client sending it anyway gets the agent's own refusal.
      const token = readFileSync(`${tmp.path}/state/agent.token`, 'utf8').trim();
      const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(`http://127.0.0.1:${port}/v1/run`, {
          method: 'POST',
          agent: false,
          headers: { authorization: `Bearer ${token}`, connection: 'Upgrade', upgrade: 'tcp', 'content-length': String(2 * 1024 * 1024) },
        });
        req.on('response', (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.flushHeaders();
      });
      expect(refused.status).toBe(413);
      expect(refused.body).toMatch(/the job request is 2097152 bytes; the limit is 1048576 bytes \(1 MiB\)/);
    }, 120_000);

    it('--no-allow-host-mounts refuses binds outside the pools and the docker socket; the default allows them', async () => {
      const strict = await startAgent('strict', `127.0.0.1:${port}`, ['--no-allow-host-mounts'], d.env);
      const etc = await k(['job', 'run', '--host', 'strict', '--network', 'none', '--volume', '/etc:/host-etc', d.image, '--', 'true']);
      expect(etc.code).toBe(2);
      expect(etc.stderr).toMatch(/volumes\[0\]: \/etc is outside this host's pools \(none\), and this agent refuses host mounts \(--no-allow-host-mounts\)/);
      const sock = await k(['job', 'run', '--host', 'strict', '--network', 'none', '--volume', `${d.socket}:/docker.sock`, d.image, '--', 'true']);
      expect(sock.code).toBe(2);
      expect(sock.stderr).toMatch(/holds the docker socket, and this agent refuses host mounts/);
      await strict.stop('SIGTERM');
      await startAgent('strict', `127.0.0.1:${port}`, [], d.env);
      const allowed = await k(['job', 'run', '--host', 'strict', '--network', 'none', '--volume', `${tmp.path}/state:/s:ro`, d.image, '--', 'ls', '/s']);
      expect(allowed.stdout).toMatch(/agent\.token/);
      expect(allowed.code).toBe(0);
    }, 120_000);
  });
});
