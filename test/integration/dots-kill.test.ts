import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHost, type TestHost } from '../harness/hosts.js';
import { kernelMounts } from '../harness/mounts.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { zfsAnswers, zfsRetrying } from '../harness/zfs.js';

const bin = new URL('../../bin/knarr', import.meta.url).pathname;
const ROUNDS = Number(process.env.KNARR_KILL_ROUNDS ?? 20);
const btrfsReady = haveTools('mkfs.btrfs', 'btrfs') && readFileSync('/proc/filesystems', 'utf8').includes('btrfs') && existsSync('/dev/loop-control');
const ready: Record<'zfs' | 'btrfs', [boolean, string]> = {
  zfs: [(await zfsAnswers()) && haveTools('etcd'), 'zpool does not answer or etcd is missing'],
  btrfs: [btrfsReady && haveTools('etcd'), 'btrfs-progs, kernel btrfs, loop devices or etcd missing'],
};

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Runs bin/knarr in its own process group; kills only knarr itself after delayMs (as `kill -9 PID` does), then waits for what it started to end. */
async function pullKilledAfter(host: TestHost, argv: string[], delayMs: number): Promise<{ killed: boolean; code: number | null; ms: number }> {
  const started = Date.now();
  const child = spawn(bin, [...host.binArgs, ...argv], { detached: true, stdio: 'ignore', env: { ...process.env, CI: 'true' } });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const timer = new Promise<'timer'>((res) => setTimeout(() => res('timer'), delayMs));
  const first = await Promise.race([exited, timer]);
  let killed = false;
  if (first === 'timer') {
    killed = child.kill('SIGKILL');
    await exited;
  }
  // A `zfs recv` or `btrfs receive` it started reads to the end of its stream and exits on its own.
  for (let i = 0; i < 300 && alive(-child.pid!); i++) await new Promise((r) => setTimeout(r, 100));
  return { killed, code: killed ? null : (first as number | null), ms: Date.now() - started };
}

