import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHost, type TestDriver, type TestHost } from '../harness/hosts.js';
import { haveSshd, startSshd, type Sshd } from '../harness/sshd.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { zfsAnswers } from '../harness/zfs.js';

const bin = new URL('../../bin/knarr', import.meta.url).pathname;
const btrfsReady = haveTools('mkfs.btrfs', 'btrfs') && readFileSync('/proc/filesystems', 'utf8').includes('btrfs') && existsSync('/dev/loop-control');
const zfsReady = (await zfsAnswers()) && haveTools('etcd');

/** What a pool holds on disk: datasets and snapshots (zfs) or subvolumes (btrfs). */
async function onDisk(h: TestHost): Promise<string[]> {
  const r =
    h.driver === 'zfs'
      ? await execa('zfs', ['list', '-H', '-o', 'name', '-t', 'all', '-r', h.pool], { reject: false })
      : await execa('btrfs', ['subvolume', 'list', '-o', h.mountpoint], { reject: false });
  // The staging parent stays once made; what a receive leaves would be under it.
  return (
    r.stdout
      .split('\n')
      .filter((l) => l && !l.endsWith('/knarr-incoming'))
      // A subvolume's generation moves with every write (etcd's too): its path is what says it is there.
      .map((l) => l.replace(/^.* path /, ''))
      .sort()
  );
}

const logOf = async (h: TestHost, dot: string) => {
  const r = await h.run(['--json', 'dot', 'log', dot]);
  return r.code === 0 ? r.json().map((c: { id: string }) => c.id) : null;
};

/** Nothing recorded: the log and the disk as they were, and fsck finds nothing astray. */
async function unchanged(h: TestHost, dot: string, log: string[] | null, disk: string[]) {
  expect(await logOf(h, dot)).toEqual(log);
  expect(await onDisk(h)).toEqual(disk);
  const fsck = await h.run(['--json', 'dot', 'fsck']);
  expect(fsck.code, fsck.stdout).toBe(0);
}

/** A stand-in for the remote knarr that cuts or flips a byte of the stream going through it (stdin of receive, stdout of send). */
const DAMAGE = `import { spawn } from 'node:child_process';
const [mode, atText, ...cmd] = process.argv.slice(2);
const at = Number(atText);
const which = cmd.includes('receive') ? 'in' : cmd.includes('send') ? 'out' : null;
const child = spawn(cmd[0], cmd.slice(1), { stdio: [which === 'in' ? 'pipe' : 'inherit', which === 'out' ? 'pipe' : 'inherit', 'inherit'] });
let pending = which === 'out' ? 2 : 1;
let code = 1;
const done = () => { if (--pending === 0) process.exit(code); };
child.on('close', (c) => { code = c ?? 1; done(); });
if (which) {
  const src = which === 'in' ? process.stdin : child.stdout;
  const dst = which === 'in' ? child.stdin : process.stdout;
  dst.on('error', () => undefined);
  let seen = 0;
  let cut = false;
  src.on('data', (b) => {
    if (cut) return;
    if (mode === 'flip' && seen <= at && at < seen + b.length) { b = Buffer.from(b); b[at - seen] ^= 1; }
    if (mode === 'cut' && seen + b.length > at) { cut = true; dst.end(b.subarray(0, at - seen)); return; }
    seen += b.length;
    dst.write(b);
  });
  src.on('end', () => { if (!cut) dst.end(); });
  if (which === 'out') dst.on('finish', done);
}
`;

