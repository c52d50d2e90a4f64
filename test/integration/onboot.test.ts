import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { eventually } from '../harness/eventually.js';
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
  const boot = (extra: string[]) =>
    knarr(['--json', '--state-dir', state, '--config', config, 'onboot', '--storage-device', devices, '--pool', pool, ...extra]);

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
    const again = await knarr([
      '--dry-run',
      '--state-dir',
      state,
      '--config',
      config,
      'onboot',
      '--storage-device',
      devices,
      '--pool',
      pool,
      '--dot',
      'myapp.postgres',
      '--seed',
      `file://${seed}/myapp`,
      '--mountpoint',
      `${tmp.path}/pg2`,
    ]);
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
    const first = await knarr([
      '--dry-run',
      '--state-dir',
      `${fresh}/state`,
      'onboot',
      '--storage-device',
      `${fresh}/d.img`,
      '--pool',
      uniqueName('kdry'),
      '--dot',
      'app',
      '--mountpoint',
      `${fresh}/app`,
    ]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.split('\n')[0]).toMatch(/^zpool create -m .* \S+\/d\.img$/);
    expect(first.stdout).toMatch(/^# etcd up --pool kdry\S+: once the pool is there$/m);
    expect(first.stdout).toMatch(/^# dot app: kept if the pool has it, else created/m);
    // The service form: pool and etcd, then it runs.
    const service = await knarr([
      '--dry-run',
      '--state-dir',
      `${fresh}/state`,
      'onboot',
      '--zpool-device',
      `${fresh}/d.img`,
      '--pool',
      uniqueName('kdry'),
      '--daemon',
    ]);
    expect(service.code, service.stderr).toBe(0);
    expect(service.stdout.trimEnd().split('\n').at(-1)).toBe('# run until SIGTERM, then etcd down');
    expect(service.stdout).not.toMatch(/^# (dot|mount) /m);
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

describe.skipIf(!run)('knarr onboot --daemon, a real process', () => {
  const bin = new URL('../../bin/knarr', import.meta.url).pathname;
  let tmp: TempDir;
  let state: string;
  let config: string;
  let img: string;
  let pool: string;
  let agentPort: number;
  let child: ResultPromise | null = null;
  const k = (argv: string[]) => knarr(['--json', '--state-dir', state, '--config', config, ...argv]);
  const etcdState = async () => (await k(['etcd', 'status'])).json();
  // A process that has exited but is not reaped yet (a zombie) answers kill 0: it counts as gone.
  const alive = (pid: number) => {
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  const start = (argv: string[]) => {
    const p = execa(bin, ['--state-dir', state, '--config', config, 'onboot', '--pool', pool, ...argv], {
      reject: false,
      env: { KNARR_ETCD: undefined, KNARR_CONFIG: undefined },
    });
    child = p;
    return p;
  };

  beforeAll(async () => {
    tmp = await tempDir('knarr-onboot-daemon-');
    state = `${tmp.path}/state`;
    config = `${tmp.path}/host.yaml`;
    agentPort = await freePort();
    writeFileSync(config, `etcdServer:\n  clientPort: ${await freePort()}\n  peerPort: ${await freePort()}\n`);
    img = `${tmp.path}/disk.img`;
    await execa('truncate', ['-s', '256M', img]);
    pool = uniqueName('kdmn');
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await child;
    await execa('umount', ['-l', `${tmp.path}/app`], { reject: false });
    await knarr(['--state-dir', state, '--config', config, 'etcd', 'down']);
    await destroyPoolQuietly(pool);
    await tmp?.cleanup();
  });

  it('the service form (--zpool-device, --daemon, no --dot) stays up with etcd until SIGTERM, then stops etcd and exits 0', async () => {
    const p = start(['--zpool-device', img, '--daemon']);
    await eventually(async () => expect((await etcdState()).running).toBe(true), 60_000, 250);
    // It used to exit 0 about 3 s after "running until SIGTERM".
    await new Promise((r) => setTimeout(r, 6000));
    expect(p.exitCode).toBeNull();
    const up = await etcdState();
    expect(up.running).toBe(true);
    expect(up.healthy).toBe(true);
    expect((await fetch(`${up.endpoints[0]}/health`)).status).toBe(200);

    // etcd killed behind its back is started again while the boot service runs.
    process.kill(up.pid, 'SIGKILL');
    await eventually(
      async () => {
        const again = await etcdState();
        expect(again.running && again.pid !== up.pid).toBe(true);
      },
      60_000,
      250,
    );
    const restarted = (await etcdState()).pid as number;

    p.kill('SIGTERM');
    const r = await p;
    expect(r.exitCode, r.stderr as string).toBe(0);
    expect((await etcdState()).running).toBe(false);
    expect(alive(restarted)).toBe(false);
  }, 120_000);

  it('with a dot and an agent configured: the dot is mounted, the agent answers; SIGTERM stops the agent and etcd', async () => {
    writeFileSync(config, `${readFileSync(config, 'utf8')}daemon:\n  listen: 127.0.0.1:${agentPort}\n  name: bootagent\n`);
    const p = start(['--storage-device', img, '--dot', 'app', '--mountpoint', `${tmp.path}/app`, '--daemon']);
    await eventually(async () => expect((await fetch(`http://127.0.0.1:${agentPort}/v1/health`)).status).toBe(401), 60_000, 250);
    expect(mounted(`${tmp.path}/app`)).toBe(true);
    expect((await k(['host', 'list'])).json().map((h: { name: string }) => h.name)).toContain('bootagent');
    await new Promise((r) => setTimeout(r, 3000));
    expect(p.exitCode).toBeNull();
    const pid = (await etcdState()).pid as number;
    p.kill('SIGTERM');
    const r = await p;
    expect(r.exitCode, r.stderr as string).toBe(0);
    expect(alive(pid)).toBe(false);
    await expect(fetch(`http://127.0.0.1:${agentPort}/v1/health`)).rejects.toThrow();
  }, 120_000);

  it('refuses a bad agent section or bad flags before the boot changes anything', async () => {
    const bad = `${tmp.path}/bad.yaml`;
    writeFileSync(bad, `daemon:\n  listen: nowhere\n`);
    const r = await knarr(['--state-dir', `${tmp.path}/fresh`, '--config', bad, 'onboot', '--storage-device', img, '--daemon']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/daemon\.listen: "nowhere" is not ADDRESS:PORT/);
    const noMount = await knarr(['--state-dir', `${tmp.path}/fresh`, 'onboot', '--storage-device', img, '--daemon', '--mountpoint', '/x']);
    expect(noMount.code).toBe(2);
    expect(noMount.stderr).toMatch(/^knarr: --mountpoint: mounts a dot; give --dot too/);
    expect(existsSync(`${tmp.path}/fresh`)).toBe(false);
  });
});
