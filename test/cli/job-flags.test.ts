import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { tempDir, type TempDir } from '../harness/tmp.js';

let tmp: TempDir;
beforeEach(async () => {
  tmp = await tempDir();
});
afterEach(() => tmp.cleanup());

describe('job run: every flag reaches the job, over the spec file', () => {
  it('the container a foreground job would get, under --dry-run', async () => {
    writeFileSync(`${tmp.path}/job.yaml`, 'image: alpine\nname: fromfile\nnetwork: bridge\nenv: {FROM_FILE: "1"}\ncpu: 2\n');
    const r = await knarr(
      [
        ...['--state-dir', `${tmp.path}/state`, '--dry-run', '--json', 'job', 'run', '-i', '-f', `${tmp.path}/job.yaml`, '--name', 'n'],
        ...['-e', 'A=1', '--env', 'B=x,y', '--network', 'none', '--cpu', '0.5', '--memory', '256M', '--fixed', '--static'],
        ...['busybox', '--', 'sh', '-c', 'exit 3', '--name', 'not-a-flag'],
      ],
      { env: { DOCKER_HOST: 'unix:///run/knarr-test-no-docker.sock' } },
    );
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { commands: string[]; result: { name: string; create: Record<string, unknown> } };
    expect(out.commands).toEqual([expect.stringMatching(/^docker -H unix:\/\/\/run\/knarr-test-no-docker\.sock run --rm -i --name knarr-n-[0-9a-f]{6} /)]);
    expect(out.result.name).toBe('n');
    expect(out.result.create).toMatchObject({
      Image: 'busybox',
      Cmd: ['sh', '-c', 'exit 3', '--name', 'not-a-flag'],
      Env: ['FROM_FILE=1', 'A=1', 'B=x,y'],
      Labels: { 'knarr.job': 'n', 'knarr.mode': 'foreground' },
      OpenStdin: true,
      HostConfig: { NetworkMode: 'none', NanoCpus: 500_000_000, Memory: 268_435_456 },
    });
  });

  it('-i with a daemonized job is refused, naming --interactive', async () => {
    const r = await knarr(['--state-dir', `${tmp.path}/state`, '--dry-run', 'job', 'run', '-i', '-d', 'busybox']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^knarr: --interactive: job run-[0-9a-f]{8} runs daemonized/);
  });

  it('job plan refuses a strategy that is not one, before reading the fleet', async () => {
    const r = await knarr(['--state-dir', `${tmp.path}/state`, 'job', 'plan', '--strategy', 'random', 'busybox']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^knarr: --strategy: unknown strategy "random"; use one of spread, binpack/);
  });

  it('a job name that cannot be one is refused before the store is reached (no etcd is started for it)', async () => {
    for (const argv of [['show'], ['stop'], ['rm'], ['history'], ['logs', '-f'], ['restart', 'ok']].map((c) => [...c.slice(0, 1), 'a b', ...c.slice(1)])) {
      const r = await knarr(['--state-dir', `${tmp.path}/state`, 'job', ...argv]);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^knarr: JOB: "a b" contains a space/);
    }
  });

  it('job restart wants names or --all, not both, before the store is reached', async () => {
    const none = await knarr(['--state-dir', `${tmp.path}/state`, 'job', 'restart']);
    const both = await knarr(['--state-dir', `${tmp.path}/state`, 'job', 'restart', 'web', '--all']);
    expect([none.code, both.code]).toEqual([2, 2]);
    expect(none.stderr).toMatch(/^knarr: JOB: name the jobs to restart, or give --all/);
    expect(both.stderr).toMatch(/^knarr: JOB: give job names or --all, not both/);
  });
});