for (const driver of ['zfs', 'btrfs'] as const) {
  const run = integration(`dot pull kills on ${driver}`, ...ready[driver]);
  describe.skipIf(!run)(`kill -9 of dot pull on ${driver}`, () => {
    let tmp: TempDir;
    let host: TestHost;
    let remote: string;
    beforeAll(async () => {
      tmp = await tempDir(`knarr-kill-${driver}-`);
      host = await makeHost(tmp.path, driver, 'k');
      remote = `${tmp.path}/remote`;
      mkdirSync(remote);
    });
    afterAll(async () => {
      await host?.teardown();
      await tmp?.cleanup();
    });

    const ok = async (...argv: string[]) => {
      const r = await host.run(argv);
      expect(r.code, `knarr ${argv.join(' ')}: ${r.stderr}`).toBe(0);
      return r;
    };
    const mountedAt = (target: string) => kernelMounts().some((m) => m.target === target);
    /** A dot with one commit (file a), mounted at a fresh directory. */
    const mountedDot = async (prefix: string) => {
      const dot = uniqueName(prefix);
      const target = `${tmp.path}/mnt-${dot}`;
      await ok('dot', 'init', dot);
      writeFileSync(`${host.dotPath(dot)}/a`, 'A');
      const head = (await ok('--json', 'dot', 'commit', dot, '-m', 'one')).json().id as string;
      await ok('dot', 'mount', dot, target);
      return { dot, target, head };
    };
    /** The write at the mount point is in the commit: a clone of it holds the file. */
    const committedWith = async (dot: string, file: string, text: string) => {
      writeFileSync(`${tmp.path}/mnt-${dot}/${file}`, text);
      const commit = (await ok('--json', 'dot', 'commit', dot, '-m', `with ${file}`)).json();
      const check = uniqueName('c');
      await ok('dot', 'clone', dot, check, '--commit', commit.id);
      expect(readFileSync(`${host.dotPath(check)}/${file}`, 'utf8')).toBe(text);
      await ok('dot', 'rm', check);
    };

    it('a branch left unmounted where a stray folder stands: show tells, commit refuses, fsck finds it and --repair restores it', async () => {
      const { dot, target } = await mountedDot('u');
      // What a pull killed between its unmounts and its mounts left, plus the folder an older remount made in the branch's place.
      await execa('umount', [target]);
      if (driver === 'zfs') await zfsRetrying(['umount', `${host.pool}/knarr-dots/${dot}/master`]);
      else await execa('btrfs', ['subvolume', 'delete', `${host.mountpoint}/knarr-dots/${dot}/master`]);
      mkdirSync(host.dotPath(dot), { recursive: true });
      // A write meanwhile lands on the filesystem beneath the mount point.
      writeFileSync(`${target}/late`, 'L');

      const show = await ok('dot', 'show', dot);
      expect(show.stdout).toMatch(/NOT MOUNTED/);
      const refused = await host.run(['dot', 'commit', dot, '-m', 'lost?']);
      expect(refused.code, refused.stderr).toBe(4);
      expect(refused.stderr).toMatch(/not mounted/);
      const found = await host.run(['--json', 'dot', 'fsck']);
      expect(found.code).toBe(1);
      expect(
        found
          .json()
          .findings.filter((f: { dot: string }) => f.dot === dot)
          .map((f: { problem: string }) => f.problem),
      ).toEqual(['branch-unmounted', 'mount-missing']);
      // The branch comes back; the mount waits until the operator has moved the late write out of the way.
      const held = await host.run(['--json', 'dot', 'fsck', '--repair']);
      expect(held.code).toBe(1);
      expect(held.json().findings.filter((f: { dot: string }) => f.dot === dot)).toEqual([
        expect.objectContaining({ problem: 'branch-unmounted', repaired: true }),
        expect.objectContaining({ problem: 'mount-missing', repaired: false, detail: expect.stringMatching(/late.*move them away/) }),
      ]);
      expect(readFileSync(`${target}/late`, 'utf8')).toBe('L');
      renameSync(`${target}/late`, `${tmp.path}/late-${dot}`);
      const fixed = await host.run(['--json', 'dot', 'fsck', '--repair']);
      expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
      expect(mountedAt(target)).toBe(true);
      expect(readFileSync(`${target}/a`, 'utf8')).toBe('A');
      expect((await ok('--json', 'dot', 'show', dot)).json().mounted).toEqual({ __default__: true });
      await committedWith(dot, 'b', 'B');
      expect((await host.run(['dot', 'fsck'])).code).toBe(0);
    });

    it('a pull finds the branch unmounted (a re-run after a kill) and ends with it mounted', async () => {
      const { dot, target } = await mountedDot('r');
      const remote = `${tmp.path}/remote-${dot}`;
      mkdirSync(remote);
      await ok('dot', 'push', dot, `file://${remote}`);
      await execa('umount', [target]);
      if (driver === 'zfs') await zfsRetrying(['umount', `${host.pool}/knarr-dots/${dot}/master`]);
      // Up to date: nothing to fetch, and still the dot comes back.
      const pulled = await host.run(['--json', 'dot', 'pull', `file://${remote}/${dot}`]);
      expect(pulled.code, pulled.stderr).toBe(0);
      expect(pulled.json().action).toBe('up-to-date');
      expect(mountedAt(target)).toBe(true);
      expect(readFileSync(`${target}/a`, 'utf8')).toBe('A');
      await committedWith(dot, 'c', 'C');
    });

    if (driver === 'btrfs') {
      it('a branch subvolume lost mid-pull: reset --hard to its head rebuilds it', async () => {
        const { dot, target, head } = await mountedDot('l');
        await execa('umount', [target]);
        await execa('btrfs', ['subvolume', 'delete', `${host.mountpoint}/knarr-dots/${dot}/master`]);
        await ok('dot', 'reset', dot, '--hard', head);
        expect(readFileSync(`${target}/a`, 'utf8')).toBe('A');
        await committedWith(dot, 'd', 'D');
      });
    }

    it('dot mount refuses a directory that is not empty unless --force, and a file with a clear error', async () => {
      const { dot } = await mountedDot('m');
      await ok('dot', 'unmount', dot);
      const full = `${tmp.path}/full-${dot}`;
      mkdirSync(full);
      writeFileSync(`${full}/mine`, 'x');
      const refused = await host.run(['dot', 'mount', dot, full]);
      expect(refused.code, refused.stderr).toBe(4);
      expect(refused.stderr).toMatch(/not empty.*--force/s);
      expect(mountedAt(full)).toBe(false);
      const file = `${tmp.path}/file-${dot}`;
      writeFileSync(file, 'x');
      const onFile = await host.run(['dot', 'mount', dot, file]);
      expect(onFile.code, onFile.stderr).toBe(2);
      expect(onFile.stderr).toMatch(/not a directory/);
      expect(onFile.stderr).not.toMatch(/internal|EEXIST/);
      await ok('dot', 'mount', dot, full, '--force');
      expect(readFileSync(`${full}/a`, 'utf8')).toBe('A');
      await ok('dot', 'unmount', dot);
      expect(readFileSync(`${full}/mine`, 'utf8')).toBe('x');
    });

    it(`${ROUNDS} kills at random points: the dot ends mounted where dot show says (or fsck --repair makes it so), and no write is lost`, {
      timeout: 900_000,
    }, async () => {
      const src = uniqueName('s');
      const dst = uniqueName('d');
      const target = `${tmp.path}/mnt-${dst}`;
      await ok('dot', 'init', src);
      writeFileSync(`${host.dotPath(src)}/marker`, 'kept');
      await ok('dot', 'commit', src, '-m', 'first');
      await ok('dot', 'push', src, `file://${remote}`);
      await ok('dot', 'pull', `file://${remote}/${src}`, '--as', dst);
      await ok('dot', 'mount', dst, target);

      /** Mounted and readable where `dot show` says, with the branch's own filesystem under it. */
      const mountedRight = async () => {
        const show = (await ok('--json', 'dot', 'show', dst)).json();
        expect(show.mounts.__default__).toBe(target);
        const branch = host.dotPath(dst);
        const bound = mountedAt(target) && existsSync(branch) && statSync(target).ino === statSync(branch).ino && statSync(target).dev === statSync(branch).dev;
        // dot show tells the truth about it either way.
        expect(show.mounted.__default__).toBe(bound);
        return bound && existsSync(`${target}/marker`) && readFileSync(`${target}/marker`, 'utf8') === 'kept';
      };

      // Start-up (node, config, store) before a pull does anything: kills land after it.
      let startMs = Date.now();
      await pullKilledAfter(host, ['dot', 'show', dst], 600_000);
      startMs = Date.now() - startMs;
      let pullMs = 2000;
      const repaired: number[] = [];
      let kills = 0;
      // Round 0 is a whole pull, timed; each later round kills one.
      for (let round = 0; round <= ROUNDS; round++) {
        writeFileSync(`${host.dotPath(src)}/data-${round}.bin`, randomBytes(4 * 1024 * 1024));
        await ok('dot', 'commit', src, '-m', `src ${round}`);
        await ok('dot', 'push', src, `file://${remote}`);

        // Kills spread over the pull's whole run, from its start-up to just past its end.
        const [from, to] = [startMs * 0.6, Math.max(pullMs, startMs) * 1.3];
        const delay = round === 0 ? 600_000 : Math.floor(from + Math.random() * (to - from));
        const pull = await pullKilledAfter(host, ['dot', 'pull', `file://${remote}/${src}`, '--as', dst, '--stash-on-divergence'], delay);
        if (round === 0) {
          expect(pull.code).toBe(0);
          pullMs = pull.ms;
        }
        if (pull.killed) kills++;

        if (!(await mountedRight())) {
          const found = await host.run(['--json', 'dot', 'fsck']);
          expect(found.code, `round ${round} (killed after ${delay} ms): not mounted, and fsck saw nothing`).toBe(1);
          expect(found.json().findings.some((f: { dot: string }) => f.dot === dst)).toBe(true);
          repaired.push(round);
        }
        const fix = await host.run(['--json', 'dot', 'fsck', '--repair']);
        expect(fix.code, `round ${round}: fsck --repair: ${fix.stdout}${fix.stderr}`).toBe(0);
        expect(await mountedRight(), `round ${round}: mounted after fsck --repair`).toBe(true);

        // A write at the mount point is in the next commit.
        const before = (await ok('--json', 'dot', 'show', dst)).json().branches.master.head;
        writeFileSync(`${target}/written-${round}.txt`, `round ${round}`);
        const commit = (await ok('--json', 'dot', 'commit', dst, '-m', `local ${round}`)).json();
        const check = uniqueName('c');
        await ok('dot', 'clone', dst, check, '--commit', commit.id);
        expect(readFileSync(`${host.dotPath(check)}/written-${round}.txt`, 'utf8')).toBe(`round ${round}`);
        await ok('dot', 'rm', check);
        // Every other round goes back onto the remote's line (the next pull is a fast-forward); else it diverges and stashes the local commit.
        if (round % 2 === 0) {
          await ok('dot', 'reset', dst, '--hard', before, '--force');
          expect(await mountedRight()).toBe(true);
        }
      }

      const last = await host.run(['--json', 'dot', 'pull', `file://${remote}/${src}`, '--as', dst, '--stash-on-divergence']);
      expect(last.code, last.stdout + last.stderr).toBe(0);
      expect(await mountedRight()).toBe(true);
      for (let round = 0; round <= ROUNDS; round++) {
        expect(readFileSync(`${target}/data-${round}.bin`).equals(readFileSync(`${host.dotPath(src)}/data-${round}.bin`)), `data-${round}.bin`).toBe(true);
      }
      expect((await host.run(['dot', 'fsck'])).code).toBe(0);
      console.log(
        `${driver}: ${kills} of ${ROUNDS} pulls killed; fsck --repair needed after rounds ${repaired.join(', ') || 'none'}; a pull ` +
          `took ${pullMs} ms, start-up ${startMs} ms`,
      );
    });
  });
}
