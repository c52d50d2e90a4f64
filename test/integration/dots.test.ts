import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, type Dirent } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knarr, type CliRun } from '../harness/cli.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';
import { kernelMounts } from '../harness/mounts.js';

type Driver = 'zfs' | 'btrfs' | 'dir';

const haveEtcd = haveTools('etcd');
const kernelHasBtrfs = (() => {
  try {
    return /\bbtrfs$/m.test(readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
})();

const SUITES: { driver: Driver; run: boolean }[] = [
  {
    driver: 'zfs',
    run: integration('dots on zfs', haveEtcd && (await zfsAnswers()), 'needs etcd (etcd-server) and a zpool that answers (zfs-fuse)'),
  },
  {
    driver: 'btrfs',
    run: integration(
      'dots on btrfs',
      haveEtcd && haveTools('mkfs.btrfs', 'btrfs', 'losetup') && kernelHasBtrfs && existsSync('/dev/loop-control'),
      'needs etcd, btrfs-progs, btrfs in /proc/filesystems and /dev/loop-control',
    ),
  },
  { driver: 'dir', run: integration('dots on dir', haveEtcd, 'needs etcd (etcd-server)') },
];

const AUTHOR = 'tester@dots-suite';
const COMMIT_ID = /^[0-9a-z]{10}[0-9a-f]{8}$/;

// ---- observation helpers, independent of knarr's own code ----

const mounts = kernelMounts;
const mountsAt = (target: string) => mounts().filter((m) => m.target === target);

/** Every file (sha256) and directory ('dir') below root, by relative path. */
async function tree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const s = await lstat(p);
      if (s.isDirectory()) {
        out[r] = 'dir';
        await walk(p, r);
      } else {
        out[r] = createHash('sha256')
          .update(await readFile(p))
          .digest('hex');
      }
    }
  };
  await walk(root, '');
  return out;
}

/** Every path below root (names only), leaving out the top-level entries given. */
async function paths(root: string, skipTop: string[] = []): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!rel && skipTop.includes(e.name)) continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push(r);
      if (e.isDirectory()) await walk(join(dir, e.name), r);
    }
  };
  await walk(root, '');
  return out.sort();
}

/** Inode identities (dev:ino) of every regular file below root. */
async function inodes(root: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const p of await paths(root)) {
    const s = await lstat(join(root, p));
    if (s.isFile()) out.add(`${s.dev}:${s.ino}`);
  }
  return out;
}

async function writeFiles(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, rel)), { recursive: true });
    await writeFile(join(root, rel), content);
  }
}

async function zfsAll(pool: string): Promise<string[]> {
  const r = await execa('zfs', ['list', '-H', '-o', 'name', '-t', 'all', '-r', pool]);
  return r.stdout.split('\n').filter(Boolean).sort();
}

/** The dataset zfs itself reports as mounted at path. */
async function zfsDatasetAt(pool: string, path: string): Promise<string> {
  const r = await execa('zfs', ['list', '-H', '-o', 'name,mountpoint', '-t', 'filesystem', '-r', pool]);
  const hit = r.stdout
    .split('\n')
    .map((l) => l.split('\t'))
    .find(([, mp]) => mp === path);
  if (!hit) throw new Error(`no dataset of ${pool} is mounted at ${path}:\n${r.stdout}`);
  return hit[0]!;
}

/** etcd processes whose command line mentions dir (the managed etcd of a state dir under it). */
function etcdPidsUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (/(^|\/)etcd$/.test(argv[0] ?? '') && argv.some((a) => a.includes(dir))) pids.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return pids;
}

async function loopsUnder(dir: string): Promise<string[]> {
  const r = await execa('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE'], { reject: false });
  if (r.exitCode !== 0 || !r.stdout.trim()) return [];
  const list = (JSON.parse(r.stdout) as { loopdevices: { name: string; 'back-file': string | null }[] }).loopdevices;
  return list.filter((l) => l['back-file']?.startsWith(`${dir}/`)).map((l) => l.name);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

