import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError } from '../../src/core/errors.js';
import type { DotRecord } from '../../src/core/dots.js';
import { DotRepo } from '../../src/state/dots.js';
import { connectEtcd } from '../../src/state/store.js';
import { startEtcd } from '../harness/etcd.js';
import { makeHost, type TestHost } from '../harness/hosts.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { zfsAnswers } from '../harness/zfs.js';

const bin = new URL('../../bin/knarr', import.meta.url).pathname;
const ready = integration('dot concurrency', (await zfsAnswers()) && haveTools('etcd'), 'zpool does not answer or etcd is missing');
const ROUNDS = 20;

/** bin/knarr as its own process against a test host, as two shells would run it. */
const spawn = (h: TestHost, argv: string[]) => execa(bin, [...h.binArgs, ...argv], { reject: false, env: { KNARR_CONFIG: undefined, CI: 'true' } });

describe.skipIf(!ready)('two commands at once on one dot, and two pushes at once to one file:// remote', () => {
  let tmp: TempDir;
  let a: TestHost;
  let b: TestHost;
  beforeAll(async () => {
    tmp = await tempDir('knarr-conc-');
    a = await makeHost(tmp.path, 'zfs', 'a');
    b = await makeHost(tmp.path, 'zfs', 'b');
  });
  afterAll(async () => {
    await a?.teardown();
    await b?.teardown();
    await tmp?.cleanup();
  });

  it(`${ROUNDS} rounds of two concurrent commits: every commit is in the log, the head is the newest, fsck is clean`, async () => {
    const dot = uniqueName('cc');
    expect((await a.run(['dot', 'init', dot])).code).toBe(0);
    for (let round = 0; round < ROUNDS; round++) {
      writeFileSync(`${a.dotPath(dot)}/f`, String(round));
      const [x, y] = await Promise.all([
        spawn(a, ['--json', 'dot', 'commit', dot, '-m', `A${round}`]),
        spawn(a, ['--json', 'dot', 'commit', dot, '-m', `B${round}`]),
      ]);
      expect(x.exitCode, x.stderr).toBe(0);
      expect(y.exitCode, y.stderr).toBe(0);
      const log = (await a.run(['--json', 'dot', 'log', dot])).json() as { id: string; parent: string | null; message: string }[];
      expect(log).toHaveLength(2 * (round + 1));
      expect(
        log
          .slice(0, 2)
          .map((c) => c.message)
          .sort(),
      ).toEqual([`A${round}`, `B${round}`]);
      const show = (await a.run(['--json', 'dot', 'show', dot])).json();
      const newest = [JSON.parse(x.stdout), JSON.parse(y.stdout)].sort((p, q) => q.id.localeCompare(p.id))[0];
      expect(show.branches.master.head).toBe(log[0]!.id);
      // One after the other: the later one's parent is the earlier one.
      expect(log[0]!.parent).toBe(log[1]!.id);
      expect(newest.parent === null || log.some((c) => c.id === newest.parent)).toBe(true);
    }
    const fsck = await a.run(['--json', 'dot', 'fsck']);
    expect(fsck.code, fsck.stdout).toBe(0);
  }, 240_000);

  it('a dot held by another command: --no-wait fails at once (exit 4); without it the command waits, says so, and ' +
    'goes on when the holder is gone', async () => {
    const dot = uniqueName('cw');
    expect((await a.run(['dot', 'init', dot])).code).toBe(0);
    // A live knarr-looking process holds the dot's lock.
    const holder = execa('node', ['-e', 'setTimeout(() => {}, 60000)', 'knarr'], { reject: false });
    const lock = `${a.state}/locks/dots/${dot}.lock`;
    mkdirSync(`${a.state}/locks/dots`, { recursive: true });
    writeFileSync(lock, `${holder.pid}\n\ndot commit\n`);
    try {
      const t0 = Date.now();
      const refused = await spawn(a, ['--no-wait', 'dot', 'commit', dot, '-m', 'x']);
      expect(refused.exitCode, refused.stderr).toBe(4);
      expect(refused.stderr).toMatch(new RegExp(`dot ${dot} is in use by dot commit \\(pid ${holder.pid}`));
      expect(Date.now() - t0).toBeLessThan(10_000);
      const env = await execa(bin, [...a.binArgs, 'dot', 'commit', dot, '-m', 'x'], { reject: false, env: { KNARR_WAIT: '0' } });
      expect(env.exitCode).toBe(4);

      const waiting = spawn(a, ['--json', 'dot', 'commit', dot, '-m', 'waited']);
      let err = '';
      waiting.stderr!.on('data', (c: Buffer) => (err += c.toString()));
      const deadline = Date.now() + 20_000;
      while (!/waiting for it/.test(err) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(err).toMatch(/in use by dot commit .*waiting for it/);
      holder.kill('SIGKILL');
      const done = await waiting;
      expect(done.exitCode, done.stderr).toBe(0);
      expect(JSON.parse(done.stdout).message).toBe('waited');
    } finally {
      holder.kill('SIGKILL');
      await holder;
    }
  }, 120_000);

  it(`${ROUNDS} rounds of two hosts with a shared history pushing at once to one file:// remote: no commit lost, the second is refused as ` +
    `diverged, never an internal error`, async () => {
    const dot = uniqueName('cp');
    const remote = `${tmp.path}/remote-${dot}`;
    mkdirSync(remote);
    const url = `file://${remote}`;
    expect((await a.run(['dot', 'init', dot])).code).toBe(0);
    expect((await a.run(['dot', 'commit', dot, '-m', 'base'])).code).toBe(0);
    expect((await a.run(['dot', 'push', dot, url])).code).toBe(0);
    const seeded = await b.run(['dot', 'pull', `${url}/${dot}`]);
    expect(seeded.code, seeded.stderr).toBe(0);
    const hosts = [a, b];
    for (let round = 0; round < ROUNDS; round++) {
      const ids: string[] = [];
      for (const h of hosts) {
        writeFileSync(`${h.dotPath(dot)}/f`, `${h.state} ${round}`);
        const c = await h.run(['--json', 'dot', 'commit', dot, '-m', `${h === a ? 'a' : 'b'}${round}`]);
        expect(c.code, c.stderr).toBe(0);
        ids.push(c.json().id);
      }
      const pushes = await Promise.all(hosts.map((h) => spawn(h, ['--json', 'dot', 'push', dot, url])));
      for (const p of pushes) expect(p.stderr).not.toMatch(/internal error/);
      const codes = pushes.map((p) => p.exitCode).sort();
      // Both made a commit on the same parent: one lands, the other is told it diverged.
      expect(codes, pushes.map((p) => p.stderr).join('\n')).toEqual([0, 4]);
      const winner = pushes.findIndex((p) => p.exitCode === 0);
      const loser = 1 - winner;
      expect(pushes[loser]!.stderr).toMatch(/has commits of .* this host lacks/);
      const manifest = JSON.parse(readFileSync(`${remote}/${dot}/manifest.json`, 'utf8'));
      const line: string[] = manifest.branches.master.commits;
      expect(line[line.length - 1]).toBe(ids[winner]);
      expect(line).not.toContain(ids[loser]);
      // The loser takes the remote's line (keeping its commit on a stash branch): the hosts share a history again.
      const back = await hosts[loser]!.run(['--json', 'dot', 'pull', `${url}/${dot}`, '--stash-on-divergence']);
      expect(back.code, back.stderr).toBe(0);
      expect(back.json().stash).toMatch(/^master-stash-/);
    }
    const manifest = JSON.parse(readFileSync(`${remote}/${dot}/manifest.json`, 'utf8'));
    expect(manifest.branches.master.commits).toHaveLength(ROUNDS + 1);
    // What the remote holds pulls whole on a fresh name.
    const fresh = await a.run(['--json', 'dot', 'pull', `${url}/${dot}`, '--as', `${dot}x`]);
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.json().received).toHaveLength(ROUNDS + 1);
  }, 300_000);

  it('two hosts pushing the same history at once: both exit 0, one sends, the other finds it there', async () => {
    const dot = uniqueName('cs');
    expect((await a.run(['dot', 'init', dot])).code).toBe(0);
    const shared = `${tmp.path}/shared-${dot}`;
    mkdirSync(shared);
    for (let round = 0; round < 7; round++) {
      writeFileSync(`${a.dotPath(dot)}/f`, String(round));
      expect((await a.run(['dot', 'commit', dot, '-m', `r${round}`])).code).toBe(0);
      expect((await a.run(['dot', 'push', dot, `file://${shared}`])).code).toBe(0);
      const got = await b.run(['dot', 'pull', `file://${shared}/${dot}`]);
      expect(got.code, got.stderr).toBe(0);
      const remote = `${tmp.path}/same-${dot}-${round}`;
      mkdirSync(remote);
      const pushes = await Promise.all([a, b].map((h) => spawn(h, ['--json', 'dot', 'push', dot, `file://${remote}`])));
      for (const p of pushes) expect(p.exitCode, p.stderr).toBe(0);
      expect(pushes.map((p) => JSON.parse(p.stdout).action).sort()).toEqual(['pushed', 'up-to-date']);
      const manifest = JSON.parse(readFileSync(`${remote}/${dot}/manifest.json`, 'utf8'));
      expect(manifest.branches.master.commits).toHaveLength(round + 1);
    }
  }, 240_000);

  it('a push lock left by a dead pusher on this machine is broken at once; one from another host only when stale', async () => {
    const dot = uniqueName('cl');
    const remote = `${tmp.path}/locked-${dot}`;
    mkdirSync(`${remote}/${dot}`, { recursive: true });
    expect((await a.run(['dot', 'init', dot])).code).toBe(0);
    expect((await a.run(['dot', 'commit', dot, '-m', 'one'])).code).toBe(0);
    const lock = `${remote}/${dot}/manifest.lock`;
    const child = execa('true');
    const dead = child.pid!;
    await child;
    writeFileSync(lock, `${dead}\n${(await execa('hostname')).stdout.trim()}\ndot push\n`);
    const broke = await spawn(a, ['--no-wait', 'dot', 'push', dot, `file://${remote}`]);
    expect(broke.exitCode, broke.stderr).toBe(0);

    expect((await a.run(['dot', 'commit', dot, '-m', 'two'])).code).toBe(0);
    writeFileSync(lock, `1234\nsome-other-host\ndot push\n`);
    const held = await spawn(a, ['--no-wait', 'dot', 'push', dot, `file://${remote}`]);
    expect(held.exitCode).toBe(4);
    expect(held.stderr).toMatch(/is taking a push of .*pid 1234 on some-other-host/);
    // Untouched for longer than the stale age: its host is gone.
    const old = new Date(Date.now() - 120_000);
    const { utimesSync } = await import('node:fs');
    utimesSync(lock, old, old);
    const after = await spawn(a, ['--json', '--no-wait', 'dot', 'push', dot, `file://${remote}`]);
    expect(after.exitCode, after.stderr).toBe(0);
    expect(JSON.parse(after.stdout).sent).toHaveLength(1);
  }, 120_000);

  it('an empty or root file:// remote is refused before anything is written', async () => {
    for (const url of ['file://', 'file:///']) {
      const add = await a.run(['dot', 'remote', 'add', 'root', url]);
      expect(add.code).toBe(2);
      expect(add.stderr).toMatch(/names no directory/);
    }
    const dot = uniqueName('cr');
    expect((await a.run(['dot', 'init', dot])).code).toBe(0);
    expect((await a.run(['dot', 'commit', dot, '-m', 'x'])).code).toBe(0);
    const push = await a.run(['dot', 'push', dot, 'file://']);
    expect(push.code).toBe(2);
    expect((await execa('test', ['-e', `/${dot}`], { reject: false })).exitCode).toBe(1);
  }, 60_000);
});

