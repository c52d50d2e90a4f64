import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHost, type TestDriver, type TestHost } from '../harness/hosts.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { zfsAnswers } from '../harness/zfs.js';

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const btrfsReady = haveTools('mkfs.btrfs', 'btrfs') && readFileSync('/proc/filesystems', 'utf8').includes('btrfs') && existsSync('/dev/loop-control');
const ready: Record<TestDriver, [boolean, string]> = {
  zfs: [(await zfsAnswers()) && haveTools('etcd'), 'zpool does not answer or etcd is missing'],
  btrfs: [btrfsReady && haveTools('etcd'), 'btrfs-progs, kernel btrfs, loop devices or etcd missing'],
  dir: [haveTools('etcd'), 'etcd is not installed'],
};
const bin = new URL('../../bin/knarr', import.meta.url).pathname;

for (const driver of ['zfs', 'btrfs', 'dir'] as TestDriver[]) {
  const run = integration(`dot remotes on ${driver}`, ...ready[driver]);
  describe.skipIf(!run)(`dot push and pull between two hosts on ${driver}`, () => {
    let tmp: TempDir;
    let a: TestHost;
    let b: TestHost;
    let remote: string;
    beforeAll(async () => {
      tmp = await tempDir(`knarr-remote-${driver}-`);
      a = await makeHost(tmp.path, driver, 'a');
      b = await makeHost(tmp.path, driver, 'b');
      remote = `${tmp.path}/remote`;
      mkdirSync(remote);
      expect((await a.run(['dot', 'remote', 'add', 'hub', `file://${remote}`])).code).toBe(0);
    });
    afterAll(async () => {
      await a?.teardown();
      await b?.teardown();
      await tmp?.cleanup();
    });

    it('push then pull: equal bytes; a second commit travels as one small incremental stream', async () => {
      const dot = uniqueName('d');
      expect((await a.run(['dot', 'init', dot])).code).toBe(0);
      mkdirSync(`${a.dotPath(dot)}/sub`);
      writeFileSync(`${a.dotPath(dot)}/big.bin`, randomBytes(4 * 1024 * 1024));
      writeFileSync(`${a.dotPath(dot)}/sub/small.txt`, 'hello');
      expect((await a.run(['dot', 'commit', dot, '-m', 'first'])).code).toBe(0);
      const clone = await a.run(['--json', 'dot', 'clone', dot, `${dot}c`]);
      expect(clone.code, clone.stderr).toBe(0);

      const push1 = await a.run(['--json', 'dot', 'push', dot, 'hub']);
      expect(push1.code, push1.stderr).toBe(0);
      expect(push1.json().sent).toHaveLength(1);
      const pull1 = await b.run(['--json', 'dot', 'pull', `hub/${dot}`], {});
      expect(pull1.code).toBe(3); // b has no remote named hub
      const pulled = await b.run(['--json', 'dot', 'pull', `file://${remote}/${dot}`]);
      expect(pulled.code, pulled.stderr).toBe(0);
      expect(pulled.json()).toMatchObject({ action: 'pulled', received: [push1.json().sent[0].id] });
      expect(sha(b.dotPath(dot) + '/big.bin')).toBe(sha(a.dotPath(dot) + '/big.bin'));
      expect(readFileSync(`${b.dotPath(dot)}/sub/small.txt`, 'utf8')).toBe('hello');

      writeFileSync(`${a.dotPath(dot)}/sub/small.txt`, 'hello again');
      const c2 = await a.run(['--json', 'dot', 'commit', dot, '-m', 'second']);
      const push2 = await a.run(['--json', 'dot', 'push', dot, 'hub']);
      expect(push2.code, push2.stderr).toBe(0);
      expect(push2.json().sent.map((s: { id: string }) => s.id)).toEqual([c2.json().id]);
      const manifest = JSON.parse(readFileSync(`${remote}/${dot}/manifest.json`, 'utf8'));
      const entry = manifest.commits[c2.json().id];
      expect(manifest.version).toBe(2);
      expect(entry.crc32).toMatch(/^[0-9a-f]{8}$/);
      expect(readdirSync(`${remote}/${dot}/streams`)).toHaveLength(2);
      if (driver !== 'dir') {
        expect(entry.base).toBe(push1.json().sent[0].id);
        expect(entry.bytes).toBeLessThan(1024 * 1024);
      } else {
        expect(entry.base).toBeNull();
      }
      const ff = await b.run(['--json', 'dot', 'pull', `file://${remote}/${dot}`]);
      expect(ff.code, ff.stderr).toBe(0);
      expect(ff.json()).toMatchObject({ action: 'fast-forward', received: [c2.json().id] });
      expect(readFileSync(`${b.dotPath(dot)}/sub/small.txt`, 'utf8')).toBe('hello again');
      const log = await b.run(['--json', 'dot', 'log', dot]);
      expect(log.json().map((c: { message: string }) => c.message)).toEqual(['second', 'first']);
      expect((await b.run(['--json', 'dot', 'pull', `file://${remote}/${dot}`])).json().action).toBe('up-to-date');
      expect((await a.run(['--json', 'dot', 'push', dot, 'hub'])).json().action).toBe('up-to-date');
    });

    it('a pull cut short after a commit arrived, before its records: the re-run takes that commit as it is and receives the rest', async () => {
      const dot = uniqueName('k');
      const url = `file://${remote}/${dot}`;
      await a.run(['dot', 'init', dot]);
      const step = async (n: number) => {
        writeFileSync(`${a.dotPath(dot)}/f`, String(n));
        const c = (await a.run(['--json', 'dot', 'commit', dot, '-m', `c${n}`])).json();
        expect((await a.run(['dot', 'push', dot, 'hub'])).code).toBe(0);
        return c;
      };
      await step(1);
      expect((await b.run(['dot', 'pull', url])).code).toBe(0);
      const c2 = await step(2);
      expect((await b.run(['dot', 'pull', url])).code).toBe(0);
      // The crash between the receive and the store writes: b has c2's data but not its record or head.
      const endpoint = (await b.run(['--json', 'etcd', 'status'])).json().endpoints[0];
      const etcdctl = (...args: string[]) => execa('etcdctl', ['--endpoints', endpoint, ...args], { env: { ETCDCTL_API: '3' } });
      const keyRoot = `/knarr/default/hostdata/${(await import('node:os')).hostname()}`;
      await etcdctl('del', `${keyRoot}/dot-commits/${dot}/${c2.id}`);
      const rec = JSON.parse((await etcdctl('get', `${keyRoot}/dots/${dot}`, '--print-value-only')).stdout);
      rec.branches.master.head = c2.parent;
      await etcdctl('put', `${keyRoot}/dots/${dot}`, JSON.stringify(rec));
      const c3 = await step(3);
      const again = await b.run(['--json', 'dot', 'pull', url]);
      expect(again.code, again.stderr).toBe(0);
      expect(again.json()).toMatchObject({ action: 'fast-forward', received: [c2.id, c3.id] });
      expect(readFileSync(`${b.dotPath(dot)}/f`, 'utf8')).toBe('3');
      expect((await b.run(['--json', 'dot', 'log', dot])).json().map((c: { message: string }) => c.message)).toEqual(['c3', 'c2', 'c1']);
    });

    it("a new dot's pull cut short after the dot was in place, before its records: the re-run writes the records", async () => {
      const dot = uniqueName('q');
      await a.run(['dot', 'init', dot]);
      writeFileSync(`${a.dotPath(dot)}/f`, 'whole');
      await a.run(['dot', 'commit', dot, '-m', 'one']);
      expect((await a.run(['dot', 'push', dot, 'hub'])).code).toBe(0);
      expect((await b.run(['dot', 'pull', `file://${remote}/${dot}`])).code).toBe(0);
      // The crash between publishing and the store writes: the data is in place, the records are not.
      const endpoint = (await b.run(['--json', 'etcd', 'status'])).json().endpoints[0];
      const keyRoot = `/knarr/default/hostdata/${(await import('node:os')).hostname()}`;
      const etcdctl = (...args: string[]) => execa('etcdctl', ['--endpoints', endpoint, ...args], { env: { ETCDCTL_API: '3' } });
      await etcdctl('del', `${keyRoot}/dots/${dot}`);
      await etcdctl('del', '--prefix', `${keyRoot}/dot-commits/${dot}/`);
      const again = await b.run(['--json', 'dot', 'pull', `file://${remote}/${dot}`]);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toMatch(/on pool .* already, from a pull cut short; writing its records/);
      expect(readFileSync(`${b.dotPath(dot)}/f`, 'utf8')).toBe('whole');
      expect((await b.run(['--json', 'dot', 'log', dot])).json().map((c: { message: string }) => c.message)).toEqual(['one']);
      expect((await b.run(['--json', 'dot', 'fsck'])).code).toBe(0);
    });

    it('a pull never overwrites diverged local commits; --stash-on-divergence keeps them on a branch', async () => {
      const dot = uniqueName('v');
      await a.run(['dot', 'init', dot]);
      writeFileSync(`${a.dotPath(dot)}/f`, 'base');
      await a.run(['dot', 'commit', dot, '-m', 'base']);
      await a.run(['dot', 'push', dot, 'hub']);
      expect((await b.run(['dot', 'pull', `file://${remote}/${dot}`])).code).toBe(0);
      writeFileSync(`${b.dotPath(dot)}/f`, 'b-local');
      const local = await b.run(['--json', 'dot', 'commit', dot, '-m', 'b local']);
      writeFileSync(`${a.dotPath(dot)}/f`, 'a-new');
      await a.run(['dot', 'commit', dot, '-m', 'a new']);
      await a.run(['dot', 'push', dot, 'hub']);

      const refused = await b.run(['dot', 'pull', `file://${remote}/${dot}`]);
      expect(refused.code).toBe(4);
      expect(refused.stderr).toMatch(/has local commits the remote lacks .*a pull never overwrites them/);
      expect(readFileSync(`${b.dotPath(dot)}/f`, 'utf8')).toBe('b-local');

      const stashed = await b.run(['--json', 'dot', 'pull', `file://${remote}/${dot}`, '--stash-on-divergence']);
      expect(stashed.code, stashed.stderr).toBe(0);
      const stash = stashed.json().stash;
      expect(stash).toMatch(/^master-stash-/);
      expect(readFileSync(`${b.dotPath(dot)}/f`, 'utf8')).toBe('a-new');
      expect(readFileSync(`${b.dotPath(dot, stash)}/f`, 'utf8')).toBe('b-local');
      const stashLog = await b.run(['--json', 'dot', 'log', dot, '--branch', stash]);
      expect(stashLog.json()[0].id).toBe(local.json().id);
    });

    it('a pull killed mid-stream leaves no visible dot, and a re-run completes', async () => {
      const dot = uniqueName('k');
      await a.run(['dot', 'init', dot]);
      writeFileSync(`${a.dotPath(dot)}/big.bin`, randomBytes(96 * 1024 * 1024));
      await a.run(['dot', 'commit', dot, '-m', 'big']);
      expect((await a.run(['dot', 'push', dot, 'hub'])).code).toBe(0);

      const child = execa(bin, [...b.binArgs, 'dot', 'pull', `file://${remote}/${dot}`], { reject: false });
      const staging = driver === 'zfs' ? `${b.mountpoint}/knarr-incoming/${dot}` : `${b.mountpoint}/knarr-incoming/${dot}`;
      const deadline = Date.now() + 30_000;
      while (!existsSync(staging) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 150));
      child.kill('SIGKILL');
      const killed = await child;
      expect(killed.signal ?? killed.exitCode).toBeTruthy();
      const list = await b.run(['--json', 'dot', 'list']);
      expect(list.json().map((d: { name: string }) => d.name)).not.toContain(dot);
      expect(existsSync(b.dotPath(dot))).toBe(false);

      const again = await b.run(['--json', 'dot', 'pull', `file://${remote}/${dot}`]);
      expect(again.code, again.stderr).toBe(0);
      expect(sha(`${b.dotPath(dot)}/big.bin`)).toBe(sha(`${a.dotPath(dot)}/big.bin`));
    });

    it('a push killed mid-stream leaves no half stream in the manifest, and a re-run completes', async () => {
      const dot = uniqueName('q');
      await a.run(['dot', 'init', dot]);
      writeFileSync(`${a.dotPath(dot)}/big.bin`, randomBytes(96 * 1024 * 1024));
      await a.run(['dot', 'commit', dot, '-m', 'big']);
      const child = execa(bin, [...a.binArgs, 'dot', 'push', dot, `file://${remote}`], { reject: false });
      const streams = `${remote}/${dot}/streams`;
      const deadline = Date.now() + 30_000;
      while (!(existsSync(streams) && readdirSync(streams).some((f) => f.endsWith('.partial'))) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      child.kill('SIGKILL');
      await child;
      // Whatever was cut off is at most a .partial file the manifest does not name.
      const manifest = existsSync(`${remote}/${dot}/manifest.json`) ? JSON.parse(readFileSync(`${remote}/${dot}/manifest.json`, 'utf8')) : { branches: {} };
      expect(manifest.branches.master?.commits ?? []).toEqual([]);
      const again = await a.run(['--json', 'dot', 'push', dot, `file://${remote}`]);
      expect(again.code, again.stderr).toBe(0);
      expect(again.json().sent).toHaveLength(1);
      const pulled = await b.run(['dot', 'pull', `file://${remote}/${dot}`]);
      expect(pulled.code, pulled.stderr).toBe(0);
      expect(sha(`${b.dotPath(dot)}/big.bin`)).toBe(sha(`${a.dotPath(dot)}/big.bin`));
    });

    it('a damaged stream is refused before it reaches the pool; a version 1 manifest (sha256) still pulls', async () => {
      const dot = uniqueName('s');
      await a.run(['dot', 'init', dot]);
      writeFileSync(`${a.dotPath(dot)}/f`, randomBytes(256 * 1024));
      const c = (await a.run(['--json', 'dot', 'commit', dot, '-m', 'one'])).json();
      expect((await a.run(['dot', 'push', dot, 'hub'])).code).toBe(0);
      const mpath = `${remote}/${dot}/manifest.json`;
      const manifest = JSON.parse(readFileSync(mpath, 'utf8'));
      const stream = `${remote}/${dot}/streams/${manifest.commits[c.id].file}`;
      const good = readFileSync(stream);
      const bad = Buffer.from(good);
      bad[bad.length >> 1]! ^= 0xff;
      writeFileSync(stream, bad);
      const refused = await b.run(['dot', 'pull', `file://${remote}/${dot}`]);
      expect(refused.code).toBe(4);
      expect(refused.stderr).toMatch(/is damaged: crc32/);
      expect((await b.run(['--json', 'dot', 'list'])).json().map((d: { name: string }) => d.name)).not.toContain(dot);

      // What an earlier knarr wrote: version 1, sha256 per stream.
      writeFileSync(stream, good);
      const { crc32: _, ...entry } = manifest.commits[c.id];
      writeFileSync(mpath, JSON.stringify({ ...manifest, version: 1, commits: { [c.id]: { ...entry, sha256: sha(stream) } } }));
      const pulled = await b.run(['dot', 'pull', `file://${remote}/${dot}`]);
      expect(pulled.code, pulled.stderr).toBe(0);
      expect(sha(`${b.dotPath(dot)}/f`)).toBe(sha(`${a.dotPath(dot)}/f`));
      // A push on top keeps the sha256 entry and adds a crc32 one.
      writeFileSync(`${a.dotPath(dot)}/f`, 'two');
      const c2 = (await a.run(['--json', 'dot', 'commit', dot, '-m', 'two'])).json();
      const pushed = await a.run(['--json', 'dot', 'push', dot, 'hub']);
      expect(pushed.code, pushed.stderr).toBe(0);
      expect(pushed.json().sent.map((x: { id: string }) => x.id)).toEqual([c2.id]);
      const after = JSON.parse(readFileSync(mpath, 'utf8'));
      expect(after.version).toBe(2);
      expect(after.commits[c.id].sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(after.commits[c2.id].crc32).toMatch(/^[0-9a-f]{8}$/);
      expect((await b.run(['dot', 'pull', `file://${remote}/${dot}`])).code).toBe(0);
      expect(readFileSync(`${b.dotPath(dot)}/f`, 'utf8')).toBe('two');
    });

    it('a remote without the dot, or a bad source, changes nothing', async () => {
      const missing = await b.run(['dot', 'pull', `file://${remote}/nosuchdot`]);
      expect(missing.code).toBe(3);
      expect(missing.stderr).toMatch(/has no dot nosuchdot/);
      const badDir = await b.run(['dot', 'pull', `file://${tmp.path}/nowhere/x`]);
      expect(badDir.code).toBe(3);
      expect(badDir.stderr).toMatch(/remote directory .* does not exist/);
      const badName = await b.run(['dot', 'pull', `file://${remote}/a b`]);
      expect(badName.code).toBe(2);
      expect((await b.run(['--json', 'dot', 'list'])).json().map((d: { name: string }) => d.name)).not.toContain('nosuchdot');
    });
  });
}