describe.skipIf(!integration('sealed streams over ssh', zfsReady && haveSshd(), 'zpool does not answer, or etcd or openssh-server is missing'))(
  'a stream cut or altered on its way over ssh is refused with nothing recorded (zfs)',
  () => {
    let tmp: TempDir;
    let sshd: Sshd;
    let a: TestHost;
    let b: TestHost;
    let url: string;
    const env = (mode?: 'cut' | 'flip') => ({
      KNARR_SSH_CONFIG: sshd.clientConfig,
      KNARR_REMOTE_KNARR: `${mode ? `node ${tmp.path}/damage.mjs ${mode} 300000 ` : ''}env KNARR_QUIET_REMOTE=1 ${bin}`,
    });
    beforeAll(async () => {
      tmp = await tempDir('knarr-seal-ssh-');
      writeFileSync(`${tmp.path}/damage.mjs`, DAMAGE);
      sshd = await startSshd(tmp.path);
      a = await makeHost(tmp.path, 'zfs', 'a');
      b = await makeHost(tmp.path, 'zfs', 'b');
      url = `ssh://root@127.0.0.1:${sshd.port}${b.state}`;
      expect((await a.run(['dot', 'remote', 'add', 'b', url])).code).toBe(0);
    });
    afterAll(async () => {
      await a?.teardown();
      await b?.teardown();
      await sshd?.stop();
      await tmp?.cleanup();
    }, 300_000);

    it('push: the far side refuses a cut or flipped stream, for a new dot and a fast-forward', async () => {
      const dot = uniqueName('sp');
      await a.run(['dot', 'init', dot]);
      writeFileSync(`${a.dotPath(dot)}/big.bin`, randomBytes(1024 * 1024));
      const c1 = (await a.run(['--json', 'dot', 'commit', dot, '-m', 'one'])).json();
      for (const mode of ['cut', 'flip'] as const) {
        const disk = await onDisk(b);
        const refused = await a.run(['dot', 'push', dot, 'b'], env(mode));
        expect(refused.code, refused.stderr).not.toBe(0);
        expect(refused.stderr).toMatch(new RegExp(`stream of commit ${c1.id} of ${dot} is damaged`));
        await unchanged(b, dot, null, disk);
      }
      const push = await a.run(['dot', 'push', dot, 'b'], env());
      expect(push.code, push.stderr).toBe(0);
      writeFileSync(`${a.dotPath(dot)}/big.bin`, randomBytes(1024 * 1024));
      const c2 = (await a.run(['--json', 'dot', 'commit', dot, '-m', 'two'])).json();
      for (const mode of ['cut', 'flip'] as const) {
        const disk = await onDisk(b);
        const refused = await a.run(['dot', 'push', dot, 'b'], env(mode));
        expect(refused.code, refused.stderr).not.toBe(0);
        expect(refused.stderr).toMatch(new RegExp(`stream of commit ${c2.id} of ${dot} is damaged`));
        await unchanged(b, dot, [c1.id], disk);
      }
      expect((await a.run(['dot', 'push', dot, 'b'], env())).code).toBe(0);
      expect(await logOf(b, dot)).toEqual([c2.id, c1.id]);
    }, 900_000);

    it('pull: a cut or flipped stream is refused here, for a new dot and a fast-forward', async () => {
      const dot = uniqueName('sl');
      await b.run(['dot', 'init', dot]);
      writeFileSync(`${b.dotPath(dot)}/big.bin`, randomBytes(1024 * 1024));
      const c1 = (await b.run(['--json', 'dot', 'commit', dot, '-m', 'one'])).json();
      for (const mode of ['cut', 'flip'] as const) {
        const disk = await onDisk(a);
        const refused = await a.run(['dot', 'pull', `b/${dot}`], env(mode));
        expect(refused.code, refused.stderr).toBe(4);
        expect(refused.stderr).toMatch(new RegExp(`stream of commit ${c1.id} of ${dot} from .* is damaged`));
        await unchanged(a, dot, null, disk);
      }
      expect((await a.run(['dot', 'pull', `b/${dot}`], env())).code).toBe(0);
      writeFileSync(`${b.dotPath(dot)}/big.bin`, randomBytes(1024 * 1024));
      const c2 = (await b.run(['--json', 'dot', 'commit', dot, '-m', 'two'])).json();
      for (const mode of ['cut', 'flip'] as const) {
        const disk = await onDisk(a);
        const refused = await a.run(['dot', 'pull', `b/${dot}`], env(mode));
        expect(refused.code, refused.stderr).toBe(4);
        expect(refused.stderr).toMatch(/is damaged/);
        await unchanged(a, dot, [c1.id], disk);
      }
      const pulled = await a.run(['--json', 'dot', 'pull', `b/${dot}`], env());
      expect(pulled.code, pulled.stderr).toBe(0);
      expect(pulled.json().received).toEqual([c2.id]);
    }, 900_000);
  },
);