for (const { driver, run } of SUITES) {
  describe.skipIf(!run)(`dots on ${driver}`, () => {
    let tmp: TempDir | undefined;
    let state: string;
    let config: string;
    let pool: string;
    let poolMount: string;

    const cli = (argv: string[], env?: Record<string, string>): Promise<CliRun> =>
      knarr(['--state-dir', state, '--config', config, ...argv], env ? { env } : {});
    async function ok(argv: string[], env?: Record<string, string>): Promise<CliRun> {
      const r = await cli(argv, env);
      expect(r.code, `knarr ${argv.join(' ')} exited ${r.code}\n${r.stderr}`).toBe(0);
      return r;
    }
    const okJson = async (...argv: string[]) => (await ok(['--json', ...argv])).json();
    const mountPath = (label: string) => `${tmp!.path}/mnt/${label}`;
    const logIds = async (dot: string): Promise<string[]> => ((await okJson('dot', 'log', dot)) as { id: string }[]).map((c) => c.id);
    /** The table of `dot branch DOT`: branch name -> whether its row carries the "*". */
    async function branchTable(dot: string): Promise<Record<string, boolean>> {
      const rows = (await ok(['dot', 'branch', dot])).stdout
        .split('\n')
        .slice(1)
        .filter((l) => l.trim());
      return Object.fromEntries(
        rows.map((l) => {
          const cells = l.trim().split(/\s+/);
          return cells[0] === '*' ? [cells[1], true] : [cells[0], false];
        }),
      );
    }
    /** Pool contents outside the etcd data (which changes on its own). */
    const poolPaths = () => paths(poolMount, ['knarr-etcd']);

    beforeAll(async () => {
      tmp = await tempDir(`knarr-dots-${driver}-`);
      state = `${tmp.path}/state`;
      config = `${tmp.path}/config.yaml`;
      pool = uniqueName('kd');
      await writeFile(config, `etcdServer:\n  clientPort: ${await freePort()}\n  peerPort: ${await freePort()}\n`);
      const init = ['--json', 'pool', 'init', '--name', pool, '--driver', driver];
      if (driver !== 'dir') init.push('--loop-file', `${tmp.path}/pool.img`, '--size', '256M');
      const r = await ok(init);
      expect(r.json()).toMatchObject({ name: pool, driver, health: 'ONLINE' });
      poolMount = r.json().mountpoint;
    });

    afterAll(async () => {
      if (!tmp) return;
      const root = tmp.path;
      const problems: string[] = [];
      try {
        const list = await cli(['--json', 'dot', 'list']);
        if (list.code === 0) for (const d of list.json() as { name: string }[]) await cli(['dot', 'unmount', d.name]);
        // Bind mounts a failed test left behind (not the pool's own mounts).
        const stray = mounts()
          .filter((m) => m.target.startsWith(`${root}/`) && !m.target.startsWith(`${state}/mnt/`))
          .sort((a, b) => b.target.length - a.target.length);
        for (const m of stray) await execa('umount', ['-l', m.target], { reject: false });
        for (const argv of [
          ['etcd', 'down'],
          ['pool', 'destroy', pool, '--yes', '--force'],
        ]) {
          const r = await cli(argv);
          if (r.code !== 0) problems.push(`knarr ${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
        }
      } finally {
        // Whatever knarr could not release: never leak mounts, pools, loops or etcd processes.
        for (const pid of etcdPidsUnder(root)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        for (const m of mounts()
          .filter((m) => m.target.startsWith(`${root}/`))
          .sort((a, b) => b.target.length - a.target.length)) {
          await execa('umount', ['-l', m.target], { reject: false });
        }
        if (driver === 'zfs') await destroyPoolQuietly(pool);
        for (const dev of await loopsUnder(root)) await execa('losetup', ['-d', dev], { reject: false });
        await rm(root, { recursive: true, force: true });
      }
      // Reported after the cleanup, so a knarr that cannot tear down fails the run without leaking.
      if (problems.length) throw new Error(problems.join('\n'));
    });

    interface TwoCommits {
      dot: string;
      mount: string;
      first: string;
      second: string;
      /** Contents of the mount at each commit. */
      at1: Record<string, string>;
      at2: Record<string, string>;
    }

    /** A mounted dot with two commits: files (one in a subdirectory), then a change. */
    async function dotWithTwoCommits(prefix: string): Promise<TwoCommits> {
      const dot = uniqueName(prefix);
      const mount = mountPath(dot);
      expect(await okJson('dot', 'init', dot)).toMatchObject({ dot, action: 'created' });
      expect(await okJson('dot', 'mount', dot, mount)).toMatchObject({ dot, path: mount, action: 'mounted' });
      await writeFiles(mount, {
        'a.txt': 'alpha\n',
        'blob.bin': randomBytes(256 * 1024),
        'sub/b.txt': 'beta\n',
        'sub/deeper/c.json': '{"c":1}\n',
      });
      const at1 = await tree(mount);
      const first = (
        await ok(['--json', 'dot', 'commit', dot, '-m', 'first files', '--meta', 'k=v', '--meta', 'ticket=OPS-1'], { KNARR_AUTHOR: AUTHOR })
      ).json().id as string;
      await writeFile(`${mount}/a.txt`, 'alpha, changed\n');
      await writeFiles(mount, { 'sub/new.txt': 'new in the second commit\n' });
      const at2 = await tree(mount);
      expect(at2).not.toEqual(at1);
      const second = (await okJson('dot', 'commit', dot, '-m', 'second: a.txt changed')).id as string;
      return { dot, mount, first, second, at1, at2 };
    }

    it('commit twice: log lists both newest first with message, meta, author and parents; show has the newest as head', async () => {
      const t0 = Date.now();
      const d = await dotWithTwoCommits('c');
      expect(d.first).toMatch(COMMIT_ID);
      expect(d.second).toMatch(COMMIT_ID);
      expect(d.second).not.toBe(d.first);

      const log = await okJson('dot', 'log', d.dot);
      expect(log).toHaveLength(2);
      expect(log[0]).toMatchObject({ id: d.second, dot: d.dot, branch: 'master', parent: d.first, message: 'second: a.txt changed', meta: {} });
      expect(log[1]).toMatchObject({
        id: d.first,
        dot: d.dot,
        branch: 'master',
        parent: null,
        message: 'first files',
        author: AUTHOR,
        meta: { k: 'v', ticket: 'OPS-1' },
      });
      expect(log[0].author).toBe(`${userInfo().username}@${hostname()}`);
      const [t1, t2] = [Date.parse(log[1].time), Date.parse(log[0].time)];
      expect(t1).toBeGreaterThanOrEqual(t0 - 1000);
      expect(t2).toBeGreaterThanOrEqual(t1);

      const show = await okJson('dot', 'show', d.dot);
      expect(show).toMatchObject({ name: d.dot, pool, driver, branch: 'master', commits: 2, mounts: { __default__: d.mount } });
      expect(show.branches.master.head).toBe(d.second);
      // The mount is the branch filesystem itself: what was written is what the dot holds.
      expect(await tree(`${show.path}/__default__`)).toEqual(d.at2);

      const listed = ((await okJson('dot', 'list')) as { name: string; head: string }[]).find((r) => r.name === d.dot);
      expect(listed).toMatchObject({ head: d.second, branch: 'master' });
    });

    it('clone --commit <first> holds the first commit byte for byte, copy-on-write where the driver can; writes stay apart', async () => {
      const d = await dotWithTwoCommits('cl');
      const clone = uniqueName('cn');
      const r = await okJson('dot', 'clone', d.dot, clone, '--commit', d.first);
      expect(r).toMatchObject({ dot: clone, from: { dot: d.dot, commit: d.first }, copyOnWrite: driver !== 'dir' });
      const cloneShow = await okJson('dot', 'show', clone);
      expect(cloneShow).toMatchObject({ origin: { dot: d.dot, commit: d.first }, branch: 'master' });
      const srcShow = await okJson('dot', 'show', d.dot);

      const cm = mountPath(clone);
      expect(await okJson('dot', 'mount', clone, cm)).toMatchObject({ action: 'mounted' });
      expect(mountsAt(cm)).toHaveLength(1);
      expect(await tree(cm)).toEqual(d.at1);
      expect(await tree(d.mount)).toEqual(d.at2);

      if (driver === 'zfs') {
        const src = await zfsDatasetAt(pool, srcShow.path);
        const dst = await zfsDatasetAt(pool, cloneShow.path);
        expect(dst).not.toBe(src);
        const origin = (await execa('zfs', ['get', '-H', '-o', 'value', 'origin', dst])).stdout.trim();
        expect(origin).toBe(`${src}@${d.first}`);
        expect(await zfsAll(pool)).toContain(`${src}@${d.first}`);
      } else if (driver === 'btrfs') {
        const shown = (await execa('btrfs', ['subvolume', 'show', cloneShow.path])).stdout;
        const parent = /Parent UUID:\s+(\S+)/.exec(shown)?.[1];
        expect(parent, shown).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        // The parent is the read-only snapshot of the first commit.
        const subvols = (await execa('btrfs', ['subvolume', 'list', '-u', poolMount])).stdout.split('\n');
        const parentLine = subvols.find((l) => l.includes(` uuid ${parent} `));
        expect(parentLine, subvols.join('\n')).toMatch(new RegExp(`${d.dot}/.*${d.first}$`));
        const parentPath = `${poolMount}/${/ path (.*)$/.exec(parentLine!)![1]}`;
        expect((await execa('btrfs', ['property', 'get', parentPath, 'ro'])).stdout.trim()).toBe('ro=true');
      } else {
        // A full copy: no file of the clone shares an inode with anything of the source dot.
        const srcInodes = await inodes(dirname(srcShow.path));
        const cloneInodes = await inodes(cloneShow.path);
        expect(cloneInodes.size).toBe(Object.values(d.at1).filter((v) => v !== 'dir').length);
        for (const i of cloneInodes) expect(srcInodes.has(i)).toBe(false);
      }

      // Writes into the clone never reach the source, nor the other way round.
      await writeFile(`${cm}/a.txt`, 'written in the clone\n');
      await writeFiles(cm, { 'sub/clone-only.txt': 'clone\n' });
      await unlink(`${cm}/blob.bin`);
      expect(await tree(d.mount)).toEqual(d.at2);
      await writeFile(`${d.mount}/sub/b.txt`, 'written in the source\n');
      expect(readFileSync(`${cm}/sub/b.txt`, 'utf8')).toBe('beta\n');
      expect(readFileSync(`${cm}/a.txt`, 'utf8')).toBe('written in the clone\n');
      expect(await logIds(d.dot)).toEqual([d.second, d.first]);
      // The clone's log is the history it came from: the source's commits up to the one it was cloned at.
      expect(await logIds(clone)).toEqual([d.first]);
      expect((await okJson('dot', 'log', clone))[0]).toMatchObject({ id: d.first, dot: d.dot, message: 'first files' });

      // The clone outlives its source: removing the source keeps the clone's data and lets it commit.
      const cloneState = await tree(cm);
      await ok(['dot', 'rm', d.dot, '--force']);
      expect(mountsAt(d.mount)).toHaveLength(0);
      expect(await exists(srcShow.path)).toBe(false);
      expect(mountsAt(cm)).toHaveLength(1);
      expect(await tree(cm)).toEqual(cloneState);
      const c = (await okJson('dot', 'commit', clone, '-m', 'in the clone')).id as string;
      // Its own commits, then the history it came from, which stays when the source is gone.
      expect(await logIds(clone)).toEqual([c, d.first]);
      const table = (await ok(['dot', 'log', clone])).stdout.trimEnd().split('\n');
      expect(table[0]).toMatch(/^COMMIT +TIME +AUTHOR +DOT +MESSAGE$/);
      expect(table[1]).toMatch(new RegExp(`^${c} .* ${clone} +in the clone$`));
      expect(table[2]).toMatch(new RegExp(`^${d.first} .* ${d.dot} +first files$`));
      // A clone of the clone goes back as far.
      const again = uniqueName('cc');
      await ok(['dot', 'clone', clone, again]);
      expect(await logIds(again)).toEqual([c, d.first]);
      await ok(['dot', 'rm', again, '--force']);
      await ok(['dot', 'rm', clone, '--force']);
      expect(mountsAt(cm)).toHaveLength(0);
      expect(await exists(cloneShow.path)).toBe(false);
      if (driver === 'zfs') expect((await zfsAll(pool)).filter((n) => n.includes(`/${d.dot}`) || n.includes(`/${clone}`))).toEqual([]);
    });

    it('branch and checkout: the mount path follows the active branch; writes stay on their branch', async () => {
      const d = await dotWithTwoCommits('br');
      await writeFiles(d.mount, { 'master-only.txt': 'uncommitted on master\n' });
      const masterState = await tree(d.mount);

      expect(await okJson('dot', 'branch', d.dot, 'exp')).toMatchObject({ dot: d.dot, branch: 'exp', action: 'created', from: d.second });
      expect(await okJson('dot', 'branch', d.dot, 'exp')).toMatchObject({ action: 'exists' });
      // master's uncommitted file would be left behind out of sight: refused, naming it, unless --force.
      const refused = await cli(['dot', 'checkout', d.dot, 'exp']);
      expect(refused.code).toBe(4);
      expect(refused.stderr).toContain('master-only.txt');
      expect(await okJson('dot', 'checkout', d.dot, 'exp', '--force')).toMatchObject({ branch: 'exp', previous: 'master', action: 'switched' });
      expect(mountsAt(d.mount)).toHaveLength(1);
      // exp starts at the head commit: without master's uncommitted file.
      expect(await tree(d.mount)).toEqual(d.at2);

      await writeFiles(d.mount, { 'exp-only.txt': 'on exp\n', 'sub/b.txt': 'beta on exp\n' });
      const expState = await tree(d.mount);
      const branches = await okJson('dot', 'branch', d.dot);
      expect(branches).toEqual([
        expect.objectContaining({ branch: 'exp', active: true, head: d.second }),
        expect.objectContaining({ branch: 'master', active: false, head: d.second }),
      ]);

      expect(await okJson('dot', 'checkout', d.dot, 'master', '--force')).toMatchObject({ branch: 'master', previous: 'exp', action: 'switched' });
      expect(mountsAt(d.mount)).toHaveLength(1);
      expect(await tree(d.mount)).toEqual(masterState);
      expect(existsSync(`${d.mount}/exp-only.txt`)).toBe(false);
      expect(await okJson('dot', 'checkout', d.dot, 'master')).toMatchObject({ action: 'exists' });

      expect(await branchTable(d.dot)).toEqual({ exp: false, master: true });
      expect((await okJson('dot', 'show', d.dot)).branch).toBe('master');

      // Back on exp, its own writes are still there.
      await ok(['dot', 'checkout', d.dot, 'exp', '--force']);
      expect(await tree(d.mount)).toEqual(expState);
      expect(await branchTable(d.dot)).toEqual({ exp: true, master: false });
      await ok(['dot', 'checkout', d.dot, 'master', '--force']);

      const missing = await cli(['dot', 'checkout', d.dot, 'nope']);
      expect(missing.code).toBe(3);
      expect(missing.stderr).toContain('no branch nope');
      expect(await tree(d.mount)).toEqual(masterState);
    });

    it('reset --hard: drops uncommitted changes; an older commit needs --force, which destroys the newer one', async () => {
      const d = await dotWithTwoCommits('rs');
      await writeFile(`${d.mount}/a.txt`, 'uncommitted\n');
      await unlink(`${d.mount}/sub/deeper/c.json`);
      await writeFiles(d.mount, { 'junk/x.bin': randomBytes(1024) });
      expect(await tree(d.mount)).not.toEqual(d.at2);

      const kept = await cli(['dot', 'reset', d.dot, '--hard', d.second]);
      expect(kept.code).toBe(4);
      expect(kept.stderr).toMatch(/a\.txt.*sub\/deeper\/c\.json/s);
      expect(await tree(d.mount)).not.toEqual(d.at2);
      expect(await okJson('dot', 'reset', d.dot, '--hard', d.second, '--force')).toMatchObject({ head: d.second, destroyed: [] });
      expect(mountsAt(d.mount)).toHaveLength(1);
      expect(await tree(d.mount)).toEqual(d.at2);
      expect(await logIds(d.dot)).toEqual([d.second, d.first]);

      const refused = await cli(['dot', 'reset', d.dot, '--hard', d.first]);
      expect(refused.code).toBe(4);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toContain(d.second.slice(0, 12));
      expect(refused.stderr).toMatch(/--force/);
      expect(await tree(d.mount)).toEqual(d.at2);
      expect(await logIds(d.dot)).toEqual([d.second, d.first]);
      expect((await okJson('dot', 'show', d.dot)).branches.master.head).toBe(d.second);

      const forced = await okJson('dot', 'reset', d.dot, '--hard', d.first, '--force');
      expect(forced).toMatchObject({ head: d.first, destroyed: [d.second] });
      expect(mountsAt(d.mount)).toHaveLength(1);
      expect(await tree(d.mount)).toEqual(d.at1);
      expect(await logIds(d.dot)).toEqual([d.first]);
      expect((await okJson('dot', 'show', d.dot)).branches.master.head).toBe(d.first);
      // The newer commit is gone from the disk too.
      if (driver === 'zfs') {
        const all = await zfsAll(pool);
        expect(all.some((n) => n.endsWith(`@${d.second}`))).toBe(false);
        expect(all.some((n) => n.endsWith(`@${d.first}`))).toBe(true);
      } else {
        const all = await poolPaths();
        expect(all.filter((p) => p.includes(d.second))).toEqual([]);
        expect(all.some((p) => p.includes(d.first))).toBe(true);
      }

      // A new commit after the reset continues from the older one.
      await writeFiles(d.mount, { 'after.txt': 'after reset\n' });
      const third = (await okJson('dot', 'commit', d.dot, '-m', 'after reset')).id as string;
      expect(await okJson('dot', 'log', d.dot)).toEqual([expect.objectContaining({ id: third, parent: d.first }), expect.objectContaining({ id: d.first })]);
    });

    it('a dot cloned from a commit on a branch keeps its data when the source dot is removed', async () => {
      const d = await dotWithTwoCommits('cb');
      await ok(['dot', 'branch', d.dot, 'exp']);
      await ok(['dot', 'checkout', d.dot, 'exp']);
      await writeFiles(d.mount, { 'exp.txt': 'committed on exp\n' });
      const atExp = await tree(d.mount);
      const onExp = (await okJson('dot', 'commit', d.dot, '-m', 'on exp')).id as string;
      const clone = uniqueName('cx');
      expect(await okJson('dot', 'clone', d.dot, clone, '--commit', onExp)).toMatchObject({ from: { dot: d.dot, commit: onExp } });
      const cm = mountPath(clone);
      await ok(['dot', 'mount', clone, cm]);
      expect(await tree(cm)).toEqual(atExp);

      // On zfs the clone hangs off exp, which hangs off master: removing the source must detach it from both.
      await ok(['dot', 'rm', d.dot, '--force']);
      expect(((await okJson('dot', 'list')) as { name: string }[]).map((r) => r.name)).toContain(clone);
      expect(mountsAt(cm)).toHaveLength(1);
      expect(await tree(cm)).toEqual(atExp);
      await writeFiles(cm, { 'later.txt': 'after the source went\n' });
      const c = (await okJson('dot', 'commit', clone, '-m', 'still here')).id as string;
      // Its history goes back through the branch it was cloned from into master, after the source is gone.
      expect(await logIds(clone)).toEqual([c, onExp, d.second, d.first]);
      if (driver === 'zfs') {
        const cloneDs = await zfsDatasetAt(pool, (await okJson('dot', 'show', clone)).path);
        expect((await execa('zfs', ['get', '-H', '-o', 'value', 'origin', cloneDs])).stdout.trim()).toBe('-');
        expect((await zfsAll(pool)).filter((n) => n.includes(`/${d.dot}/`))).toEqual([]);
      }
      await ok(['dot', 'rm', clone, '--force']);
    });

    describe('reset --force past a commit that another dot was cloned from', () => {
      let d: TwoCommits;
      let clone: string;
      let cm: string;
      let result: CliRun;
      beforeAll(async () => {
        d = await dotWithTwoCommits('rc');
        clone = uniqueName('rk');
        cm = mountPath(clone);
        await ok(['dot', 'clone', d.dot, clone, '--commit', d.second]);
        await ok(['dot', 'mount', clone, cm]);
        result = await cli(['--json', 'dot', 'reset', d.dot, '--hard', d.first, '--force']);
      });

      if (driver === 'zfs') {
        it('zfs refuses (the clone needs the newer snapshot): exit 4, commits and clone unchanged', async () => {
          expect(result.code, result.stderr).toBe(4);
          expect(result.stderr).toMatch(/cloned dot/);
          expect(await logIds(d.dot)).toEqual([d.second, d.first]);
          expect(await tree(cm)).toEqual(d.at2);
          expect(await tree(`${(await okJson('dot', 'show', d.dot)).path}/__default__`)).toEqual(d.at2);
        });
        // Known bug (src/commands/dot/reset.ts): the mounts are taken down before the rollback that zfs refuses, and never put back.
        it('zfs refuses and leaves the dot mounted', async () => {
          expect(mountsAt(d.mount)).toHaveLength(1);
          expect(await tree(d.mount)).toEqual(d.at2);
        });
      } else {
        it('the newer commit goes; the clone, a separate copy, keeps its data', async () => {
          expect(result.code, result.stderr).toBe(0);
          expect(result.json()).toMatchObject({ head: d.first, destroyed: [d.second] });
          expect(await tree(d.mount)).toEqual(d.at1);
          expect(await tree(cm)).toEqual(d.at2);
          expect(await logIds(d.dot)).toEqual([d.first]);
        });
      }
    });

    it('subdots: app and app.db are separate directories, and one commit of app captures both', async () => {
      const app = uniqueName('sd');
      const [m, mdb] = [mountPath(app), mountPath(`${app}.db`)];
      expect(await okJson('dot', 'init', app)).toMatchObject({ action: 'created', subdot: '__default__' });
      expect(await okJson('dot', 'init', `${app}.db`)).toMatchObject({ dot: app, subdot: 'db', action: 'created' });
      expect((await okJson('dot', 'show', app)).subdots.sort()).toEqual(['__default__', 'db']);
      await ok(['dot', 'mount', app, m]);
      expect(await okJson('dot', 'mount', `${app}.db`, mdb)).toMatchObject({ subdot: 'db', path: mdb, action: 'mounted' });
      expect(mountsAt(m)).toHaveLength(1);
      expect(mountsAt(mdb)).toHaveLength(1);

      await writeFiles(m, { 'app.conf': 'port=80\n', 'static/index.html': '<h1>hi</h1>\n' });
      await writeFiles(mdb, { 'db.sqlite': randomBytes(64 * 1024), 'wal/0001': 'wal\n' });
      const [appTree, dbTree] = [await tree(m), await tree(mdb)];
      expect(Object.keys(appTree).sort()).toEqual(['app.conf', 'static', 'static/index.html']);
      expect(Object.keys(dbTree).sort()).toEqual(['db.sqlite', 'wal', 'wal/0001']);

      const c = (await okJson('dot', 'commit', app, '-m', 'both subdots')).id as string;
      await writeFile(`${m}/app.conf`, 'port=8080\n');
      await rm(`${mdb}/wal`, { recursive: true });
      await writeFile(`${mdb}/db.sqlite`, 'corrupted');
      expect(await tree(mdb)).not.toEqual(dbTree);

      await okJson('dot', 'reset', app, '--hard', c, '--force');
      expect(await tree(m)).toEqual(appTree);
      expect(await tree(mdb)).toEqual(dbTree);
      expect(mountsAt(m)).toHaveLength(1);
      expect(mountsAt(mdb)).toHaveLength(1);

      // Unmounting the subdot leaves the main one mounted.
      expect(await okJson('dot', 'unmount', `${app}.db`)).toMatchObject({ unmounted: [mdb] });
      expect(mountsAt(mdb)).toHaveLength(0);
      expect(mountsAt(m)).toHaveLength(1);
    });

    describe('a subdot made after a commit, when that commit comes back', () => {
      let app: string;
      let c1: string;
      let at1: Record<string, string>;
      let clone: string;
      let reset: CliRun;
      let cloneMount: CliRun;
      beforeAll(async () => {
        app = uniqueName('ls');
        await ok(['dot', 'init', app]);
        await ok(['dot', 'mount', app, mountPath(app)]);
        await writeFiles(mountPath(app), { 'app.conf': 'v1\n' });
        at1 = await tree(mountPath(app));
        c1 = (await okJson('dot', 'commit', app, '-m', 'before the subdot')).id;
        await ok(['dot', 'init', `${app}.db`]);
        await ok(['dot', 'mount', `${app}.db`, mountPath(`${app}.db`)]);
        await writeFiles(mountPath(`${app}.db`), { 'db.sqlite': 'rows\n' });
        await ok(['dot', 'commit', app, '-m', 'with the subdot']);
        clone = uniqueName('lc');
        await ok(['dot', 'clone', app, clone, '--commit', c1]);
        cloneMount = await cli(['--json', 'dot', 'mount', `${clone}.db`, mountPath(`${clone}.db`)]);
        reset = await cli(['--json', 'dot', 'reset', app, '--hard', c1, '--force']);
      });

      // Known bug (src/commands/dot/reset.ts): no ensureSubdir after the rollback, so remounting app.db fails (exit 1,
      // "mount failed") after the disk dropped c2 but before the store did: the log still lists c2.
      it('reset --hard c1 --force keeps app.db as an empty subdot, still mounted, and the log loses c2', async () => {
        expect(reset.code, reset.stderr).toBe(0);
        expect(await logIds(app)).toEqual([c1]);
        expect(await tree(mountPath(app))).toEqual(at1);
        expect(mountsAt(mountPath(`${app}.db`))).toHaveLength(1);
        expect(await tree(mountPath(`${app}.db`))).toEqual({});
      });

      // Known bug (src/commands/dot/clone.ts / mountSubdot in common.ts): the clone lists subdot db but its
      // filesystem (from c1) has no db directory, so the bind mount fails (exit 1, "mount failed").
      it('a clone of c1 mounts its db subdot, empty', async () => {
        expect(cloneMount.code, cloneMount.stderr).toBe(0);
        expect(mountsAt(mountPath(`${clone}.db`))).toHaveLength(1);
        expect(await tree(mountPath(`${clone}.db`))).toEqual({});
      });
    });

    it('rm refuses a mounted dot (exit 4) and with --force unmounts it and removes its data and records', async () => {
      const d = await dotWithTwoCommits('rm');
      const show = await okJson('dot', 'show', d.dot);
      const before = await poolPaths();
      expect(before.some((p) => p.split('/').includes(d.dot))).toBe(true);

      const refused = await cli(['dot', 'rm', d.dot]);
      expect(refused.code).toBe(4);
      expect(refused.stderr).toContain(d.mount);
      expect(refused.stderr).toMatch(/--force/);
      expect(mountsAt(d.mount)).toHaveLength(1);
      expect(await tree(d.mount)).toEqual(d.at2);
      expect(await poolPaths()).toEqual(before);
      expect(await logIds(d.dot)).toEqual([d.second, d.first]);

      expect(await okJson('dot', 'rm', d.dot, '--force')).toMatchObject({ dot: d.dot, removed: true, unmounted: [d.mount] });
      expect(mountsAt(d.mount)).toHaveLength(0);
      expect(await exists(show.path)).toBe(false);
      expect((await poolPaths()).filter((p) => p.split('/').includes(d.dot))).toEqual([]);
      if (driver === 'zfs') expect((await zfsAll(pool)).filter((n) => n.includes(`/${d.dot}`))).toEqual([]);
      expect(((await okJson('dot', 'list')) as { name: string }[]).map((r) => r.name)).not.toContain(d.dot);
      const gone = await cli(['dot', 'show', d.dot]);
      expect(gone.code).toBe(3);
      expect(gone.stderr).toContain(`no dot named ${d.dot}`);

      // The name is free again.
      expect(await okJson('dot', 'init', d.dot)).toMatchObject({ action: 'created' });
      expect(await logIds(d.dot)).toEqual([]);
      await ok(['dot', 'rm', d.dot]);
    });

    it('bad names exit 2 with one line naming DOT and create nothing', async () => {
      // A dot so the pool already holds dot data to compare against.
      const keep = uniqueName('bn');
      await ok(['dot', 'init', keep]);
      const listBefore = (await ok(['--json', 'dot', 'list'])).stdout;
      const disk = async () => ({ paths: await poolPaths(), zfs: driver === 'zfs' ? await zfsAll(pool) : [] });
      const diskBefore = await disk();

      const bad = ['has/slash', 'has@at', 'has space', 'a..b', '-leading', `a${'x'.repeat(200)}`];
      for (const name of bad) {
        // "--" so that a leading "-" reaches knarr as the DOT argument.
        const r = await cli(['dot', 'init', '--', name]);
        expect(r.code, `${name}: ${r.stderr}`).toBe(2);
        expect(r.stdout).toBe('');
        const lines = r.stderr.trimEnd().split('\n');
        expect(lines, name).toHaveLength(1);
        expect(lines[0]).toMatch(/^knarr: DOT: /);
        // Subdot forms are checked the same way.
        const sub = await cli(['dot', 'init', `${keep}.${name}`]);
        expect(sub.code, `${keep}.${name}: ${sub.stderr}`).toBe(2);
        expect(sub.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(sub.stderr).toMatch(/^knarr: DOT: /);
      }
      // Without "--" the parser refuses the leading "-" as an unknown option: still exit 2, still nothing made.
      expect((await cli(['dot', 'init', '-leading'])).code).toBe(2);

      expect((await ok(['--json', 'dot', 'list'])).stdout).toBe(listBefore);
      expect(await disk()).toEqual(diskBefore);
      expect((await okJson('dot', 'show', keep)).subdots).toEqual(['__default__']);

      // The longest allowed name works end to end.
      const longest = `l${'y'.repeat(199)}`;
      expect(await okJson('dot', 'init', longest)).toMatchObject({ dot: longest, action: 'created' });
      await writeFiles((await okJson('dot', 'show', longest)).path + '/__default__', { 'f.txt': 'long name\n' });
      expect((await okJson('dot', 'commit', longest, '-m', 'long')).id).toMatch(COMMIT_ID);
      await ok(['dot', 'rm', longest]);
      await ok(['dot', 'rm', keep]);
    });

    it('init, mount and unmount are idempotent', async () => {
      const dot = uniqueName('id');
      const m = mountPath(dot);
      expect(await okJson('dot', 'init', dot)).toMatchObject({ action: 'created' });
      const disk = async () => ({ paths: await poolPaths(), zfs: driver === 'zfs' ? await zfsAll(pool) : [] });
      const afterInit = await disk();
      const record = (await ok(['--json', 'dot', 'show', dot])).stdout;
      expect(await okJson('dot', 'init', dot)).toMatchObject({ dot, action: 'exists' });
      expect(await disk()).toEqual(afterInit);
      expect((await ok(['--json', 'dot', 'show', dot])).stdout).toBe(record);

      expect(await okJson('dot', 'init', `${dot}.cache`)).toMatchObject({ action: 'created' });
      expect(await okJson('dot', 'init', `${dot}.cache`)).toMatchObject({ action: 'exists' });
      expect((await okJson('dot', 'show', dot)).subdots.sort()).toEqual(['__default__', 'cache']);

      expect(await okJson('dot', 'mount', dot, m)).toMatchObject({ action: 'mounted' });
      await writeFiles(m, { 'x.txt': 'x\n' });
      expect(await okJson('dot', 'mount', dot, m)).toMatchObject({ action: 'exists', path: m });
      expect(mountsAt(m)).toHaveLength(1);
      expect(readFileSync(`${m}/x.txt`, 'utf8')).toBe('x\n');

      expect(await okJson('dot', 'unmount', dot)).toMatchObject({ unmounted: [m] });
      expect(mountsAt(m)).toHaveLength(0);
      expect(await okJson('dot', 'unmount', dot)).toMatchObject({ unmounted: [] });
      expect(mountsAt(m)).toHaveLength(0);
      expect((await okJson('dot', 'show', dot)).mounts).toEqual({});

      // Unmounted behind knarr's back: mount mounts again instead of trusting its record.
      expect(await okJson('dot', 'mount', dot, m)).toMatchObject({ action: 'mounted' });
      await execa('umount', [m]);
      expect(mountsAt(m)).toHaveLength(0);
      expect(await okJson('dot', 'mount', dot, m)).toMatchObject({ action: 'mounted' });
      expect(mountsAt(m)).toHaveLength(1);
      await ok(['dot', 'unmount', dot]);

      // Mounting again brings the same data back.
      expect(await okJson('dot', 'mount', dot, m)).toMatchObject({ action: 'mounted' });
      expect(readFileSync(`${m}/x.txt`, 'utf8')).toBe('x\n');
      await ok(['dot', 'unmount', dot]);
    });
  });
}
