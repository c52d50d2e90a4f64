import { mkdtempSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { CommandTimeoutError, ExternalCommandError, InternalError, InterruptedError, PrerequisiteError } from '../../src/core/errors.js';
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
    const err = await runner(false)
      .run(['ls', '/knarr-no-such-path'], { mutates: false })
      .catch((e) => e);
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
  // A program with no shell around it that ignores SIGTERM: only SIGKILL ends it.
  const stubborn = ['node', '-e', "process.on('SIGTERM', () => {}); setTimeout(() => {}, 30000)"];

  it('an abort escalates to SIGKILL when the command ignores SIGTERM', async () => {
    const controller = new AbortController();
    const r = new Runner({ dryRun: false, verbose: false, env: process.env, log: () => {}, signal: controller.signal, killGraceMs: 500 });
    const started = Date.now();
    setTimeout(() => controller.abort(), 1500);
    const err = await r.run(stubborn, { mutates: false }).catch((e) => e);
    expect(err).toBeInstanceOf(InterruptedError);
    // Resolved only once the process closed: after SIGTERM's grace, long before its own 30 s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
  it('an abort of an attached command escalates to SIGKILL too', async () => {
    const controller = new AbortController();
    const r = new Runner({ dryRun: false, verbose: false, env: process.env, log: () => {}, signal: controller.signal, killGraceMs: 500 });
    const started = Date.now();
    setTimeout(() => controller.abort(), 1500);
    const sink = new PassThrough().resume();
    const err = await r.attached(stubborn, { stdout: sink, stderr: sink }).catch((e) => e);
    expect(err).toBeInstanceOf(InterruptedError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
  it('an abort of a streaming command escalates to SIGKILL too', async () => {
    const controller = new AbortController();
    const r = new Runner({ dryRun: false, verbose: false, env: process.env, log: () => {}, signal: controller.signal, killGraceMs: 500 });
    const started = Date.now();
    setTimeout(() => controller.abort(), 1500);
    const err = await r.pipe(stubborn, { stdout: new PassThrough().resume(), mutates: false }).catch((e) => e);
    expect(err).toBeInstanceOf(InterruptedError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
  it('an empty command is a bug in knarr, named as one', async () => {
    const err = await runner(false)
      .run([], { mutates: false })
      .catch((e) => e);
    expect(err).toBeInstanceOf(InternalError);
    expect(err.hint).toMatch(/bug in knarr/);
  });
});

describe('Runner and time limits', () => {
  it('reports a command past its time limit as a timeout, not as a signal exit', async () => {
    const started = Date.now();
    const err = await runner(false)
      .run(['sleep', '10'], { mutates: false, timeoutMs: 300 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(CommandTimeoutError);
    expect(err.message).toBe('sleep took longer than 0.3 s and was stopped');
    expect(err.exitCode).toBe(1);
    expect(err.hint).toBeTruthy();
    expect(Date.now() - started).toBeLessThan(5000);
  });
  it('kills a command that ignores SIGTERM once the grace has passed', async () => {
    const r = new Runner({ dryRun: false, verbose: false, env: process.env, log: () => {}, killGraceMs: 500 });
    const started = Date.now();
    const err = await r
      .run(['node', '-e', "process.on('SIGTERM', () => {}); setTimeout(() => {}, 30000)"], { mutates: false, timeoutMs: 1500 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(CommandTimeoutError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
  it('reports a command ended by a signal as 128 plus its number', async () => {
    const err = await runner(false)
      .run(['sh', '-c', 'kill -TERM $$'], { mutates: false })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ExternalCommandError);
    expect(err.exitStatus).toBe(143);
  });
});

describe('Runner and chatty commands', () => {
  it('keeps the first maxOutputBytes of stdout and marks what it dropped', async () => {
    const r = await runner(false).run(['head', '-c', '5000000', '/dev/zero'], { mutates: false, maxOutputBytes: 1 << 20 });
    expect(r.stdout.startsWith('\0'.repeat(1 << 20))).toBe(true);
    expect(r.stdout.slice(1 << 20)).toBe(`\n[knarr: output truncated: ${5_000_000 - (1 << 20)} more bytes were not kept]\n`);
    expect(r.dropped).toEqual({ stdout: 5_000_000 - (1 << 20), stderr: 0 });
  });
  it('does not keep the output of a command that never stops talking', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const err = await runner(false)
      .run(['yes'], { mutates: false, timeoutMs: 1500, maxOutputBytes: 1 << 20 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(CommandTimeoutError);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 << 20);
  });
});