for (const driver of ['zfs', 'btrfs'] as TestDriver[]) {
  const ready = driver === 'zfs' ? zfsReady : btrfsReady && haveTools('etcd');
  describe.skipIf(!integration(`sealed streams on file remotes (${driver})`, ready, 'the pool tools or etcd are missing'))(
    `a stream cut or altered in a file remote is refused with nothing recorded (${driver})`,
    () => {
      let tmp: TempDir;
      let a: TestHost;
      let b: TestHost;
      let remote: string;
      beforeAll(async () => {
        tmp = await tempDir(`knarr-seal-file-${driver}-`);
        a = await makeHost(tmp.path, driver, 'a');
        b = await makeHost(tmp.path, driver, 'b');
        remote = `${tmp.path}/remote`;
        mkdirSync(remote);
      });
      afterAll(async () => {
        await a?.teardown();
        await b?.teardown();
        await tmp?.cleanup();
      }, 300_000);

      it('pull of a new dot and of a fast-forward: cut and flipped streams are refused', async () => {
        const dot = uniqueName('sf');
        await a.run(['dot', 'init', dot]);
        writeFileSync(`${a.dotPath(dot)}/big.bin`, randomBytes(1024 * 1024));
        const c1 = (await a.run(['--json', 'dot', 'commit', dot, '-m', 'one'])).json();
        expect((await a.run(['dot', 'push', dot, `file://${remote}`])).code).toBe(0);
        const streamOf = (id: string) => `${remote}/${dot}/streams/${JSON.parse(readFileSync(`${remote}/${dot}/manifest.json`, 'utf8')).commits[id].file}`;
        const damaged = async (id: string, log: string[] | null) => {
          const path = streamOf(id);
          const good = readFileSync(path);
          const flipped = Buffer.from(good);
          flipped[good.length >> 1]! ^= 0x01;
          for (const [mode, bytes] of [
            ['cut', good.subarray(0, good.length - 1000)],
            ['flip', flipped],
          ] as const) {
            writeFileSync(path, bytes);
            const disk = await onDisk(b);
            const refused = await b.run(['dot', 'pull', `file://${remote}/${dot}`]);
            expect(refused.code, `${mode}: ${refused.stderr}`).toBe(4);
            expect(refused.stderr).toMatch(mode === 'cut' ? /is damaged: \d+ bytes arrived/ : /is damaged: crc32/);
            await unchanged(b, dot, log, disk);
          }
          writeFileSync(path, good);
        };
        await damaged(c1.id, null);
        expect((await b.run(['dot', 'pull', `file://${remote}/${dot}`])).code).toBe(0);
        writeFileSync(`${a.dotPath(dot)}/big.bin`, randomBytes(1024 * 1024));
        const c2 = (await a.run(['--json', 'dot', 'commit', dot, '-m', 'two'])).json();
        expect((await a.run(['dot', 'push', dot, `file://${remote}`])).code).toBe(0);
        await damaged(c2.id, [c1.id]);
        const pulled = await b.run(['--json', 'dot', 'pull', `file://${remote}/${dot}`]);
        expect(pulled.code, pulled.stderr).toBe(0);
        expect(pulled.json().received).toEqual([c2.id]);
      }, 600_000);
    },
  );
}

describe.skipIf(!integration('dot receive killed', zfsReady, 'zpool does not answer or etcd is missing'))(
  'dot receive killed with -9 at any point: running it again completes the dot (zfs)',
  () => {
    let tmp: TempDir;
    let a: TestHost;
    let b: TestHost;
    beforeAll(async () => {
      tmp = await tempDir('knarr-seal-kill-');
      a = await makeHost(tmp.path, 'zfs', 'a');
      b = await makeHost(tmp.path, 'zfs', 'b');
    });
    afterAll(async () => {
      await a?.teardown();
      await b?.teardown();
      await tmp?.cleanup();
    }, 300_000);

    it('kill -9 of a receive of a new dot, then a re-run: the dot is whole, recorded once, fsck clean', async () => {
      const dot = uniqueName('sk');
      await a.run(['dot', 'init', dot]);
      writeFileSync(`${a.dotPath(dot)}/big.bin`, randomBytes(4 * 1024 * 1024));
      const c1 = (await a.run(['--json', 'dot', 'commit', dot, '-m', 'one'])).json();
      const record = JSON.stringify((await a.run(['--json', 'dot', 'log', dot])).json()[0]);
      const stream = `${tmp.path}/c1.sealed`;
      const sent = await execa(bin, [...a.binArgs, 'dot', 'send', '--sealed', dot, c1.id], { stdout: { file: stream }, reject: false });
      expect(sent.exitCode, sent.stderr).toBe(0);
      const receive = ['env', 'KNARR_QUIET_REMOTE=1', bin, ...b.binArgs, 'dot', 'receive', '--sealed', dot, '--record', record];
      for (const ms of [150, 400, 800, 1500, 3000]) {
        const child = execa(receive[0]!, receive.slice(1), { inputFile: stream, reject: false });
        await new Promise((r) => setTimeout(r, ms));
        child.kill('SIGKILL');
        await child;
        const again = await execa(receive[0]!, receive.slice(1), { inputFile: stream, reject: false });
        expect(again.exitCode, again.stderr).toBe(0);
        expect(await logOf(b, dot)).toEqual([c1.id]);
        const fsck = await b.run(['--json', 'dot', 'fsck']);
        expect(fsck.code, fsck.stdout).toBe(0);
        expect(readFileSync(`${b.dotPath(dot)}/big.bin`).equals(readFileSync(`${a.dotPath(dot)}/big.bin`))).toBe(true);
        expect((await b.run(['dot', 'rm', dot, '--force'])).code).toBe(0);
      }
    }, 900_000);
  },
);
