import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knarr, type CliRun } from '../harness/cli.js';
import { kernelMounts } from '../harness/mounts.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';

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
    run: integration('dot status on zfs', haveEtcd && (await zfsAnswers()), 'needs etcd (etcd-server) and a zpool that answers (zfs-fuse)'),
  },
  {
    driver: 'btrfs',
    run: integration(
      'dot status on btrfs',
      haveEtcd && haveTools('mkfs.btrfs', 'btrfs', 'losetup') && kernelHasBtrfs && existsSync('/dev/loop-control'),
      'needs etcd, btrfs-progs, btrfs in /proc/filesystems and /dev/loop-control',
    ),
  },
  { driver: 'dir', run: integration('dot status on dir', haveEtcd, 'needs etcd (etcd-server)') },
];

async function writeFiles(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, rel)), { recursive: true });
    await writeFile(join(root, rel), content);
  }
}

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

interface Change {
  subdot: string;
  path: string;
  change: string;
}

/** Changes as "change subdot:path" strings, sorted: what an operator reads off the list. */
const flat = (changes: Change[]) => changes.map((c) => `${c.change} ${c.subdot}:${c.path}`).sort();

for (const { driver, run } of SUITES) {
  describe.skipIf(!run)(`dot status and diff on ${driver}`, () => {
    let tmp: TempDir | undefined;
    let state: string;
    let config: string;
    let pool: string;

    const cli = (argv: string[]): Promise<CliRun> => knarr(['--state-dir', state, '--config', config, ...argv]);
    async function ok(argv: string[]): Promise<CliRun> {
      const r = await cli(argv);
      expect(r.code, `knarr ${argv.join(' ')} exited ${r.code}\n${r.stderr}`).toBe(0);
      return r;
    }
    const okJson = async (...argv: string[]) => (await ok(['--json', ...argv])).json();
    const status = async (dot: string) => okJson('dot', 'status', dot);

    beforeAll(async () => {
      tmp = await tempDir(`knarr-status-${driver}-`);
      state = `${tmp.path}/state`;
      config = `${tmp.path}/config.yaml`;
      pool = uniqueName('kstatus');
      await writeFile(config, `etcdServer:\n  clientPort: ${await freePort()}\n  peerPort: ${await freePort()}\n`);
      const init = ['--json', 'pool', 'init', '--name', pool, '--driver', driver];
      if (driver !== 'dir') init.push('--loop-file', `${tmp.path}/pool.img`, '--size', '256M');
      await ok(init);
    });

    afterAll(async () => {
      if (!tmp) return;
      const root = tmp.path;
      try {
        const list = await cli(['--json', 'dot', 'list']);
        if (list.code === 0) for (const d of list.json() as { name: string }[]) await cli(['dot', 'unmount', d.name]);
        await cli(['etcd', 'down']);
        await cli(['pool', 'destroy', pool, '--yes', '--force']);
      } finally {
        for (const pid of etcdPidsUnder(root)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        for (const m of kernelMounts()
          .filter((m) => m.target.startsWith(`${root}/`))
          .sort((a, b) => b.target.length - a.target.length)) {
          await execa('umount', ['-l', m.target], { reject: false });
        }
        if (driver === 'zfs') await destroyPoolQuietly(pool);
        for (const dev of await loopsUnder(root)) await execa('losetup', ['-d', dev], { reject: false });
        await rm(root, { recursive: true, force: true });
      }
    });

    /** A dot with the subdot db, both mounted, one commit of a few files in each. */
    async function committedDot(prefix: string) {
      const dot = uniqueName(prefix);
      const m = `${tmp!.path}/mnt/${dot}`;
      const mdb = `${tmp!.path}/mnt/${dot}-db`;
      await ok(['dot', 'init', dot]);
      await ok(['dot', 'init', `${dot}.db`]);
      await ok(['dot', 'mount', dot, m]);
      await ok(['dot', 'mount', `${dot}.db`, mdb]);
      await writeFiles(m, { 'app.conf': 'port=80\n', 'static/index.html': '<h1>hi</h1>\n', 'static/old.css': 'a{}\n' });
      await writeFiles(mdb, { 'db.sqlite': 'rows\n' });
      const c1 = (await okJson('dot', 'commit', dot, '-m', 'first')).id as string;
      return { dot, m, mdb, c1 };
    }

    it('status lists exactly what was added, changed and removed, per subdot; a commit makes it clean; diff compares commits', async () => {
      const dot = uniqueName('st');
      const m = `${tmp!.path}/mnt/${dot}`;
      await ok(['dot', 'init', dot]);
      await ok(['dot', 'mount', dot, m]);
      await writeFiles(m, { 'a.txt': 'alpha\n', 'sub/b.txt': 'beta\n' });
      // No commit yet: everything is added.
      const fresh = await status(dot);
      expect(fresh).toMatchObject({ clean: false, base: null, added: 3, changed: 0, removed: 0 });
      expect(flat(fresh.changes)).toEqual([`added ${dot}:a.txt`, `added ${dot}:sub`, `added ${dot}:sub/b.txt`]);

      const c1 = (await okJson('dot', 'commit', dot, '-m', 'one')).id as string;
      expect(await status(dot)).toMatchObject({ clean: true, base: c1, changes: [] });
      expect((await ok(['dot', 'status', dot])).stdout).toMatch(/nothing to commit/);

      await ok(['dot', 'init', `${dot}.db`]);
      const mdb = `${tmp!.path}/mnt/${dot}-db`;
      await ok(['dot', 'mount', `${dot}.db`, mdb]);
      await writeFile(`${m}/a.txt`, 'alpha, changed\n');
      await unlink(`${m}/sub/b.txt`);
      await writeFiles(m, { 'new.txt': 'new\n' });
      await writeFiles(mdb, { 'wal/0001': 'wal\n' });
      const changed = await status(dot);
      expect(flat(changed.changes)).toEqual(
        [`changed ${dot}:a.txt`, `added ${dot}:new.txt`, `removed ${dot}:sub/b.txt`, `added ${dot}.db:wal`, `added ${dot}.db:wal/0001`].sort(),
      );
      expect(changed.subdots).toEqual({
        [dot]: { added: ['new.txt'], changed: ['a.txt'], removed: ['sub/b.txt'] },
        [`${dot}.db`]: { added: ['wal', 'wal/0001'], changed: [], removed: [] },
      });
      // The text names each path with its subdot.
      const text = (await ok(['dot', 'status', dot])).stdout;
      expect(text).toMatch(/2 added|3 added/);
      expect(text).toContain(`${dot}.db: wal/0001`);
      // diff with no commit is status.
      expect(flat((await okJson('dot', 'diff', dot)).changes)).toEqual(flat(changed.changes));

      const c2 = (await okJson('dot', 'commit', dot, '-m', 'two')).id as string;
      expect(await status(dot)).toMatchObject({ clean: true, base: c2 });
      // The two commits, by short ids as log shows them, and C1 against the files now (which are c2's).
      const between = await okJson('dot', 'diff', dot, c1.slice(0, 12), c2.slice(0, 12));
      expect(between).toMatchObject({ from: c1, to: c2 });
      expect(flat(between.changes)).toEqual(flat(changed.changes));
      expect(flat((await okJson('dot', 'diff', dot, c1)).changes)).toEqual(flat(changed.changes));
      // And backwards: what was added is removed.
      const back = await okJson('dot', 'diff', dot, c2, c1);
      expect(flat(back.changes)).toEqual(
        [`changed ${dot}:a.txt`, `removed ${dot}:new.txt`, `added ${dot}:sub/b.txt`, `removed ${dot}.db:wal`, `removed ${dot}.db:wal/0001`].sort(),
      );
      const unknown = await cli(['dot', 'diff', dot, 'zzzzzzzz']);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toMatch(/no commit/);
    });

    it('a change that keeps the size and puts the mtime back (touch -r) is still found', async () => {
      const { dot, m } = await committedDot('tr');
      const ref = `${tmp!.path}/mtime-ref-${dot}`;
      await writeFile(ref, '');
      await execa('touch', ['-r', `${m}/app.conf`, ref]);
      await writeFile(`${m}/app.conf`, 'port=81\n');
      await execa('touch', ['-r', ref, `${m}/app.conf`]);
      expect(flat((await status(dot)).changes)).toEqual([`changed ${dot}:app.conf`]);
      // Touched only (mtime changed, bytes the same): changed too, as a commit would take the new mtime.
      await writeFile(`${m}/app.conf`, 'port=80\n');
      await execa('touch', ['-r', ref, `${m}/app.conf`]);
      expect(await status(dot)).toMatchObject({ clean: true });
    });

    it('checkout and reset refuse to leave or drop uncommitted changes, naming them; --force goes on; --dry-run says it would refuse', async () => {
      const { dot, m, mdb, c1 } = await committedDot('co');
      await ok(['dot', 'branch', dot, 'exp']);
      // No changes: checkout and reset go on without --force.
      await ok(['dot', 'checkout', dot, 'exp']);
      await ok(['dot', 'checkout', dot, 'master']);
      await ok(['dot', 'reset', dot, '--hard', c1]);

      await writeFile(`${m}/app.conf`, 'port=8080\n');
      await unlink(`${m}/static/old.css`);
      await writeFiles(mdb, { 'extra.bin': 'x\n' });
      const names = [`${dot}:app.conf`, `${dot}:static/old.css`, `${dot}.db:extra.bin`];
      for (const argv of [
        ['dot', 'checkout', dot, 'exp'],
        ['--dry-run', 'dot', 'checkout', dot, 'exp'],
        ['dot', 'mount', dot, m, '--branch', 'exp'],
        ['dot', 'reset', dot, '--hard', c1],
        ['--dry-run', 'dot', 'reset', dot, '--hard', c1],
      ]) {
        const r = await cli(argv);
        expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(4);
        expect(r.stdout).toBe('');
        for (const n of names) expect(r.stderr).toContain(n);
        expect(r.stderr).toContain('3 path(s)');
        expect(r.stderr).toMatch(/commit them first.*--force/s);
      }
      // Nothing moved.
      expect((await okJson('dot', 'show', dot)).branch).toBe('master');
      expect(await readFile(`${m}/app.conf`, 'utf8')).toBe('port=8080\n');
      expect(existsSync(`${mdb}/extra.bin`)).toBe(true);

      // checkout --force: exp shows the commit; the changes wait on master.
      await ok(['dot', 'checkout', dot, 'exp', '--force']);
      expect(await readFile(`${m}/app.conf`, 'utf8')).toBe('port=80\n');
      expect(existsSync(`${m}/static/old.css`)).toBe(true);
      expect(existsSync(`${mdb}/extra.bin`)).toBe(false);
      await ok(['dot', 'checkout', dot, 'master']);
      expect(await readFile(`${m}/app.conf`, 'utf8')).toBe('port=8080\n');
      expect((await status(dot)).changes).toHaveLength(3);

      // reset --force drops them.
      await ok(['dot', 'reset', dot, '--hard', c1.slice(0, 12), '--force']);
      expect(await readFile(`${m}/app.conf`, 'utf8')).toBe('port=80\n');
      expect(existsSync(`${m}/static/old.css`)).toBe(true);
      expect(existsSync(`${mdb}/extra.bin`)).toBe(false);
      expect(await status(dot)).toMatchObject({ clean: true });
      // The dry-run checkout changed nothing, and no clone or mount of a commit is left open.
      if (driver === 'zfs') {
        const left = await execa('zfs', ['list', '-H', '-o', 'name', '-r', pool]);
        expect(left.stdout).not.toMatch(/knarr-peek\//);
      }
    });
  });
}
