import { mkdtempSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { ExternalCommandError, PrerequisiteError } from '../../src/core/errors.js';
import { Runner, formatArgv } from '../../src/host/runner.js';

const tmp = mkdtempSync(`${tmpdir()}/knarr-runner-`);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function runner(dryRun: boolean, lines: string[] = []) {
  return new Runner({ dryRun, verbose: true, env: process.env, log: (l) => lines.push(l) });
}

describe('Runner', () => {
  it('formats argv so a shell would read each argument back whole', () => {
    expect(formatArgv(['zpool', 'create', '-m', '/mnt/a b', "it's"])).toBe(`zpool create -m '/mnt/a b' 'it'\\''s'`);
  });
  it('passes arguments without a shell: metacharacters stay literal', async () => {
    const r = await runner(false).run(['echo', '$(id)', ';', '*'], { mutates: false });
    expect(r.stdout).toBe('$(id) ; *\n');
  });
  it('records mutating commands under dry run and does not run them', async () => {
    const target = `${tmp}/should-not-exist`;
    const r = runner(true);
    const res = await r.run(['touch', target]);
    await r.mkdirp(`${tmp}/dir-not-made`);
    expect(res.planned).toBe(true);
    expect(existsSync(target)).toBe(false);
    expect(existsSync(`${tmp}/dir-not-made`)).toBe(false);
    expect(r.planned).toEqual([`touch ${target}`, `mkdir -p ${tmp}/dir-not-made`]);
  });
  it('still runs read-only probes under dry run', async () => {
    const r = runner(true);
    expect((await r.run(['echo', 'probe'], { mutates: false })).stdout).toBe('probe\n');
    expect(r.planned).toEqual([]);
  });
  it('throws ExternalCommandError with the last stderr line', async () => {
    const err = await runner(false).run(['ls', '/knarr-no-such-path'], { mutates: false }).catch((e) => e);
    expect(err).toBeInstanceOf(ExternalCommandError);
    expect(err.exitStatus).toBe(2);
    expect(err.message).toMatch(/^ls failed \(exit 2\): .*knarr-no-such-path/);
  });
  it('accepts exit codes that are answers', async () => {
    expect((await runner(false).run(['false'], { mutates: false, okExitCodes: [1] })).exitCode).toBe(1);
  });
  it('reports a missing binary as a prerequisite with its package', async () => {
    const r = new Runner({ dryRun: false, verbose: false, env: { PATH: '/nonexistent' }, log: () => {} });
    const err = await r.run(['zpool', 'list'], { mutates: false }).catch((e) => e);
    expect(err).toBeInstanceOf(PrerequisiteError);
    expect(err.hint).toMatch(/zfs-fuse/);
  });
  it('feeds input on stdin and logs each command with its duration under verbose', async () => {
    const lines: string[] = [];
    const r = await runner(false, lines).run(['cat'], { mutates: false, input: 'bytes' });
    expect(r.stdout).toBe('bytes');
    expect(lines[0]).toMatch(/^\+ cat  \(\d+ms, exit 0\)$/);
  });
});

describe('Runner and interruption', () => {
  it('an abort kills the running command and reports interrupted (exit 130)', async () => {
    const controller = new AbortController();
    const r = new Runner({ dryRun: false, verbose: false, env: process.env, log: () => {}, signal: controller.signal });
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);
    const err = await r.run(['sleep', '10'], { mutates: false }).catch((e) => e);
    expect(err.exitCode).toBe(130);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
