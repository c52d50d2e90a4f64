import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { agentUnderTest, spawnAgent, stopAgents, type AgentSpec, type AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { haveDockerd, startDockerd } from '../harness/dockerd.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

/** A self-signed certificate for 127.0.0.1, as an operator would make one for an agent's --tls-cert. */
const selfSignedCert = (key: string, cert: string, days = 1) =>
  execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    String(days),
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    key,
    '-out',
    cert,
  ]);

const run = integration('agent', haveTools('etcd'), 'etcd is not installed');
const bin = new URL('../../bin/knarr', import.meta.url).pathname;

describe.skipIf(!run)('knarr daemon (the agent) and knarr host', () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  let port: number;
  let agent: AgentUnderTest | null = null;
  const base = () => ['--etcd', etcd.url, '--state-dir', `${tmp.path}/state`];
  const k = (argv: string[]) => knarr([...base(), ...argv]);
  const hosts = async () => Object.fromEntries((await k(['--json', 'host', 'list'])).json().map((h: { name: string }) => [h.name, h]));
  /** An agent of this suite's store and state directory, up and joined. */
  const startAgent = async (name: string, spec: Partial<AgentSpec> = {}) =>
    (agent = await agentUnderTest({ etcd: etcd.url, stateDir: `${tmp.path}/state`, name, listen: `127.0.0.1:${port}`, ...spec }));
  const startH1 = () => startAgent('h1', { flags: ['--tags', 'ssd'] });
  const until = async (what: () => Promise<boolean>, ms = 15_000) => {
    const end = Date.now() + ms;
    while (!(await what())) {
      if (Date.now() > end) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  beforeAll(async () => {
    tmp = await tempDir('knarr-agent-');
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

  it('registers under a lease, serves a token-protected API, keeps tags and drain set by the operator', async () => {
    // Up, and done joining: the record is then as the agent keeps it.
    await startH1();
    const h1 = (await hosts()).h1;
    expect(h1).toMatchObject({ name: 'h1', up: true, state: 'ok', tags: ['ssd'], address: `http://127.0.0.1:${port}` });
    expect(h1.capacity.cpu).toBeGreaterThan(0);

    const token = readFileSync(`${tmp.path}/state/agent.token`, 'utf8').trim();
    expect((await fetch(`http://127.0.0.1:${port}/v1/health`)).status).toBe(401);
    expect((await fetch(`http://127.0.0.1:${port}/v1/health`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const ok = await fetch(`http://127.0.0.1:${port}/v1/health`, { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    // A job name is all a logs request may carry into the engine's paths.
    const sneaky = await fetch(`http://127.0.0.1:${port}/v1/jobs/x%2Farchive%3Fpath%3D%2F%26/logs`, { headers: { authorization: `Bearer ${token}` } });
    expect(sneaky.status).toBe(400);
    expect((await sneaky.json()).error).toMatch(/is not a job name/);
    expect(await ok.json()).toEqual({ host: 'h1', ok: true });

    expect((await k(['host', 'tag', 'h1', 'gpu', 'zone=eu'])).code).toBe(0);
    expect((await k(['host', 'drain', 'h1'])).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1500)); // the agent refreshes its record meanwhile
    expect((await hosts()).h1).toMatchObject({ tags: ['gpu', 'ssd', 'zone=eu'], state: 'draining', up: true });
    const leave = await k(['host', 'leave', 'h1']);
    expect(leave.code).toBe(4);
    expect(leave.stderr).toMatch(/host h1 is up/);
  });

  it('a killed agent: the host is down once its lease lapses', async () => {
    await (await startH1()).stop('SIGKILL');
    await until(async () => (await hosts()).h1?.up === false, 10_000);
  });

  it('SIGTERM gives the lease back at once and exits 0; then the host can leave', async () => {
    const { result } = await (await startH1()).stop('SIGTERM');
    expect(result.exitCode).toBe(0);
    expect((await hosts()).h1.up).toBe(false);
    expect((await k(['host', 'leave', 'h1'])).code).toBe(0);
    expect((await hosts()).h1).toBeUndefined();
  });

  it.skipIf(!integration('agent over TLS with a job', haveTools('openssl') && haveDockerd(), 'openssl, dockerd, docker or busybox-static is missing'))(
    'a job piped through an agent over TLS gets the end of its stdin and keeps its output after it',
    async () => {
      const d = await startDockerd(`${tmp.path}/docker-tls`);
      try {
        await selfSignedCert(`${tmp.path}/pkey.pem`, `${tmp.path}/pcert.pem`);
        await startAgent('hpipe', { flags: ['--tls-cert', `${tmp.path}/pcert.pem`, '--tls-key', `${tmp.path}/pkey.pem`], env: d.env });
        // The job reads stdin to its end, then writes: a half-closed connection must still carry that back.
        const r = await execa(
          'sh',
          [
            '-c',
            `printf abc | "$0" --etcd "$1" --state-dir "$2" job run -i --host hpipe --network none "$3" -- sh -c 'cat; echo " then done"'`,
            bin,
            etcd.url,
            `${tmp.path}/state`,
            d.image,
          ],
          {
            env: { KNARR_AGENT_CA: `${tmp.path}/pcert.pem` },
            reject: false,
          },
        );
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('abc then done');
        expect(r.exitCode).toBe(0);
      } finally {
        await agent?.stop('SIGTERM');
        agent = null;
        await d.stop();
      }
    },
    60_000,
  );

  it.skipIf(!integration('agent over TLS', haveTools('openssl'), 'openssl is not installed'))(
    'serves the API over TLS with --tls-cert and --tls-key',
    async () => {
      await selfSignedCert(`${tmp.path}/key.pem`, `${tmp.path}/cert.pem`);
      const h2 = await startAgent('h2', { flags: ['--tls-cert', `${tmp.path}/cert.pem`, '--tls-key', `${tmp.path}/key.pem`] });
      expect((await hosts()).h2.address).toBe(`https://127.0.0.1:${port}`);
      const token = readFileSync(`${tmp.path}/state/agent.token`, 'utf8').trim();
      const { request } = await import('node:https');
      const get = (auth: string) =>
        new Promise<number>((resolve, reject) => {
          const req = request(
            `https://127.0.0.1:${port}/v1/health`,
            { ca: readFileSync(`${tmp.path}/cert.pem`), headers: auth ? { authorization: auth } : {} },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on('error', reject);
          req.end();
        });
      expect(await get('')).toBe(401);
      expect(await get(`Bearer ${token}`)).toBe(200);
      // A renewed certificate in the same files: SIGHUP, and new connections get it.
      const first = readFileSync(`${tmp.path}/cert.pem`);
      await selfSignedCert(`${tmp.path}/key.pem`, `${tmp.path}/cert.pem`, 2);
      h2.proc.kill('SIGHUP');
      await until(async () => (await get(`Bearer ${token}`).catch(() => 0)) === 200);
      const withFirst = await new Promise<string>((resolve) => {
        const req = request(`https://127.0.0.1:${port}/v1/health`, { ca: first, agent: false, headers: { authorization: `Bearer ${token}` } }, (res) =>
          resolve(String(res.statusCode)),
        );
        req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        req.end();
      });
      expect(withFirst).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
      const half = await k(['daemon', '--tls-cert', `${tmp.path}/cert.pem`]);
      expect(half.code).toBe(2);
      expect(half.stderr).toMatch(/--tls-key: TLS needs both --tls-cert and --tls-key/);
    },
  );

  it(
    'SIGHUP reloads the config file: new tags (operator tags kept), a rotated token; a bad file changes nothing; a new ' + 'listen address waits for a restart',
    async () => {
      const { writeFileSync } = await import('node:fs');
      const config = `${tmp.path}/agent.yaml`;
      const tokenFile = `${tmp.path}/h3.token`;
      const oldToken = 'a'.repeat(32);
      writeFileSync(tokenFile, `${oldToken}\n`, { mode: 0o600 });
      writeFileSync(config, `daemon:\n  name: h3\n  tags: [ssd]\n  tokenFile: ${tokenFile}\n  listen: 127.0.0.1:${port}\n  ttl: 2\n`);
      const h3 = await startAgent('h3', { listen: undefined, config });
      expect((await hosts()).h3).toMatchObject({ tags: ['ssd'], address: `http://127.0.0.1:${port}` });
      expect((await k(['host', 'tag', 'h3', 'gpu'])).code).toBe(0);
      const health = async (token: string) => (await fetch(`http://127.0.0.1:${port}/v1/health`, { headers: { authorization: `Bearer ${token}` } })).status;
      expect(await health(oldToken)).toBe(200);

      const newToken = 'b'.repeat(32);
      writeFileSync(tokenFile, `${newToken}\n`);
      writeFileSync(config, `daemon:\n  name: h3\n  tags: [nvme]\n  tokenFile: ${tokenFile}\n  listen: 127.0.0.1:${port}\n  ttl: 2\n  prune: true\n`);
      h3.proc.kill('SIGHUP');
      await until(async () => /config reloaded/.test(h3.log()));
      expect(h3.log()).toMatch(/config reloaded \(tags nvme, prune on\)/);
      expect((await hosts()).h3.tags).toEqual(['gpu', 'nvme']);
      expect(await health(oldToken)).toBe(401);
      expect(await health(newToken)).toBe(200);

      writeFileSync(config, `daemon:\n  ttl: soon\n`);
      writeFileSync(tokenFile, 'short\n');
      h3.proc.kill('SIGHUP');
      await until(async () => /config not reloaded/.test(h3.log()));
      expect(h3.log()).toMatch(/config not reloaded, the running one stays: .*daemon.ttl: must be a number/);
      expect(await health(newToken)).toBe(200);
      expect((await hosts()).h3.tags).toEqual(['gpu', 'nvme']);

      writeFileSync(tokenFile, `${newToken}\n`);
      writeFileSync(config, `daemon:\n  name: h3\n  tags: [nvme]\n  tokenFile: ${tokenFile}\n  listen: 127.0.0.1:1\n  ttl: 2\n`);
      h3.proc.kill('SIGHUP');
      await until(async () => /restart the agent/.test(h3.log()));
      expect(h3.log()).toMatch(/warning: agent: listen changed; restart the agent to apply it/);
      expect(await health(newToken)).toBe(200);
      expect((await hosts()).h3.up).toBe(true);
    },
  );

  it('bad flags are refused before anything starts', async () => {
    const r = await k(['daemon', '--listen', 'nowhere']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--listen: "nowhere" is not ADDRESS:PORT/);
    expect((await k(['daemon', '--ttl', '1'])).code).toBe(2);
    expect((await k(['host', 'show', 'nosuch'])).code).toBe(3);
  });

  it('its flags beat the config file at start and at each reload: --no-prune keeps prune off that the file switches on', async () => {
    const { writeFileSync } = await import('node:fs');
    const config = `${tmp.path}/noprune.yaml`;
    writeFileSync(config, `daemon:\n  name: h4\n  tags: [ssd]\n  listen: 127.0.0.1:${port}\n  ttl: 2\n  prune: true\n`);
    const h4 = await startAgent('h4', { listen: undefined, config, flags: ['--no-prune', '--tags', 'gpu'] });
    expect((await hosts()).h4.tags).toEqual(['gpu']);
    h4.proc.kill('SIGHUP');
    await until(async () => /config reloaded/.test(h4.log()));
    expect(h4.log()).toMatch(/config reloaded \(tags gpu, prune off\)/);
  });
});

describe.skipIf(!run)('the join handshake (waiting, init, work, ok) with a shared data directory', () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  const agents: AgentUnderTest[] = [];
  beforeAll(async () => {
    tmp = await tempDir('knarr-join-');
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await stopAgents(agents);
    await etcd?.stop();
    await tmp?.cleanup();
  });
  const k = (argv: string[]) => knarr(['--etcd', etcd.url, '--fleet', 'joins', '--state-dir', `${tmp.path}/cli`, ...argv]);
  const start = async (name: string, share: string) => {
    const a = spawnAgent({
      etcd: etcd.url,
      fleet: 'joins',
      stateDir: `${tmp.path}/${name}`,
      name,
      listen: `127.0.0.1:${await freePort()}`,
      flags: ['--share', share],
    });
    agents.push(a);
    return a;
  };
  const joinOf = async (name: string) => (await k(['--json', 'host', 'show', name])).json()?.join;

  it('the first host sets the fleet token; a host sharing the directory is admitted by its peer; one that does not is refused', async () => {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(`${tmp.path}/share`);
    mkdirSync(`${tmp.path}/elsewhere`);
    await (await start('j1', `${tmp.path}/share`)).up(15_000);
    expect(await joinOf('j1')).toBe('ok');
    expect(readFileSync(`${tmp.path}/share/.knarr-fleet-token`, 'utf8').trim()).toMatch(/^[0-9a-f]{48}$/);

    await (await start('j2', `${tmp.path}/share`)).up(15_000);
    expect(await joinOf('j2')).toBe('ok');

    const refused = await (await start('j3', `${tmp.path}/elsewhere`)).proc;
    expect(refused.exitCode).toBe(5);
    expect(refused.stderr).toMatch(/the fleet refused host j3: the token in its shared data directory is not the fleet's/);
    expect(await joinOf('j3')).toBe('refused');
    // A refused host takes no work: the scheduler rejects it.
    const plan = await k(['--json', 'job', 'plan', '--host', 'j3', 'busybox']);
    expect(plan.json().verdicts.find((v: { host: string }) => v.host === 'j3')).toMatchObject({ verdict: 'rejected' });
  }, 60_000);
});
