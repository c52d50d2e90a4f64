import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHost, type TestHost } from '../harness/hosts.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { zfsAnswers } from '../harness/zfs.js';

const bin = new URL('../../bin/knarr', import.meta.url).pathname;
const run = integration(
  'progress on a terminal',
  (await zfsAnswers()) && haveTools('etcd', 'script', 'stty'),
  'zpool does not answer, or etcd or script (util-linux) is missing',
);
const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;

/** Processes whose command line mentions text (a leftover zfs send of a killed push). */
async function processesWith(text: string): Promise<string[]> {
  const ps = await execa('ps', ['-eo', 'pid=,stat=,args='], { reject: false });
  return ps.stdout.split('\n').filter((l) => l.includes(text) && !l.includes('ps -eo'));
}

describe.skipIf(!run)('dot push on a terminal (script), zfs', () => {
  let tmp: TempDir;
  let a: TestHost;
  let dot: string;
  // An interactive terminal: no CI, a real TERM; script gives knarr a pty with the size set by stty (0x0 when none).
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(CI|CI_.*|CONTINUOUS_INTEGRATION|KNARR_.*)$/.test(k))), TERM: 'xterm' };
  const underScript = (cols: number, argv: string[]) =>
    execa('script', ['-qec', `stty cols ${cols} rows 40; exec ${[bin, ...a.binArgs, ...argv].map(quote).join(' ')}`, '/dev/null'], {
      env,
      extendEnv: false,
      reject: false,
      timeout: 120_000,
      killSignal: 'SIGKILL',
      stdin: 'ignore',
    });

  beforeAll(async () => {
    tmp = await tempDir('knarr-tty-');
    a = await makeHost(tmp.path, 'zfs', 'a');
    dot = uniqueName('t');
    expect((await a.run(['dot', 'init', dot])).code).toBe(0);
    writeFileSync(`${a.dotPath(dot)}/big.bin`, randomBytes(96 * 1024 * 1024));
    const c = await a.run(['dot', 'commit', dot, '-m', 'big']);
    expect(c.code, c.stderr).toBe(0);
    for (const r of ['r0', 'r120', 'rterm']) {
      mkdirSync(`${tmp.path}/${r}`);
      expect((await a.run(['dot', 'remote', 'add', r, `file://${tmp.path}/${r}`])).code).toBe(0);
    }
  }, 240_000);
  afterAll(async () => {
    // A push that hung (the bug this guards against) outlives script: end it, found by this test's own directory.
    for (const line of tmp ? await processesWith(tmp.path) : []) process.kill(Number(line.trim().split(/\s+/)[0]), 'SIGKILL');
    await a?.teardown();
    await tmp?.cleanup();
  }, 120_000);

  it('on a terminal of 0 columns finishes as fast as on 120 columns, with bounded output', async () => {
    const t120 = Date.now();
    const wide = await underScript(120, ['dot', 'push', dot, 'r120']);
    const wideMs = Date.now() - t120;
    expect(wide.exitCode, wide.stdout).toBe(0);
    // The progress line is drawn in place (\r), with bytes and a rate once the push has run half a second.
    expect(wide.stdout).toContain('\r');
    expect(wide.stdout).toMatch(/push .*: \d+\.\d [KMG]B/);

    // A pull knows the stream's size from the manifest: bytes of the total.
    const pulled = await underScript(120, ['dot', 'pull', `file://${tmp.path}/r120/${dot}`, '--as', `${dot}p`]);
    expect(pulled.exitCode, pulled.stdout).toBe(0);
    expect(pulled.stdout).toMatch(/pull .*: [\d.]+ K?M?G?B of \d+\.\d MB/);

    const t0 = Date.now();
    const zero = await underScript(0, ['dot', 'push', dot, 'r0']);
    const zeroMs = Date.now() - t0;
    expect(zero.exitCode, zero.stdout.slice(0, 2000)).toBe(0);
    expect(zeroMs).toBeLessThan(2 * wideMs + 3000);
    expect(zero.stdout.length).toBeLessThan(4096);
    expect(zero.stdout).toContain(`==> push ${dot}: commit`);
    expect(zero.stdout).not.toContain('\x1b[');
  }, 300_000);

  it('SIGTERM mid-push on a 0-column terminal exits at once, leaving no sender running and no .partial stream', async () => {
    const streams = `${tmp.path}/rterm/${dot}/streams`;
    const push = underScript(0, ['dot', 'push', dot, 'rterm']);
    // Wait until the stream is being written.
    const partialSeen = async () => existsSync(streams) && readdirSync(streams).some((f) => f.endsWith('.partial'));
    for (let i = 0; i < 3000 && !(await partialSeen()) && push.exitCode === null; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await partialSeen()).toBe(true);
    // knarr is script's child (exec'd by its shell).
    const knarrPid = Number(readFileSync(`/proc/${push.pid}/task/${push.pid}/children`, 'utf8').trim().split(' ')[0]);
    const signalled = Date.now();
    process.kill(knarrPid, 'SIGTERM');
    const r = await push;
    expect(r.exitCode, r.stdout.slice(0, 2000)).toBe(130);
    expect(Date.now() - signalled).toBeLessThan(5000);
    expect(r.stdout).toMatch(/knarr: .*interrupted/);
    expect(readdirSync(streams).filter((f) => f.endsWith('.partial'))).toEqual([]);
    expect(await processesWith(`knarr-dots/${dot}/master@`)).toEqual([]);
    // The remote is as before the push: nothing claims the commit.
    expect(existsSync(`${tmp.path}/rterm/${dot}/manifest.json`)).toBe(false);
  }, 180_000);
});
