import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { makeHost, type TestHost } from '../harness/hosts.js';
import { startHub, type HubToken, type HubUnderTest } from '../harness/hub.js';
import { kernelMounts } from '../harness/mounts.js';
import { haveNetns, makeFabric, type Fabric } from '../harness/netns.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';

const run = integration(
  'the hub on another host (issue 15, done when)',
  haveNetns() && (await zfsAnswers()) && haveTools('etcd', 'openssl', 'tc'),
  'needs root, iproute2, tc, dockerd, busybox-static, a zpool that answers, etcd and openssl',
);
const bin = new URL('../../bin/knarr', import.meta.url).pathname;
const USER = 'justincormack';
const mounted = (path: string) => kernelMounts().some((m) => m.target === path);
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const spawnKnarr = (h: TestHost, argv: string[]) => execa(bin, [...h.binArgs, ...argv], { reject: false, env: { KNARR_CONFIG: undefined, CI: 'true' } });

/** sha256 and size of a file, read as a stream. */
async function fileSha(path: string): Promise<{ sha256: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of createReadStream(path)) {
    h.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  return { sha256: h.digest('hex'), bytes };
}

/** sha256 and size of `zfs send SNAP`: the stream a push of that commit sends. */
async function sendSha(snap: string): Promise<{ sha256: string; bytes: number }> {
  const p = execa('zfs', ['send', snap], { buffer: false, encoding: 'buffer' });
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of p.stdout!) {
    h.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  await p;
  return { sha256: h.digest('hex'), bytes };
}

