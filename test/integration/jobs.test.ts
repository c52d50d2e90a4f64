import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { haveDockerd, startDockerd, type Dockerd } from '../harness/dockerd.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { integration } from '../harness/tools.js';

const run = integration('jobs', haveDockerd(), 'dockerd, docker or busybox-static is missing (Debian packages docker.io, busybox-static)');
const bin = new URL('../../bin/knarr', import.meta.url).pathname;

describe.skipIf(!run)('knarr job run on a real dockerd (no agent: the embedded default)', () => {
  let tmp: TempDir;
  let d: Dockerd;
  let env: Record<string, string>;
  const job = (...args: string[]) => ['job', 'run', '--network', 'none', ...args];
  beforeAll(async () => {
    tmp = await tempDir('knarr-jobs-');
    d = await startDockerd(tmp.path);
    env = { ...d.env, KNARR_STATE_DIR: `${tmp.path}/state` };
  });
  afterAll(async () => {
    await d?.stop();
    await tmp?.cleanup();
  });

  it('echo hello | job -i tr a-z A-Z | job -i wc -c prints 6', async () => {
    const r = await execa(
      'sh',
      ['-c', `echo hello | "$0" job run -i --network none "$1" -- tr a-z A-Z | "$0" job run -i --network none "$1" -- wc -c`, bin, d.image],
      { env: { ...process.env, ...env } },
    );
    expect(r.stdout.trim()).toBe('6');
  });

  it('a job that exits before its stdin ends: knarr exits with its code, no broken pipe', async () => {
    const r = await execa('sh', ['-c', `yes | "$0" job run -i --network none "$1" -- head -n 1`, bin, d.image], {
      env: { ...process.env, ...env },
      reject: false,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe('y');
  });

  it('a reader that goes away (| head -1): knarr exits 141, as on SIGPIPE, quietly, and the job is removed', async () => {
    const r = await execa(
      'bash',
      ['-c', `"$0" job run --network none "$1" -- sh -c 'while :; do echo y; done' | head -n 1; echo "\${PIPESTATUS[0]}"`, bin, d.image],
      { env: { ...process.env, ...env } },
    );
    expect(r.stdout).toBe('y\n141');
    expect(r.stderr).toBe('');
    const piped = await execa(
      'bash',
      ['-c', `yes | "$0" job run -i --network none "$1" -- cat | head -c 2 >/dev/null; echo "\${PIPESTATUS[1]}"`, bin, d.image],
      { env: { ...process.env, ...env } },
    );
    expect(piped.stdout).toBe('141');
    expect(await d.docker('ps', '-aq', '--filter', 'label=knarr.job')).toBe('');
  });

  it('64 MiB of random bytes through cat arrive byte-identical', async () => {
    const input = `${tmp.path}/random.bin`;
    const bytes = randomBytes(64 * 1024 * 1024);
    writeFileSync(input, bytes);
    const r = await execa(bin, job('-i', d.image, '--', 'cat'), {
      env: { ...process.env, ...env },
      inputFile: input,
      encoding: 'buffer',
      maxBuffer: 128 * 1024 * 1024,
    });
    expect(r.exitCode).toBe(0);
    expect((r.stdout as Uint8Array).length).toBe(bytes.length);
    expect(
      createHash('sha256')
        .update(r.stdout as Uint8Array)
        .digest('hex'),
    ).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it("exits with the job's exit code, stdout and stderr apart, and removes the container", async () => {
    const r = await knarr(job(d.image, '--', 'sh', '-c', 'echo out; echo err >&2; exit 3'), { env });
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toContain('err\n');
    expect(await d.docker('ps', '-aq', '--filter', 'label=knarr.job')).toBe('');
  });

  it('labels the container so docker ps shows the job while it runs', async () => {
    const running = knarr(job('--name', 'sleepy', d.image, '--', 'sleep', '3'), { env });
    let seen = '';
    for (let i = 0; i < 50 && !seen; i++) {
      seen = await d.docker('ps', '--filter', 'label=knarr.job=sleepy', '--format', '{{.Labels}}');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen).toContain('knarr.job=sleepy');
    expect((await running).code).toBe(0);
  });

  it('a job file with errors names each field path, and nothing runs', async () => {
    const file = `${tmp.path}/bad.yaml`;
    writeFileSync(file, 'name: my job\nimage: 3\ncolour: red\nports: [80x]\n');
    const r = await knarr(['job', 'run', '-f', file], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /bad\.yaml: 4 problems: colour: unknown field.*; name: "my job" must be .*; image: must be an image reference.*; ports\[0\]: "80x" is not HOST:CONTAINER/,
    );
    expect(await d.docker('ps', '-aq')).toBe('');
  });

  it('a missing image is a clear error', async () => {
    const r = await knarr(job('knarr-test/nope:1', '--', 'true'), { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/image knarr-test\/nope:1 is not on this host/);
  });
});

describe.skipIf(!run)('daemonized jobs on this host: intent, actual state, services', () => {
  let tmp: TempDir;
  let d: Dockerd;
  let etcd: import('../harness/etcd.js').EtcdInstance;
  let env: Record<string, string>;
  let k: (argv: string[]) => ReturnType<typeof knarr>;
  beforeAll(async () => {
    tmp = await tempDir('knarr-daemonized-');
    d = await startDockerd(tmp.path);
    const { startEtcd } = await import('../harness/etcd.js');
    etcd = await startEtcd();
    env = { ...d.env, KNARR_STATE_DIR: `${tmp.path}/state` };
    k = (argv) => knarr(['--etcd', etcd.url, ...argv], { env });
  });
  afterAll(async () => {
    await d?.stop();
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it('runs a job with a port in the background, registers its service, and stops and removes it', async () => {
    const { freePort } = await import('../harness/ports.js');
    const port = await freePort();
    const file = `${tmp.path}/web.yaml`;
    writeFileSync(file, `name: web\nimage: ${d.image}\ncommand: [sh, -c, "echo started; exec httpd -f -p ${port} -h /"]\nports: ["${port}:${port}"]\n`);
    const r = await k(['--json', 'job', 'run', '-f', file, '--network', 'host']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ name: 'web', daemonized: true });

    let answered = 0;
    for (let i = 0; i < 50 && !answered; i++) {
      answered = await fetch(`http://127.0.0.1:${port}/`).then(
        (res) => res.status,
        () => 0,
      );
      if (!answered) await new Promise((res) => setTimeout(res, 100));
    }
    expect(answered).toBeGreaterThan(0);
    expect((await k(['--json', 'job', 'list'])).json()).toEqual([expect.objectContaining({ name: 'web', state: 'running' })]);
    expect((await k(['--json', 'service', 'list'])).json()).toEqual([expect.objectContaining({ name: `web-${port}`, job: 'web', port })]);
    expect((await k(['job', 'logs', 'web'])).stdout).toBe('started\n');
    expect(await d.docker('ps', '--filter', 'label=knarr.job=web', '--format', '{{.Names}}')).toBe('knarr-web');

    const again = await k(['job', 'run', '-f', file, '--network', 'host']);
    expect(again.code).toBe(4);
    expect(again.stderr).toMatch(/a job named web already exists/);
    // A foreground job takes no daemonized job's name, and with no agent its links are the services' addresses.
    const clash = await k(['job', 'run', '--name', 'web', '--network', 'none', d.image, '--', 'true']);
    expect(clash.code).toBe(4);
    expect(clash.stderr).toMatch(/a job named web already/);
    const linked = await k([
      'job',
      'run',
      '--network',
      'host',
      '--link',
      `web-${port}`,
      d.image,
      '--',
      'sh',
      '-c',
      `echo "$WEB_${port}_ADDR"; wget -qO /dev/null "http://$WEB_${port}_ADDR/bin/sh" && echo reached`,
    ]);
    expect(linked.code, linked.stderr).toBe(0);
    expect(linked.stdout).toBe(`127.0.0.1:${port}\nreached\n`);
    const missing = await k(['job', 'run', '--network', 'none', '--link', 'nosuch-80', d.image, '--', 'true']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/links to service nosuch-80, which does not exist/);

    expect((await k(['job', 'stop', 'web'])).code).toBe(0);
    expect((await k(['--json', 'job', 'show', 'web'])).json()).toMatchObject({ state: 'stopped', desired: 'stopped', actual: { state: 'stopped' } });
    expect(await d.docker('ps', '-a', '--filter', 'label=knarr.job=web', '--format', '{{.State}}')).toBe('exited');
    // restart makes the container anew and runs it again; its history tells what happened.
    expect((await k(['job', 'restart', 'web'])).code).toBe(0);
    expect((await k(['--json', 'job', 'show', 'web'])).json()).toMatchObject({ state: 'running', generation: 1 });
    // For a reader: one field a line, the spec's and the container's.
    const shown = (await k(['job', 'show', 'web'])).stdout;
    expect(shown).toMatch(/^job: +web$/m);
    expect(shown).toMatch(/^state: +running$/m);
    expect(shown).toMatch(new RegExp(`^ports: +${port}:${port}/tcp$`, 'm'));
    expect(shown).toMatch(/^generation: +1$/m);
    expect(shown).toMatch(/^container: +[0-9a-f]{12} on \S+$/m);
    expect((await k(['--json', 'job', 'history', 'web'])).json().map((e: { event: string }) => e.event)).toEqual([
      'placed',
      'started',
      'stopped',
      'restarted',
      'started',
    ]);
    expect((await k(['job', 'rm', 'web'])).code).toBe(0);
    expect((await k(['--json', 'job', 'list'])).json()).toEqual([]);
    expect((await k(['--json', 'service', 'list'])).json()).toEqual([]);
    expect(await d.docker('ps', '-aq', '--filter', 'label=knarr.job=web')).toBe('');
  });

  it('job logs --tail, --since and --timestamps, of a running job and of one that exited', async () => {
    const { eventually } = await import('../harness/eventually.js');
    const bad = [
      ['--tail', '-1'],
      ['--tail', 'ten'],
      ['--since', 'yesterday'],
      ['--since', '2026-13-45'],
    ];
    for (const flags of bad) {
      // Refused before the store is read: even a job that does not exist is not looked for.
      const r = await k(['job', 'logs', 'nosuch', ...flags]);
      expect(r.code, flags.join(' ')).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^knarr: ${flags[0]}: `));
    }
    const lines = 'for i in 1 2 3 4 5; do echo line$i; done';
    expect((await k(['job', 'run', '-d', '--name', 'talker', '--network', 'none', d.image, '--', 'sh', '-c', `${lines}; exec sleep 300`])).code).toBe(0);
    expect((await k(['job', 'run', '-d', '--name', 'quitter', '--network', 'none', d.image, '--', 'sh', '-c', lines])).code).toBe(0);
    await eventually(async () => expect((await k(['--json', 'job', 'show', 'quitter'])).json().state).toBe('exited'));
    for (const job of ['talker', 'quitter']) {
      await eventually(async () => expect((await k(['job', 'logs', job])).stdout).toBe('line1\nline2\nline3\nline4\nline5\n'));
      expect((await k(['job', 'logs', job, '--tail', '2'])).stdout).toBe('line4\nline5\n');
      expect((await k(['job', 'logs', job, '--tail', '0'])).stdout).toBe('');
      expect((await k(['job', 'logs', job, '--since', '1h'])).stdout).toBe('line1\nline2\nline3\nline4\nline5\n');
      const stamped = (await k(['job', 'logs', job, '--tail', '1', '--timestamps'])).stdout;
      expect(stamped).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z line5\n$/);
      const at = Date.parse(stamped.split(' ')[0]!);
      expect(Math.abs(at - Date.now())).toBeLessThan(120_000);
      // A time after the last line: nothing since then.
      const later = new Date(Math.floor(at / 1000) * 1000 + 2000).toISOString();
      expect((await k(['job', 'logs', job, '--since', later])).stdout).toBe('');
    }
    for (const job of ['talker', 'quitter']) expect((await k(['job', 'rm', job])).code).toBe(0);
  });

  it("a dot volume: the job sees the dot's files and its writes land in the dot", async () => {
    expect((await k(['pool', 'init', '--name', 'jobpool', '--driver', 'dir'])).code).toBe(0);
    expect((await k(['dot', 'init', 'site'])).code).toBe(0);
    const show = (await k(['--json', 'dot', 'show', 'site'])).json();
    const path = `${tmp.path}/state/mnt/jobpool/knarr-dots/site/${show.branch}/__default__`;
    writeFileSync(`${path}/index.html`, 'from the dot\n');
    const r = await k([
      'job',
      'run',
      '--network',
      'none',
      '--volume',
      'dot:site:/data',
      d.image,
      '--',
      'sh',
      '-c',
      'cat /data/index.html; echo written > /data/out',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('from the dot\n');
    expect(readFileSync(`${path}/out`, 'utf8')).toBe('written\n');
    const missing = await k(['job', 'run', '--network', 'none', '--volume', 'dot:nosuch:/data', d.image, '--', 'true']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/uses dot nosuch, which host .* does not have/);
  });

  it('a start that fails leaves no intent behind', async () => {
    const r = await k(['job', 'run', '--name', 'broken', '-f', `${tmp.path}/none.yaml`]);
    expect(r.code).toBe(2);
    writeFileSync(`${tmp.path}/broken.yaml`, 'name: broken\nimage: knarr-test/missing:1\nports: ["18099:80"]\n');
    const failed = await k(['job', 'run', '-f', `${tmp.path}/broken.yaml`]);
    expect(failed.code).toBe(3);
    expect((await k(['--json', 'job', 'list'])).json()).toEqual([]);
  });
});
