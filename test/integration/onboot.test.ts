import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { kernelMounts } from '../harness/mounts.js';
import { makeHost, type TestHost } from '../harness/hosts.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';

const run = integration('onboot', (await zfsAnswers()) && haveTools('etcd'), 'zpool does not answer or etcd is missing');
const mounted = (path: string) => kernelMounts().some((m) => m.target === path);

describe.skipIf(!run)('knarr onboot (the dm-linuxkit flow) on zfs', () => {
  let tmp: TempDir;
  let seedHost: TestHost;
  let state: string;
  let config: string;
  let devices: string;
  let pool: string;
  let seed: string;
  const boot = (extra: string[]) => knarr(['--json', '--state-dir', state, '--config', config, 'onboot', '--storage-device', devices, '--pool', pool, ...extra]);

  beforeAll(async () => {
    tmp = await tempDir('knarr-onboot-');
    // The seed: a dot with two subdots pushed to a file remote from another host.
    seedHost = await makeHost(tmp.path, 'zfs', 'seed');
    for (const d of ['myapp', 'myapp.postgres', 'myapp.redis']) expect((await seedHost.run(['dot', 'init', d])).code).toBe(0);
    writeFileSync(`${seedHost.dotPath('myapp', 'master', 'postgres')}/PG_VERSION`, '15\n');
    writeFileSync(`${seedHost.dotPath('myapp', 'master', 'redis')}/dump.rdb`, 'REDIS0011');
    expect((await seedHost.run(['dot', 'commit', 'myapp', '-m', 'seed'])).code).toBe(0);
    seed = `${tmp.path}/hub`;
    mkdirSync(seed);
    expect((await seedHost.run(['dot', 'push', 'myapp', `file://${seed}`])).code).toBe(0);

    state = `${tmp.path}/host`;
    config = `${tmp.path}/host.yaml`;
    writeFileSync(config, `etcdServer:\n  clientPort: ${await freePort()}\n  peerPort: ${await freePort()}\n`);
    const devs = [`${tmp.path}/nvme0.img`, `${tmp.path}/nvme1.img`];
    for (const d of devs) await execa('truncate', ['-s', '256M', d]);
    devices = devs.join(',');
    pool = uniqueName('kboot');
  });
  afterAll(async () => {
    for (const m of [`${tmp.path}/pg`, `${tmp.path}/redis`, `${tmp.path}/other`]) await execa('umount', ['-l', m], { reject: false });
    await knarr(['--state-dir', state, '--config', config, 'etcd', 'down']);
    await destroyPoolQuietly(pool);
    await seedHost?.teardown();
    await tmp?.cleanup();
  });

  it('first boot: creates the pool, pulls the seed, mounts the subdot, stops etcd', async () => {
    const r = await boot(['--dot', 'myapp.postgres', '--seed', `file://${seed}/myapp`, '--mountpoint', `${tmp.path}/pg`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ pool, poolAction: 'created', dotAction: 'pulled', daemon: false });
    expect(mounted(`${tmp.path}/pg`)).toBe(true);
    expect(readFileSync(`${tmp.path}/pg/PG_VERSION`, 'utf8')).toBe('15\n');
    const etcd = await knarr(['--json', '--state-dir', state, '--config', config, 'etcd', 'status']);
    expect(etcd.json().running).toBe(false);
    expect((await execa('zfs', ['list', '-H', '-o', 'name', `${pool}/knarr-etcd`])).stdout).toBe(`${pool}/knarr-etcd`);
  });

  it('second subdot of the same seed: the seed is a no-op, the subdot is mounted', async () => {
    const r = await boot(['--dot', 'myapp.redis', '--seed', `file://${seed}/myapp`, '--mountpoint', `${tmp.path}/redis`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().dotAction).toBe('kept');
    expect(readFileSync(`${tmp.path}/redis/dump.rdb`, 'utf8')).toBe('REDIS0011');
    expect(existsSync(`${tmp.path}/redis/PG_VERSION`)).toBe(false);
  });

  it('reboot: data written after the first boot survives, the seed never overwrites it', async () => {
    writeFileSync(`${tmp.path}/pg/written-after-boot`, 'precious');
    // A reboot: mounts gone, pool exported.
    await execa('umount', [`${tmp.path}/pg`]);
    await execa('umount', [`${tmp.path}/redis`]);
    await execa('zpool', ['export', pool]);
    const r = await boot(['--dot', 'myapp.postgres', '--seed', `file://${seed}/myapp`, '--mountpoint', `${tmp.path}/pg`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ poolAction: 'imported', dotAction: 'kept' });
    expect(readFileSync(`${tmp.path}/pg/written-after-boot`, 'utf8')).toBe('precious');
    const again = await boot(['--dot', 'myapp.postgres', '--seed', `file://${seed}/myapp`, '--mountpoint', `${tmp.path}/pg`]);
    expect(again.code).toBe(0);
    expect(again.json()).toMatchObject({ poolAction: 'exists', dotAction: 'kept' });
  });

  it('separate dots: a dot with no seed is created empty', async () => {
    const r = await boot(['--dot', 'other', '--mountpoint', `${tmp.path}/other`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().dotAction).toBe('created');
    expect(mounted(`${tmp.path}/other`)).toBe(true);
  });

  it('a seed that does not exist fails the seed step (exit 13) and creates no dot', async () => {
    const r = await boot(['--dot', 'ghost', '--seed', `file://${seed}/ghost`, '--mountpoint', `${tmp.path}/ghost`]);
    expect(r.code).toBe(13);
    expect(JSON.parse(r.stderr.trim().split('\n').pop()!).error.message).toMatch(/^onboot step "seed" failed: remote .* has no dot ghost/);
    const list = await knarr(['--json', '--state-dir', state, '--config', config, 'dot', 'list']);
    expect(list.json().map((d: { name: string }) => d.name)).not.toContain('ghost');
    await knarr(['--state-dir', state, '--config', config, 'etcd', 'down']);
  });

  it('--dry-run shows the boot as the host stands, and changes nothing', async () => {
    const datasets = async () => (await execa('zfs', ['list', '-H', '-o', 'name', '-r', pool])).stdout;
    const before = await datasets();
    const again = await knarr(['--dry-run', '--state-dir', state, '--config', config, 'onboot', '--storage-device', devices, '--pool', pool, '--dot', 'myapp.postgres', '--seed', `file://${seed}/myapp`, '--mountpoint', `${tmp.path}/pg2`]);
    expect(again.code, again.stderr).toBe(0);
    const lines = again.stdout.trimEnd().split('\n');
    // The pool is there: etcd would start on it; the dot's fate waits for etcd.
    expect(lines).toContainEqual(expect.stringMatching(/^etcd --name knarr --data-dir .*\/knarr-etcd /));
    expect(lines).toContain(`# dot myapp.postgres: kept if the pool has it, else pulled from file://${seed}/myapp (decided once etcd runs on the pool)`);
    expect(lines.at(-1)).toBe('# etcd down');
    expect((await knarr(['--json', '--state-dir', state, '--config', config, 'etcd', 'status'])).json().running).toBe(false);
    expect(await datasets()).toBe(before);
    expect(existsSync(`${tmp.path}/pg2`)).toBe(false);

    // A new host: the pool would be made; nothing after it can be known yet.
    const fresh = `${tmp.path}/fresh`;
    mkdirSync(fresh);
    await execa('truncate', ['-s', '256M', `${fresh}/d.img`]);
    const first = await knarr(['--dry-run', '--state-dir', `${fresh}/state`, 'onboot', '--storage-device', `${fresh}/d.img`, '--pool', uniqueName('kdry'), '--dot', 'app', '--mountpoint', `${fresh}/app`]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.split('\n')[0]).toMatch(/^zpool create -m .* \S+\/d\.img$/);
    expect(first.stdout).toMatch(/^# etcd up --pool kdry\S+: once the pool is there$/m);
    expect(first.stdout).toMatch(/^# dot app: kept if the pool has it, else created/m);
    expect(existsSync(`${fresh}/state`)).toBe(false);
  });

  it('bad input is refused before anything runs', async () => {
    const noDevice = await knarr(['--state-dir', state, '--config', config, 'onboot', '--dot', 'x', '--mountpoint', '/x']);
    expect(noDevice.code).toBe(2);
    expect(noDevice.stderr).toMatch(/^knarr: --storage-device: /);
    const badDot = await boot(['--dot', 'my app', '--mountpoint', `${tmp.path}/x`]);
    expect(badDot.code).toBe(2);
    const mismatch = await boot(['--dot', 'a', '--seed', `file://${seed}/b`, '--mountpoint', `${tmp.path}/x`]);
    expect(mismatch.code).toBe(2);
    expect(existsSync(`${tmp.path}/x`)).toBe(false);
  });
});