describe.skipIf(!run)('a hub served by an agent on another network-namespace host, over https', () => {
  let tmp: TempDir;
  let fabric: Fabric;
  let etcd: EtcdInstance;
  let hub: HubUnderTest;
  let pub: TestHost;
  let writer: HubToken;
  const hosts: TestHost[] = [];

  /** Bytes the hub host's eth0 has received and sent so far (the kernel's counters inside its namespace). */
  const hubCounters = async (): Promise<{ rx: number; tx: number }> => {
    const [link] = JSON.parse((await execa('ip', ['-n', hub.host.ns, '-j', '-s', 'link', 'show', 'eth0'])).stdout);
    return { rx: link.stats64.rx.bytes, tx: link.stats64.tx.bytes };
  };
  const manifestOf = async (dot: string, token?: string) => {
    const r = await hub.request('GET', `/hub/v1/dots/${USER}/${dot}/manifest`, { token });
    expect(r.status, r.body).toBe(200);
    return r.json();
  };
  /** A new dot on h with files, committed once: its commit id. */
  const dotWith = async (h: TestHost, dot: string, files: Record<string, Buffer | string>, subdot?: string) => {
    if (!subdot) expect((await h.run(['dot', 'init', dot])).code).toBe(0);
    for (const [name, data] of Object.entries(files)) writeFileSync(`${h.dotPath(dot, 'master', subdot)}/${name}`, data);
    return commit(h, dot);
  };
  const commit = async (h: TestHost, dot: string) => {
    const c = await h.run(['--json', 'dot', 'commit', dot, '-m', 'hub test']);
    expect(c.code, c.stderr).toBe(0);
    return c.json().id as string;
  };

  beforeAll(async () => {
    tmp = await tempDir('knarr-hubtest-');
    fabric = await makeFabric(tmp.path);
    etcd = await startEtcd(fabric.gateway);
    hub = await startHub(await fabric.addHost('hub'), etcd.url, `${tmp.path}/hubhost`);
    pub = await makeHost(tmp.path, 'zfs', 'hubtestpub');
    hosts.push(pub);
    writer = await hub.token(USER, 'write');
    const added = await pub.run(['dot', 'remote', 'add', 'hub', `${hub.base}/${USER}`, '--token-file', writer.file, '--ca-file', hub.ca]);
    expect(added.code, added.stderr).toBe(0);
  }, 240_000);

  afterAll(async () => {
    for (const h of hosts) await h.teardown().catch(() => undefined);
    await hub?.agent.stop().catch(() => undefined);
    await fabric?.teardown().catch(() => undefined);
    await etcd?.stop();
    await tmp?.cleanup();
  }, 240_000);

  describe("the seed's line: onboot --storage-device A,B --dot postgres --seed https://HUB/justincormack/postgres", () => {
    let state: string;
    let config: string;
    let devices: string;
    let pool: string;
    const pg = () => `${tmp.path}/pg`;
    const boot = (extra: string[]) =>
      knarr(['--json', '--state-dir', state, '--config', config, 'onboot', '--storage-device', devices, '--pool', pool, ...extra], {
        // A URL given as the seed: the hub's CA comes from the setting; a public dot needs no token.
        env: { KNARR_HUB_CA_FILE: hub.ca },
      });

    beforeAll(async () => {
      await dotWith(pub, 'postgres', { PG_VERSION: '15\n', base: randomBytes(256 * 1024) });
      for (const d of ['myapp', 'myapp.postgres', 'myapp.redis']) expect((await pub.run(['dot', 'init', d])).code).toBe(0);
      writeFileSync(`${pub.dotPath('myapp', 'master', 'postgres')}/PG_VERSION`, '15\n');
      writeFileSync(`${pub.dotPath('myapp', 'master', 'redis')}/dump.rdb`, randomBytes(1024 * 1024));
      await commit(pub, 'myapp');
      for (const d of ['postgres', 'myapp']) {
        const pushed = await pub.run(['--json', 'dot', 'push', d, 'hub']);
        expect(pushed.code, pushed.stderr).toBe(0);
      }
      state = `${tmp.path}/boot`;
      config = `${tmp.path}/boot.yaml`;
      writeFileSync(config, `etcdServer:\n  clientPort: ${await freePort()}\n  peerPort: ${await freePort()}\n`);
      const devs = [`${tmp.path}/nvme0.img`, `${tmp.path}/nvme1.img`];
      for (const d of devs) await execa('truncate', ['-s', '256M', d]);
      devices = devs.join(',');
      pool = uniqueName('khubtestboot');
    }, 120_000);
    afterAll(async () => {
      for (const m of [pg(), `${tmp.path}/app-pg`, `${tmp.path}/app-redis`]) await execa('umount', ['-l', m], { reject: false });
      await knarr(['--state-dir', state, '--config', config, 'etcd', 'down']);
      await destroyPoolQuietly(pool);
    }, 60_000);

    it('first boot: makes the pool on the two devices, pulls postgres from the hub, mounts it', async () => {
      const r = await boot(['--dot', 'postgres', '--seed', `${hub.base}/${USER}/postgres`, '--mountpoint', pg()]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.json()).toMatchObject({ pool, poolAction: 'created', dotAction: 'pulled' });
      expect(mounted(pg())).toBe(true);
      expect(readFileSync(`${pg()}/PG_VERSION`, 'utf8')).toBe('15\n');
      expect(sha256(readFileSync(`${pg()}/base`))).toBe(sha256(readFileSync(`${pub.dotPath('postgres')}/base`)));
    }, 120_000);

    it('reboot: what was written after the first boot is kept; the seed, moved on meanwhile, does not overwrite it', async () => {
      writeFileSync(`${pg()}/written-after-boot`, 'precious');
      // The publisher moves the hub's postgres on: a reboot must still keep this host's own state.
      writeFileSync(`${pub.dotPath('postgres')}/PG_VERSION`, '16\n');
      await commit(pub, 'postgres');
      expect((await pub.run(['dot', 'push', 'postgres', 'hub'])).code).toBe(0);
      await execa('umount', [pg()]);
      await execa('zpool', ['export', pool]);
      const r = await boot(['--dot', 'postgres', '--seed', `${hub.base}/${USER}/postgres`, '--mountpoint', pg()]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.json()).toMatchObject({ poolAction: 'imported', dotAction: 'kept' });
      expect(readFileSync(`${pg()}/written-after-boot`, 'utf8')).toBe('precious');
      expect(readFileSync(`${pg()}/PG_VERSION`, 'utf8')).toBe('15\n');
    }, 120_000);

    it('subdots: myapp.postgres pulls justincormack/myapp; myapp.redis from the same seed is a no-op (the hub sends nothing)', async () => {
      const first = await boot(['--dot', 'myapp.postgres', '--seed', `${hub.base}/${USER}/myapp`, '--mountpoint', `${tmp.path}/app-pg`]);
      expect(first.code, first.stderr).toBe(0);
      expect(first.json()).toMatchObject({ dotAction: 'pulled' });
      expect(readFileSync(`${tmp.path}/app-pg/PG_VERSION`, 'utf8')).toBe('15\n');
      expect(existsSync(`${tmp.path}/app-pg/dump.rdb`)).toBe(false);

      const before = await hubCounters();
      const second = await boot(['--dot', 'myapp.redis', '--seed', `${hub.base}/${USER}/myapp`, '--mountpoint', `${tmp.path}/app-redis`]);
      const after = await hubCounters();
      expect(second.code, second.stderr).toBe(0);
      expect(second.json()).toMatchObject({ dotAction: 'kept' });
      expect(sha256(readFileSync(`${tmp.path}/app-redis/dump.rdb`))).toBe(sha256(readFileSync(`${pub.dotPath('myapp', 'master', 'redis')}/dump.rdb`)));
      // The redis subdot's 1 MiB came with the first pull; the second boot fetched no stream.
      expect(after.tx - before.tx).toBeLessThan(64 * 1024);
    }, 120_000);
  });

  describe('a push over https cut at half way', () => {
    let veth: string;
    afterAll(async () => {
      if (veth) await execa('tc', ['qdisc', 'del', 'dev', veth, 'root'], { reject: false });
    });

    it('resumes from the byte the hub held, sends only the rest, and the blob matches the stream (sha256)', async () => {
      const id = await dotWith(pub, 'big', { data: randomBytes(48 * 1024 * 1024) });
      const stream = await sendSha(`${pub.pool}/knarr-dots/big/master@${id}`);
      const upload = `/hub/v1/dots/${USER}/big/uploads/${id}-full`;
      // The hub answers HEAD once the PATCH under way has ended: while it runs, the upload's file shows how far it got.
      const arrived = () => statSync(`${hub.dir}/dots/${USER}/big/uploads/${id}-full`, { throwIfNoEntry: false })?.size ?? 0;
      const offset = async () => {
        const r = await hub.request('HEAD', upload, { token: writer.token });
        return r.status === 404 ? 0 : Number(r.headers['upload-offset']);
      };
      // About 20 MB/s towards the hub host, so the push is still under way when it is half done.
      const port = (await execa('ip', ['-o', 'link', 'show', 'master', fabric.bridge])).stdout.split('\n')[0]!;
      veth = port.split(': ')[1]!.split('@')[0]!;
      await execa('tc', ['qdisc', 'add', 'dev', veth, 'root', 'tbf', 'rate', '160mbit', 'burst', '256kb', 'latency', '200ms']);

      const child = spawnKnarr(pub, ['--json', 'dot', 'push', 'big', 'hub']);
      let seen = 0;
      while (seen < stream.bytes / 2) {
        if (child.exitCode !== null) throw new Error(`the push ended before half way: ${(await child).stderr}`);
        seen = arrived();
        await new Promise((r) => setTimeout(r, 20));
      }
      child.kill('SIGKILL');
      await child;
      await execa('tc', ['qdisc', 'del', 'dev', veth, 'root']);
      // What reached the hub before the cut stays there, and no blob was published.
      const held = await offset();
      expect(held).toBeGreaterThanOrEqual(seen);
      expect(held).toBeLessThan(stream.bytes);
      expect((await hub.request('GET', `/hub/v1/dots/${USER}/big/manifest`, { token: writer.token })).status).toBe(404);

      const before = await hubCounters();
      const again = await pub.run(['--json', 'dot', 'push', 'big', 'hub']);
      const after = await hubCounters();
      expect(again.code, again.stderr).toBe(0);
      const received = after.rx - before.rx;
      // The rest of the stream and its TCP/TLS framing, nothing like the whole again.
      expect(received).toBeGreaterThan(stream.bytes - held);
      expect(received).toBeLessThan((stream.bytes - held) * 1.1 + 1024 * 1024);
      expect(received).toBeLessThan(stream.bytes * 0.7);

      const entry = (await manifestOf('big')).commits[id];
      expect(entry).toMatchObject({ sha256: stream.sha256, bytes: stream.bytes });
      expect(await fileSha(`${hub.dir}/dots/${USER}/big/blobs/${stream.sha256}`)).toEqual(stream);
      expect(await offset()).toBe(0);

      // And it is the data: pulled back under another name, the file is the one committed.
      const back = await pub.run(['--json', 'dot', 'pull', `hub/${USER}/big`, '--as', 'big-back']);
      expect(back.code, back.stderr).toBe(0);
      expect((await fileSha(`${pub.dotPath('big-back')}/data`)).sha256).toBe((await fileSha(`${pub.dotPath('big')}/data`)).sha256);
      expect((await pub.run(['dot', 'rm', 'big-back', '--force'])).code).toBe(0);
    }, 240_000);
  });

  describe('two hosts pushing to one hub dot at once, 20 rounds', () => {
    it('every push either lands or is refused as diverged, and the manifest keeps every commit that landed', async () => {
      const a = await makeHost(tmp.path, 'zfs', 'hubtestca');
      hosts.push(a);
      const b = await makeHost(tmp.path, 'zfs', 'hubtestcb');
      hosts.push(b);
      for (const h of [a, b]) {
        const r = await h.run(['dot', 'remote', 'add', 'hub', `${hub.base}/${USER}`, '--token-file', writer.file, '--ca-file', hub.ca]);
        expect(r.code, r.stderr).toBe(0);
      }
      const first = await dotWith(a, 'conc', { who: 'a' });
      expect((await a.run(['dot', 'push', 'conc', 'hub'])).code).toBe(0);
      const cloned = await b.run(['--json', 'dot', 'pull', `hub/${USER}/conc`]);
      expect(cloned.code, cloned.stderr).toBe(0);

      const landed = [first];
      let refused = 0;
      for (let round = 0; round < 20; round++) {
        const ids: Record<string, string> = {};
        for (const [name, h] of [
          ['a', a],
          ['b', b],
        ] as const) {
          writeFileSync(`${h.dotPath('conc')}/round`, `${name} ${round}`);
          ids[name] = await commit(h, 'conc');
        }
        const results = await Promise.all([a, b].map((h) => spawnKnarr(h, ['--json', 'dot', 'push', 'conc', 'hub'])));
        const won: string[] = [];
        for (const [i, r] of results.entries()) {
          const id = ids[i === 0 ? 'a' : 'b']!;
          if (r.exitCode === 0) {
            expect(JSON.parse(r.stdout as string).sent.map((s: { id: string }) => s.id)).toContain(id);
            won.push(id);
          } else {
            expect(r.exitCode, r.stderr as string).toBe(4);
            expect(r.stderr as string).toMatch(/diverged|lacks/);
            refused++;
          }
        }
        expect(won.length, `round ${round}: ${results.map((r) => r.stderr).join('\n')}`).toBeGreaterThan(0);
        landed.push(...won);
        const chain: string[] = (await manifestOf('conc')).branches.master.commits;
        expect(chain).toEqual(landed);
        // The one refused takes the hub's history (its own commit kept on a stash branch); both start the next round level.
        for (const [i, h] of [a, b].entries()) {
          if (results[i]!.exitCode === 0) continue;
          const r = await h.run(['--json', 'dot', 'pull', `hub/${USER}/conc`, '--stash-on-divergence']);
          expect(r.code, r.stderr).toBe(0);
          expect(r.json().action).toBe('stashed-and-pulled');
        }
      }
      const m = await manifestOf('conc');
      expect(m.branches.master.commits).toEqual(landed);
      for (const id of landed) expect(m.commits[id], id).toBeDefined();
      // Both cannot land from diverged histories: one of each pair was refused.
      expect(refused).toBe(20);
    }, 600_000);
  });

  describe('tokens', () => {
    it('a push without a token is refused (401) and nothing lands', async () => {
      await dotWith(pub, 'anon', { f: 'x' });
      const added = await pub.run(['dot', 'remote', 'add', 'hubanon', `${hub.base}/${USER}`, '--ca-file', hub.ca]);
      expect(added.code, added.stderr).toBe(0);
      const r = await pub.run(['dot', 'push', 'anon', `hubanon/${USER}/anon`]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/401|token/i);
      // Without a token the hub does not say whether a dot exists (401); with one, it has none.
      expect((await hub.request('GET', `/hub/v1/dots/${USER}/anon/manifest`)).status).toBe(401);
      expect((await hub.request('GET', `/hub/v1/dots/${USER}/anon/manifest`, { token: writer.token })).status).toBe(404);
      // As any client sees it.
      expect((await hub.request('HEAD', `/hub/v1/dots/${USER}/anon/uploads/x-full`)).status).toBe(401);
      expect((await hub.request('PATCH', `/hub/v1/dots/${USER}/anon/uploads/x-full`, { headers: { 'upload-offset': '0' }, body: 'data' })).status).toBe(401);
      const put = await hub.request('PUT', `/hub/v1/dots/${USER}/anon/manifest`, { headers: { 'if-none-match': '*' }, body: '{}' });
      expect(put.status).toBe(401);
      expect((await hub.request('GET', '/hub/v1/whoami')).status).toBe(401);
      expect((await hub.request('GET', '/hub/v1/whoami', { token: 'knh_nope_nope' })).status).toBe(401);
    });

    it("a private dot: no pull without a token (401), another user's token gets 403, a read token of its user pulls it", async () => {
      await dotWith(pub, 'secret', { f: 'only for justincormack' });
      const pushed = await pub.run(['--json', 'dot', 'push', 'secret', 'hub', '--private']);
      expect(pushed.code, pushed.stderr).toBe(0);
      expect((await hub.request('GET', `/hub/v1/dots/${USER}/secret/manifest`)).status).toBe(401);
      const puller = await makeHost(tmp.path, 'zfs', 'hubtestpull');
      hosts.push(puller);
      expect((await puller.run(['dot', 'remote', 'add', 'hub', `${hub.base}/${USER}`, '--ca-file', hub.ca])).code).toBe(0);
      const anonymous = await puller.run(['dot', 'pull', `hub/${USER}/secret`]);
      expect(anonymous.code).not.toBe(0);
      expect(anonymous.stderr).toMatch(/401|token/i);
      expect((await puller.run(['--json', 'dot', 'list'])).json()).toEqual([]);

      const stranger = await hub.token('someoneelse', 'read');
      expect((await hub.request('GET', `/hub/v1/dots/${USER}/secret/manifest`, { token: stranger.token })).status).toBe(403);
      const reader = await hub.token(USER, 'read');
      expect((await puller.run(['dot', 'remote', 'add', 'hubr', `${hub.base}/${USER}`, '--token-file', reader.file, '--ca-file', hub.ca])).code).toBe(0);
      const pulled = await puller.run(['--json', 'dot', 'pull', `hubr/${USER}/secret`]);
      expect(pulled.code, pulled.stderr).toBe(0);
      expect(readFileSync(`${puller.dotPath('secret')}/f`, 'utf8')).toBe('only for justincormack');
      // A read token cannot write.
      expect((await hub.request('PUT', `/hub/v1/dots/${USER}/secret/manifest`, { token: reader.token, body: '{}' })).status).toBe(403);
    }, 180_000);

    it('a revoked token is refused at once', async () => {
      const t = await hub.token(USER, 'write');
      expect((await pub.run(['dot', 'remote', 'add', 'hubrev', `${hub.base}/${USER}`, '--token-file', t.file, '--ca-file', hub.ca])).code).toBe(0);
      await dotWith(pub, 'rev', { f: 'one' });
      const ok = await pub.run(['dot', 'push', 'rev', 'hubrev']);
      expect(ok.code, ok.stderr).toBe(0);
      expect((await hub.request('GET', '/hub/v1/whoami', { token: t.token })).json()).toMatchObject({ user: USER, access: 'write' });
      await hub.revoke(t.id);
      expect((await hub.request('GET', '/hub/v1/whoami', { token: t.token })).status).toBe(401);
      writeFileSync(`${pub.dotPath('rev')}/f`, 'two');
      const second = await commit(pub, 'rev');
      const refused = await pub.run(['dot', 'push', 'rev', 'hubrev']);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/401|token/i);
      expect((await manifestOf('rev')).branches.master.commits).not.toContain(second);
      // The token still listed is marked revoked, or gone.
      const list = await knarr(['--json', 'hub', 'token', 'list', '--hub', hub.dir]);
      expect(list.code, list.stderr).toBe(0);
      const listed = (list.json() as { id: string; revoked?: unknown }[]).find((x) => x.id === t.id);
      if (listed) expect(listed.revoked).toBeTruthy();
    });
  });
});