const btrfsReady = integration(
  'dot concurrency on btrfs',
  haveTools('mkfs.btrfs', 'btrfs', 'etcd') && readFileSync('/proc/filesystems', 'utf8').includes('btrfs') && existsSync('/dev/loop-control'),
  'btrfs-progs, kernel btrfs, loop devices or etcd missing',
);

describe.skipIf(!btrfsReady)('two commits at once on a btrfs dot', () => {
  let tmp: TempDir;
  let c: TestHost;
  beforeAll(async () => {
    tmp = await tempDir('knarr-conc-btrfs-');
    c = await makeHost(tmp.path, 'btrfs', 'c');
  });
  afterAll(async () => {
    await c?.teardown();
    await tmp?.cleanup();
  });

  it(`${ROUNDS} rounds: every commit is in the log with its record and snapshot, one line of parents`, async () => {
    const dot = uniqueName('cb');
    expect((await c.run(['dot', 'init', dot])).code).toBe(0);
    for (let round = 0; round < ROUNDS; round++) {
      writeFileSync(`${c.dotPath(dot)}/f`, String(round));
      const both = await Promise.all(['A', 'B'].map((m) => spawn(c, ['dot', 'commit', dot, '-m', `${m}${round}`])));
      for (const r of both) expect(r.exitCode, r.stderr).toBe(0);
    }
    const log = (await c.run(['--json', 'dot', 'log', dot])).json() as { id: string; parent: string | null }[];
    expect(log).toHaveLength(2 * ROUNDS);
    for (let i = 0; i + 1 < log.length; i++) expect(log[i]!.parent).toBe(log[i + 1]!.id);
    const dir = `${c.mountpoint}/knarr-dots/${dot}`;
    expect(readdirSync(`${dir}/.commits`).sort()).toEqual(log.map((x) => x.id).sort());
    expect(readdirSync(`${dir}/.knarr/commits`).sort()).toEqual(log.map((x) => `${x.id}.json`).sort());
    expect((await c.run(['dot', 'fsck'])).code).toBe(0);
  }, 180_000);
});

