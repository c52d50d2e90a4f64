import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { request } from 'node:https';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentUnderTest, type AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, makeTestCerts, type EtcdInstance, type TestCerts } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { makeHost, type TestHost } from '../harness/hosts.js';
import { kernelMounts } from '../harness/mounts.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';

const run = integration('hub client', (await zfsAnswers()) && haveTools('etcd', 'openssl'), 'zpool does not answer, or etcd or openssl is missing');
const bin = new URL('../../bin/knarr', import.meta.url).pathname;
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const USER = 'hubcli';

describe.skipIf(!run)('dots over https to a hub served by an agent (zfs)', () => {
  let tmp: TempDir;
  let certs: TestCerts;
  let etcd: EtcdInstance;
  let agent: AgentUnderTest | null = null;
  let a: TestHost;
  let b: TestHost;
  let hubDir: string;
  let url: string;
  let writeToken: string;
  let readToken: string;
  const tlsEnv = () => ({ KNARR_HUB_CA_FILE: certs.ca });
  const dotDir = (dot: string) => `${hubDir}/dots/${USER}/${dot}`;

  /** What the hub says it holds of an upload, as a client asks it (HEAD, Upload-Offset). */
  const heldOffset = (dot: string, id: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        `${url}/hub/v1/dots/${USER}/${dot}/uploads/${id}`,
        { method: 'HEAD', ca: readFileSync(certs.ca), agent: false, headers: { authorization: `Bearer ${readFileSync(writeToken, 'utf8').trim()}` } },
        (res) => {
          res.resume();
          resolve(res.statusCode === 200 ? Number(res.headers['upload-offset']) : 0);
        },
      );
      req.on('error', reject);
      req.end();
    });

  beforeAll(async () => {
    tmp = await tempDir('knarr-hubcli-');
    certs = await makeTestCerts((await tempDir('knarr-hubcli-certs-')).path);
    etcd = await startEtcd();
    hubDir = `${tmp.path}/hub`;
    const port = await freePort();
    url = `https://127.0.0.1:${port}`;
    agent = await agentUnderTest({
      etcd: etcd.url,
      stateDir: `${tmp.path}/hubstate`,
      name: uniqueName('hubcli'),
      listen: `127.0.0.1:${port}`,
      flags: ['--hub', hubDir, '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey],
    });
    for (const [access, file] of [
      ['--write', `${tmp.path}/write.token`],
      ['--read', `${tmp.path}/read.token`],
    ] as const) {
      const t = await knarr(['--json', 'hub', 'token', 'create', USER, access, '--hub', hubDir]);
      expect(t.code, t.stderr).toBe(0);
      writeFileSync(file, `${t.json().token}\n`, { mode: 0o600 });
    }
    writeToken = `${tmp.path}/write.token`;
    readToken = `${tmp.path}/read.token`;
    a = await makeHost(tmp.path, 'zfs', 'a');
    b = await makeHost(tmp.path, 'zfs', 'b');
    const added = await a.run(['--json', 'dot', 'remote', 'add', 'hub', url, '--token-file', writeToken, '--ca-file', certs.ca]);
    expect(added.code, added.stderr).toBe(0);
    // b pulls public dots: no token.
    expect((await b.run(['dot', 'remote', 'add', 'hub', url, '--ca-file', certs.ca])).code).toBe(0);
  }, 180_000);
  afterAll(async () => {
    await agent?.stop();
    await a?.teardown();
    await b?.teardown();
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it('dot remote list shows the token and CA files, never the token', async () => {
    const l = await a.run(['--json', 'dot', 'remote', 'list']);
    expect(l.json()).toEqual([{ name: 'hub', url, tokenFile: writeToken, caFile: certs.ca }]);
    const table = await a.run(['dot', 'remote', 'list']);
    expect(table.stdout).toContain(writeToken);
    expect(table.stdout).not.toContain(readFileSync(writeToken, 'utf8').trim());
  });

  it('push (user from the token) then pull hub/USER/DOT: bytes intact, commits in the log; a second commit travels incremental', async () => {
    const dot = uniqueName('rt');
    expect((await a.run(['dot', 'init', dot])).code).toBe(0);
    writeFileSync(`${a.dotPath(dot)}/big.bin`, randomBytes(4 * 1024 * 1024));
    writeFileSync(`${a.dotPath(dot)}/small.txt`, 'hello');
    const c1 = await a.run(['--json', 'dot', 'commit', dot, '-m', 'first']);
    const push1 = await a.run(['--json', 'dot', 'push', dot, 'hub']);
    expect(push1.code, push1.stderr).toBe(0);
    expect(push1.json()).toMatchObject({ action: 'pushed', remoteDot: dot, sent: [{ id: c1.json().id, incremental: false }] });

    // On the hub: one blob named by its sha256, the manifest naming it.
    const blobs = readdirSync(`${dotDir(dot)}/blobs`);
    expect(blobs).toHaveLength(1);
    expect(sha(`${dotDir(dot)}/blobs/${blobs[0]}`)).toBe(blobs[0]);

    const pulled = await b.run(['--json', 'dot', 'pull', `hub/${USER}/${dot}`], tlsEnv());
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.json()).toMatchObject({ action: 'pulled', received: [c1.json().id] });
    expect(sha(`${b.dotPath(dot)}/big.bin`)).toBe(sha(`${a.dotPath(dot)}/big.bin`));

    writeFileSync(`${a.dotPath(dot)}/small.txt`, 'hello again');
    const c2 = await a.run(['--json', 'dot', 'commit', dot, '-m', 'second']);
    const push2 = await a.run(['--json', 'dot', 'push', dot, `hub/${USER}/${dot}`]);
    expect(push2.code, push2.stderr).toBe(0);
    expect(push2.json().sent).toMatchObject([{ id: c2.json().id, incremental: true }]);
    expect(push2.json().sent[0].bytes).toBeLessThan(1024 * 1024);
    expect((await a.run(['--json', 'dot', 'push', dot, 'hub'])).json()).toMatchObject({ action: 'up-to-date' });

    const ff = await b.run(['--json', 'dot', 'pull', `${url}/${USER}/${dot}@master`], tlsEnv());
    expect(ff.code, ff.stderr).toBe(0);
    expect(ff.json()).toMatchObject({ action: 'fast-forward', received: [c2.json().id] });
    expect(readFileSync(`${b.dotPath(dot)}/small.txt`, 'utf8')).toBe('hello again');
    const log = await b.run(['--json', 'dot', 'log', dot]);
    expect(log.json().map((c: { message: string }) => c.message)).toEqual(['second', 'first']);

    // Pushed under another name: the hub holds it as that dot.
    const renamed = `${dot}-copy`;
    const push3 = await a.run(['--json', 'dot', 'push', dot, `hub/${USER}/${renamed}`]);
    expect(push3.code, push3.stderr).toBe(0);
    expect(JSON.parse(readFileSync(`${dotDir(renamed)}/manifest.json`, 'utf8')).branches.master.commits).toEqual([c1.json().id, c2.json().id]);
  }, 180_000);

  it('a push killed at about half of a 200 MiB commit resumes from the bytes the hub held; the blob is the stream', async () => {
    const dot = uniqueName('big');
    expect((await a.run(['dot', 'init', dot])).code).toBe(0);
    const fd = openSync(`${a.dotPath(dot)}/data.bin`, 'w');
    for (let i = 0; i < 200; i++) writeSync(fd, randomBytes(1024 * 1024));
    closeSync(fd);
    const commit = (await a.run(['--json', 'dot', 'commit', dot, '-m', 'big'])).json().id as string;
    const uploadId = `${commit}-full`;
    const partial = `${dotDir(dot)}/uploads/${uploadId}`;

    const proc = execa(bin, [...a.binArgs, 'dot', 'push', dot, 'hub'], { reject: false });
    let exited = false;
    void proc.finally(() => (exited = true));
    const half = 100 * 1024 * 1024;
    await eventually(
      async () => {
        expect(exited, 'the push ended before half of it was uploaded').toBe(false);
        expect(existsSync(partial) ? statSync(partial).size : 0).toBeGreaterThanOrEqual(half);
      },
      60_000,
      5,
    );
    proc.kill('SIGKILL');
    await proc;

    // Once the hub has seen the connection go, what it holds stays put.
    let held = -1;
    await eventually(async () => {
      const now = await heldOffset(dot, uploadId);
      const before = held;
      held = now;
      expect(now).toBe(before);
    }, 20_000);
    expect(held).toBeGreaterThanOrEqual(half);
    expect(held).toBeLessThan(210 * 1024 * 1024);

    const again = await a.run(['--json', 'dot', 'push', dot, 'hub']);
    expect(again.code, again.stderr).toBe(0);
    const sent = again.json().sent[0];
    expect(sent).toMatchObject({ id: commit, resumedFrom: held });
    // Only the rest travelled the second time.
    expect(sent.bytes - sent.resumedFrom).toBeLessThan(sent.bytes);
    expect(again.stderr).toContain(`holds ${held} bytes`);

    const entry = JSON.parse(readFileSync(`${dotDir(dot)}/manifest.json`, 'utf8')).commits[commit];
    expect(entry).toMatchObject({ file: entry.sha256, bytes: sent.bytes });
    expect(sha(`${dotDir(dot)}/blobs/${entry.sha256}`)).toBe(entry.sha256);
    // The same stream made again here has that sha256: the resumed upload is the stream, byte for byte.
    const stream = execa(bin, [...a.binArgs, 'dot', 'send', dot, commit], { buffer: false, stdout: 'pipe' });
    const hash = createHash('sha256');
    stream.stdout!.on('data', (c: Buffer) => hash.update(c));
    await stream;
    expect(hash.digest('hex')).toBe(entry.sha256);
    expect(existsSync(partial)).toBe(false);
  }, 300_000);

  it('a flipped or cut blob on the hub is refused on pull, nothing recorded; whole again, it pulls', async () => {
    const dot = uniqueName('flip');
    expect((await a.run(['dot', 'init', dot])).code).toBe(0);
    writeFileSync(`${a.dotPath(dot)}/data.bin`, randomBytes(2 * 1024 * 1024));
    expect((await a.run(['dot', 'commit', dot, '-m', 'one'])).code).toBe(0);
    expect((await a.run(['dot', 'push', dot, 'hub'])).code).toBe(0);
    const [blob] = readdirSync(`${dotDir(dot)}/blobs`);
    const path = `${dotDir(dot)}/blobs/${blob}`;
    const whole = readFileSync(path);

    const at = Math.floor(whole.length / 2);
    const flipped = Buffer.from(whole);
    flipped[at] = flipped[at]! ^ 0x01;
    writeFileSync(path, flipped);
    const r1 = await b.run(['dot', 'pull', `hub/${USER}/${dot}`], tlsEnv());
    expect(r1.code).not.toBe(0);
    expect(r1.stderr).toMatch(/damaged|checksum/);
    expect((await b.run(['--json', 'dot', 'list'])).json().map((d: { name: string }) => d.name)).not.toContain(dot);

    writeFileSync(path, whole);
    truncateSync(path, whole.length - 1000);
    const r2 = await b.run(['dot', 'pull', `hub/${USER}/${dot}`], tlsEnv());
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toMatch(/damaged/);
    expect((await b.run(['--json', 'dot', 'list'])).json().map((d: { name: string }) => d.name)).not.toContain(dot);

    writeFileSync(path, whole);
    const r3 = await b.run(['--json', 'dot', 'pull', `hub/${USER}/${dot}`], tlsEnv());
    expect(r3.code, r3.stderr).toBe(0);
    expect(sha(`${b.dotPath(dot)}/data.bin`)).toBe(sha(`${a.dotPath(dot)}/data.bin`));
  }, 180_000);

  it('no token, a read token, no CA, no hub: each refused naming what to give', async () => {
    const dot = uniqueName('tok');
    expect((await a.run(['dot', 'init', dot])).code).toBe(0);
    expect((await a.run(['dot', 'commit', dot, '-m', 'one'])).code).toBe(0);
    const target = `${url}/${USER}/${dot}`;

    const none = await a.run(['dot', 'push', dot, target], tlsEnv());
    expect(none.code).toBe(5);
    expect(none.stderr).toMatch(/401/);
    expect(none.stderr).toContain('KNARR_HUB_TOKEN_FILE');
    expect(existsSync(dotDir(dot))).toBe(false);

    const read = await a.run(['dot', 'push', dot, target], { ...tlsEnv(), KNARR_HUB_TOKEN_FILE: readToken });
    expect(read.code).toBe(5);
    expect(read.stderr).toMatch(/403/);

    // A recorded remote without a token is told to take --token-file.
    expect((await b.run(['dot', 'init', dot])).code).toBe(0);
    expect((await b.run(['dot', 'commit', dot, '-m', 'b'])).code).toBe(0);
    const viaRemote = await b.run(['dot', 'push', dot, `hub/${USER}/${dot}`]);
    expect(viaRemote.code).toBe(5);
    expect(viaRemote.stderr).toContain('--token-file');

    const noCa = await a.run(['dot', 'push', dot, target], { KNARR_HUB_TOKEN_FILE: writeToken });
    expect(noCa.code).toBe(5);
    expect(noCa.stderr).toMatch(/TLS/);
    expect(noCa.stderr).toContain('KNARR_HUB_CA_FILE');

    const ok = await a.run(['--json', 'dot', 'push', dot, target, '--private'], { ...tlsEnv(), KNARR_HUB_TOKEN_FILE: writeToken });
    expect(ok.code, ok.stderr).toBe(0);
    // Private: b pulls it only with a token of the user.
    const denied = await b.run(['dot', 'pull', `hub/${USER}/${dot}`, '--as', `${dot}-p`]);
    expect(denied.code).toBe(5);
    expect(denied.stderr).toMatch(/401/);
    const allowed = await b.run(['--json', 'dot', 'pull', `${target}`, '--as', `${dot}-p`], { ...tlsEnv(), KNARR_HUB_TOKEN_FILE: readToken });
    expect(allowed.code, allowed.stderr).toBe(0);

    const gone = await a.run(['dot', 'pull', `https://127.0.0.1:${await freePort()}/${USER}/${dot}`], tlsEnv());
    expect(gone.code).toBe(3);
    expect(gone.stderr).toMatch(/cannot reach the hub at https:\/\/127\.0\.0\.1/);
    // A mistyped remote name with a "." is tried as a hub's host, and the hint says so.
    const typo = await a.run(['dot', 'pull', `hubb.invalid/${USER}/${dot}`]);
    expect(typo.code).toBe(3);
    expect(typo.stderr).toMatch(/cannot reach the hub at https:\/\/hubb\.invalid:7946/);
    expect(typo.stderr).toMatch(/no remote is named hubb\.invalid, so it was taken as a hub's host .*knarr dot remote list/);
  }, 180_000);

  it('--dry-run push sends nothing and says what it would send', async () => {
    const dot = uniqueName('dry');
    expect((await a.run(['dot', 'init', dot])).code).toBe(0);
    expect((await a.run(['dot', 'commit', dot, '-m', 'one'])).code).toBe(0);
    const r = await a.run(['--dry-run', 'dot', 'push', dot, 'hub']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/zfs send .*\| curl .*--request PATCH .*\/uploads\//);
    expect(r.stdout).toMatch(/PUT https:\/\/127\.0\.0\.1:\d+\/hub\/v1\/dots\/hubcli\//);
    expect(existsSync(dotDir(dot))).toBe(false);
  });

  describe('onboot --seed from the hub into a fresh pool', () => {
    let state: string;
    let config: string;
    let pool: string;
    afterAll(async () => {
      await execa('umount', ['-l', `${tmp.path}/seeded`], { reject: false });
      for (const { target } of kernelMounts().reverse()) if (target.startsWith(`${tmp.path}/boot`)) await execa('umount', ['-l', target], { reject: false });
      if (state) await knarr(['--state-dir', state, '--config', config, 'etcd', 'down']);
      if (pool) await destroyPoolQuietly(pool);
    });

    it('--seed https://HUB:PORT/USER/DOT brings up the data; the seed spelling dothub.com/USER/DOT is taken', async () => {
      const dot = uniqueName('seed');
      for (const d of [dot, `${dot}.postgres`]) expect((await a.run(['dot', 'init', d])).code).toBe(0);
      writeFileSync(`${a.dotPath(dot, 'master', 'postgres')}/PG_VERSION`, '15\n');
      expect((await a.run(['dot', 'commit', dot, '-m', 'seed'])).code).toBe(0);
      expect((await a.run(['dot', 'push', dot, 'hub'])).code).toBe(0);

      state = `${tmp.path}/boot`;
      config = `${tmp.path}/boot.yaml`;
      writeFileSync(config, `etcdServer:\n  clientPort: ${await freePort()}\n  peerPort: ${await freePort()}\n`);
      const devs = [`${tmp.path}/boot0.img`, `${tmp.path}/boot1.img`];
      for (const d of devs) await execa('truncate', ['-s', '256M', d]);
      pool = uniqueName('kboot');
      const boot = (seed: string, extra: string[] = []) =>
        knarr(
          [
            '--json',
            '--state-dir',
            state,
            '--config',
            config,
            ...extra,
            'onboot',
            '--storage-device',
            devs.join(','),
            '--pool',
            pool,
            '--dot',
            `${dot}.postgres`,
            '--seed',
            seed,
            '--mountpoint',
            `${tmp.path}/seeded`,
          ],
          { env: tlsEnv() },
        );
      // The seed's own spelling parses (a hub host, not a remote name); --dry-run changes nothing.
      const dry = await boot(`dothub.com/justincormack/${dot}`, ['--dry-run']);
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stderr).not.toMatch(/may use only letters/);

      const r = await boot(`${url}/${USER}/${dot}`);
      expect(r.code, r.stderr).toBe(0);
      expect(r.json()).toMatchObject({ pool, poolAction: 'created', dotAction: 'pulled' });
      expect(readFileSync(`${tmp.path}/seeded/PG_VERSION`, 'utf8')).toBe('15\n');
    }, 180_000);
  });
});
