import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync, statSync, rmSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

// Our kernels have no device-mapper: LVM runs as recording fake binaries that keep each volume's files in a folder.
const FAKE = new URL('../harness/fake-lvm/fake-lvm.mjs', import.meta.url).pathname;
const FAKED = [
  'pvcreate',
  'vgcreate',
  'lvcreate',
  'lvremove',
  'lvchange',
  'lvrename',
  'vgs',
  'lvs',
  'vgchange',
  'vgremove',
  'pvremove',
  'losetup',
  'mkfs.ext4',
  'mount',
  'umount',
  'findmnt',
];
const KNARR_BIN = new URL('../../bin/knarr', import.meta.url).pathname;
const run = integration('lvm push and pull (argv level)', haveTools('etcd', 'tar'), 'etcd or tar is not installed');

/** Every file under dir with its bytes, by relative path (folders as "DIR/"). */
function tree(dir: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(`${dir}/${rel}`, { withFileTypes: true })) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) Object.assign(out, { [`${path}/`]: '' }, tree(dir, path));
    else out[path] = readFileSync(`${dir}/${path}`).toString('base64');
  }
  return out;
}

describe.skipIf(!run)('dots on LVM pools pushed and pulled through tree streams', () => {
  let tmp: TempDir;
  let env: Record<string, string>;
  let base: string[];
  let remote: string;
  let dirPool: string;
  const k = (argv: string[]) => knarr([...base, ...argv], { env });
  const ok = async (...argv: string[]) => {
    const r = await k(argv);
    expect(r.code, `knarr ${argv.join(' ')}: ${r.stderr}`).toBe(0);
    return r;
  };
  const branch = (pool: string, dot: string) => `${tmp.path}/state/mnt/${pool}/knarr-dots/${dot}/master/__default__`;
  const lvs = async (vg: string) =>
    (await execa('lvs', ['--noheadings', '-o', 'lv_name', vg], { env: { ...process.env, ...env } })).stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .sort();
  const manifest = () => JSON.parse(readFileSync(`${remote}/app/manifest.json`, 'utf8'));
  const streamOf = (id: string) => {
    const name = readdirSync(`${remote}/app/streams`).find((n) => n.startsWith(id));
    return `${remote}/app/streams/${name}`;
  };
  let first = '';
  let second = '';

  beforeAll(async () => {
    tmp = await tempDir('knarr-lvmx-push-');
    const bin = `${tmp.path}/bin`;
    mkdirSync(bin);
    for (const t of FAKED) symlinkSync(FAKE, `${bin}/${t}`);
    writeFileSync(`${tmp.path}/argv.log`, '');
    env = { PATH: `${bin}:${process.env.PATH}`, FAKE_LVM_LOG: `${tmp.path}/argv.log`, FAKE_LVM_STATE: `${tmp.path}/lvm-state` };
    const config = `${tmp.path}/config.yaml`;
    writeFileSync(config, `etcdServer:\n  clientPort: ${await freePort()}\n  peerPort: ${await freePort()}\n`);
    base = ['--state-dir', `${tmp.path}/state`, '--config', config];
    remote = `${tmp.path}/remote`;
    dirPool = `${tmp.path}/dirpool`;
    mkdirSync(remote);
    for (const d of ['a', 'b']) await execa('truncate', ['-s', '256M', `${tmp.path}/${d}.img`]);
    await ok('pool', 'init', '--name', 'lvmxa', '--driver', 'lvm', '--device', `${tmp.path}/a.img`);
    await ok('etcd', 'up');
    await ok('pool', 'init', '--name', 'lvmxb', '--driver', 'lvm', '--device', `${tmp.path}/b.img`);
    await ok('pool', 'init', '--name', 'lvmxdir', '--driver', 'dir', '--path', dirPool);
  }, 180_000);
  afterAll(async () => {
    await k(['etcd', 'down']);
    await tmp?.cleanup();
  }, 180_000);

  it('pushes a dot from an lvm pool to a file remote and pulls it onto another lvm pool, bytes intact', async () => {
    await ok('dot', 'init', 'app', '--pool', 'lvmxa');
    const src = branch('lvmxa', 'app');
    mkdirSync(`${src}/db/base`, { recursive: true });
    writeFileSync(`${src}/db/base/big.bin`, randomBytes(4 * 1024 * 1024));
    writeFileSync(`${src}/small.txt`, 'version one\n');
    writeFileSync(`${src}/gone.txt`, 'removed by the second commit\n');
    symlinkSync('db/base/big.bin', `${src}/link`);
    first = (await ok('--json', 'dot', 'commit', 'app', '-m', 'one')).json().id;

    const push = await ok('--json', 'dot', 'push', 'app', `file://${remote}`);
    expect(push.json().sent).toEqual([expect.objectContaining({ id: first, incremental: false })]);
    expect(manifest().format).toBe('tar');
    // The commit's snapshot was mounted read-only to be read, and let go afterwards.
    const argv = readFileSync(`${tmp.path}/argv.log`, 'utf8');
    expect(argv).toContain(JSON.stringify(['mount', '-o', 'ro,noload', `/dev/lvmxa/kc.app.${first}`]).slice(0, -1));
    expect(existsSync(`${tmp.path}/state/mnt/lvmxa/knarr-dots/app/.knarr/send`)).toBe(true);
    expect(readdirSync(`${tmp.path}/state/mnt/lvmxa/knarr-dots/app/.knarr/send`)).toEqual([]);

    const pull = await ok('--json', 'dot', 'pull', `file://${remote}/app`, '--as', 'app2', '--pool', 'lvmxb');
    expect(pull.json().received).toEqual([first]);
    expect(tree(branch('lvmxb', 'app2'))).toEqual(tree(src));
    expect(await lvs('lvmxb')).toEqual(expect.arrayContaining([`kc.app2.${first}`, 'kd.app2.master']));
    // Nothing of the receive is left behind: no scratch volume, no staged branch.
    expect((await lvs('lvmxb')).filter((n) => /^k[ri]\./.test(n))).toEqual([]);
  }, 180_000);

  it('an incremental push after changing one file and removing one sends only that file', async () => {
    const src = branch('lvmxa', 'app');
    writeFileSync(`${src}/small.txt`, 'version two, longer\n');
    rmSync(`${src}/gone.txt`);
    second = (await ok('--json', 'dot', 'commit', 'app', '-m', 'two')).json().id;
    const push = await ok('--json', 'dot', 'push', 'app', `file://${remote}`);
    expect(push.json().sent).toEqual([expect.objectContaining({ id: second, incremental: true })]);

    const entry = manifest().commits[second];
    expect(entry.base).toBe(first);
    // 4 MiB sit unchanged in the volume: the stream holds the one changed file, the removed path and tar's headers.
    expect(entry.bytes).toBeLessThan(64 * 1024);
    expect(statSync(streamOf(second)).size).toBe(entry.bytes);
    const members = (await execa('tar', ['-tf', streamOf(second)])).stdout.split('\n');
    expect(members[0]).toBe('.knarr-delta');
    expect(members).toContain('./__default__/small.txt');
    expect(members.some((m) => m.includes('big.bin') || m.includes('gone.txt'))).toBe(false);
    const delta = JSON.parse((await execa('tar', ['-xOf', streamOf(second), '.knarr-delta'])).stdout);
    expect(delta).toEqual({ version: 1, base: first, removed: ['__default__/gone.txt'] });

    // Onto the lvm pool that has the first commit: the base's snapshot, the change applied, the removed file gone.
    const pull = await ok('--json', 'dot', 'pull', `file://${remote}/app`, '--as', 'app2');
    expect(pull.json()).toMatchObject({ action: 'fast-forward', received: [second] });
    const got = tree(branch('lvmxb', 'app2'));
    expect(got).toEqual(tree(src));
    expect(got['gone.txt']).toBeUndefined();
    expect(Buffer.from(got['small.txt']!, 'base64').toString()).toBe('version two, longer\n');
    expect((await lvs('lvmxb')).filter((n) => n.startsWith('kc.app2.'))).toEqual([`kc.app2.${first}`, `kc.app2.${second}`].sort());
  }, 180_000);

  it('--dry-run push prints the snapshot mounts and the tar, and changes nothing', async () => {
    const empty = `${tmp.path}/remote-dry`;
    mkdirSync(empty);
    const before = readFileSync(`${tmp.path}/argv.log`, 'utf8').length;
    const r = await ok('--dry-run', 'dot', 'push', 'app', `file://${empty}`);
    expect(r.stdout).toContain(`mount -o ro,noload /dev/lvmxa/kc.app.${second}`);
    expect(r.stdout).toMatch(/tar -cf - -C \S+ \.knarr-delta/);
    expect(readdirSync(empty)).toEqual([]);
    const ran = readFileSync(`${tmp.path}/argv.log`, 'utf8').slice(before).trim().split('\n').filter(Boolean);
    expect(ran.map((l) => JSON.parse(l)[0]).filter((t) => !['vgs', 'lvs', 'findmnt', 'losetup'].includes(t))).toEqual([]);
  }, 180_000);

  it('a dir pool pulls the same streams, full and incremental', async () => {
    await ok('dot', 'pull', `file://${remote}/app`, '--as', 'app3', '--pool', 'lvmxdir');
    const got = `${dirPool}/knarr-dots/app3/master/__default__`;
    expect(tree(got)).toEqual(tree(branch('lvmxa', 'app')));
    expect(existsSync(`${got}/gone.txt`)).toBe(false);
    // Its first commit is as the first stream left it.
    expect(readFileSync(`${dirPool}/knarr-dots/app3/.commits/${first}/__default__/gone.txt`, 'utf8')).toBe('removed by the second commit\n');
  }, 180_000);

  it('a dot pushed from a dir pool is pulled onto an lvm pool', async () => {
    await ok('dot', 'init', 'plain', '--pool', 'lvmxdir');
    const src = `${dirPool}/knarr-dots/plain/master/__default__`;
    writeFileSync(`${src}/data.bin`, randomBytes(100_000));
    await ok('dot', 'commit', 'plain', '-m', 'one');
    await ok('dot', 'push', 'plain', `file://${remote}`);
    await ok('dot', 'pull', `file://${remote}/plain`, '--as', 'plain2', '--pool', 'lvmxb');
    expect(tree(branch('lvmxb', 'plain2'))).toEqual(tree(src));
  }, 180_000);

  it('dot send and dot receive (the ssh plumbing) move an incremental commit; a cut one is refused with nothing recorded', async () => {
    const src = branch('lvmxa', 'app');
    writeFileSync(`${src}/db/base/added.bin`, randomBytes(300_000));
    const third = (await ok('--json', 'dot', 'commit', 'app', '-m', 'three')).json();
    const knarrBin = (argv: string[], input?: Buffer) =>
      execa(KNARR_BIN, [...base, ...argv], { env: { ...process.env, ...env }, encoding: 'buffer', reject: false, ...(input ? { input } : {}) });
    const sent = await knarrBin(['dot', 'send', 'app', third.id, '--base', second]);
    expect(sent.exitCode, Buffer.from(sent.stderr).toString()).toBe(0);
    const stream = Buffer.from(sent.stdout);
    expect(stream.length).toBeGreaterThan(300_000);
    expect(stream.length).toBeLessThan(400_000);
    const receive = ['dot', 'receive', 'app2', '--branch', 'master', '--base', second, '--record', JSON.stringify(third)];

    const cut = await knarrBin(receive, stream.subarray(0, stream.length - 20_000));
    expect(cut.exitCode).not.toBe(0);
    expect((await ok('--json', 'dot', 'log', 'app2')).json()[0].id).toBe(second);
    expect((await lvs('lvmxb')).filter((n) => n.includes(third.id))).toEqual([]);
    expect(existsSync(`${branch('lvmxb', 'app2')}/db/base/added.bin`)).toBe(false);

    const whole = await knarrBin(receive, stream);
    expect(whole.exitCode, Buffer.from(whole.stderr).toString()).toBe(0);
    expect((await ok('--json', 'dot', 'log', 'app2')).json()[0].id).toBe(third.id);
    expect(tree(branch('lvmxb', 'app2'))).toEqual(tree(src));
  }, 180_000);

  it('a cut stream is refused and leaves no dot and no volume behind', async () => {
    const stream = streamOf(second);
    truncateSync(stream, statSync(stream).size - 700);
    const pull = await k(['dot', 'pull', `file://${remote}/app`, '--as', 'app4', '--pool', 'lvmxb']);
    expect(pull.code).not.toBe(0);
    expect(pull.stderr).toMatch(/damaged|truncated|cut|bytes/);
    expect((await k(['--json', 'dot', 'list'])).json().map((d: { name: string }) => d.name)).not.toContain('app4');
    expect((await lvs('lvmxb')).filter((n) => n.includes('.app4.'))).toEqual([]);
    expect(existsSync(`${tmp.path}/state/mnt/lvmxb/knarr-incoming/app4`)).toBe(false);
  }, 180_000);
  it('fsck --repair removes the volume of a receive cut short', async () => {
    const id = 'c0000000000000lvmx';
    await execa('lvcreate', ['-y', '-V', '10G', '-T', 'lvmxb/knarr-thin', '-n', `kr.app2.${id}`], { env: { ...process.env, ...env } });
    const found = await k(['--json', 'dot', 'fsck']);
    expect(found.code).toBe(1);
    expect(found.stdout).toContain(`lvmxb/kr.app2.${id}`);
    await k(['dot', 'fsck', '--repair']);
    expect(await lvs('lvmxb')).not.toContain(`kr.app2.${id}`);
  }, 180_000);
  it('a pull onto diverged local commits keeps them on a stash branch (renamed volume) and takes the remote line', async () => {
    writeFileSync(`${branch('lvmxb', 'app2')}/local.txt`, 'only here');
    await ok('dot', 'commit', 'app2', '-m', 'local');
    writeFileSync(`${branch('lvmxa', 'app')}/small.txt`, 'version four\n');
    await ok('dot', 'commit', 'app', '-m', 'four');
    const push = await ok('--json', 'dot', 'push', 'app', `file://${remote}`);
    expect(push.json().sent.map((x: { incremental: boolean }) => x.incremental)).toEqual([true, true]);
    const pull = await ok('--json', 'dot', 'pull', `file://${remote}/app`, '--as', 'app2', '--stash-on-divergence');
    const stash = pull.json().stash;
    expect(stash).toMatch(/^master-stash-/);
    expect(tree(branch('lvmxb', 'app2'))).toEqual(tree(branch('lvmxa', 'app')));
    expect(await lvs('lvmxb')).toContain(`kd.app2.${stash}`);
    expect(readFileSync(`${tmp.path}/state/mnt/lvmxb/knarr-dots/app2/${stash}/__default__/local.txt`, 'utf8')).toBe('only here');
  }, 180_000);
  it('rm of a dot whose push was killed mid-send lets go of the snapshot it left mounted', async () => {
    const fake = (argv: string[]) => execa(argv[0]!, argv.slice(1), { env: { ...process.env, ...env } });
    const send = `${tmp.path}/state/mnt/lvmxa/knarr-dots/app/.knarr/send/${first}.99999999/tree`;
    mkdirSync(send, { recursive: true });
    await fake(['lvchange', '-ay', '-K', `lvmxa/kc.app.${first}`]);
    await fake(['mount', '-o', 'ro,noload', `/dev/lvmxa/kc.app.${first}`, send]);
    await ok('dot', 'rm', 'app');
    expect((await lvs('lvmxa')).filter((n) => n.includes('.app.'))).toEqual([]);
    expect(existsSync(`${tmp.path}/state/mnt/lvmxa/knarr-dots/app`)).toBe(false);
  }, 180_000);
});