const etcdReady = integration('dot records under compare-and-swap', haveTools('etcd'), 'etcd is not installed');

describe.skipIf(!etcdReady)('dot records under compare-and-swap, with no lock to help', () => {
  it('two head moves from the same head: one lands, the other is told; changes of other fields are merged, never lost', async () => {
    const etcd = await startEtcd();
    const store = await connectEtcd([etcd.url]);
    try {
      const repo = new DotRepo(store, 'casfleet', 'h1', false);
      const now = new Date().toISOString();
      const dot: DotRecord = {
        name: 'd',
        pool: 'p',
        subdots: ['__default__'],
        branches: { master: { head: null, from: null, createdAt: now } },
        activeBranch: 'master',
        mounts: {},
        origin: null,
        createdAt: now,
      };
      expect(await repo.create(dot)).toBe(true);
      for (let round = 0; round < 10; round++) {
        const from = (await repo.get('d'))!.branches.master!.head;
        const moves = await Promise.allSettled([`a${round}`, `b${round}`].map((to) => repo.moveHead('d', 'master', from, to)));
        expect(moves.filter((m) => m.status === 'fulfilled')).toHaveLength(1);
        const lost = moves.find((m) => m.status === 'rejected') as PromiseRejectedResult;
        expect(lost.reason).toBeInstanceOf(ConflictError);
        const won = (moves.find((m) => m.status === 'fulfilled') as PromiseFulfilledResult<DotRecord>).value.branches.master!.head;
        expect((await repo.get('d'))!.branches.master!.head).toBe(won);
      }
      const head = (await repo.get('d'))!.branches.master!.head;
      await Promise.all([
        ...Array.from({ length: 6 }, (_, i) => repo.update('d', (cur) => ({ ...cur, mounts: { ...cur.mounts, [`s${i}`]: `/m${i}` } }))),
        repo.moveHead('d', 'master', head, 'last'),
      ]);
      const end = (await repo.get('d'))!;
      expect(Object.keys(end.mounts).sort()).toEqual(['s0', 's1', 's2', 's3', 's4', 's5']);
      expect(end.branches.master!.head).toBe('last');
    } finally {
      await store.close();
      await etcd.stop();
    }
  }, 60_000);
});
