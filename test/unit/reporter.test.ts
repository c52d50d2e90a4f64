import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createReporter } from '../../src/cli/reporter.js';
import { fitLine, formatBytes, formatDuration, formatProgress } from '../../src/core/progress.js';
import { metered } from '../../src/core/streams.js';

/** A stand-in for a terminal's stderr: a stream that reports a width, as tty.WriteStream does. */
function terminal(columns: number | undefined) {
  const stream = Object.assign(new PassThrough(), { columns });
  const chunks: string[] = [];
  stream.on('data', (b: Buffer) => chunks.push(b.toString('utf8')));
  return { stream, text: () => chunks.join('') };
}
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('progress text', () => {
  it('formats bytes, durations, rates and an ETA', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(12.5 * 1024 * 1024)).toBe('12.5 MB');
    expect(formatDuration(65)).toBe('1:05');
    expect(formatDuration(3725)).toBe('1:02:05');
    expect(formatProgress('push d', 10 * 1024 * 1024, 40 * 1024 * 1024, 2000)).toBe('push d: 10.0 MB of 40.0 MB, 5.0 MB/s, ETA 0:06');
    expect(formatProgress('push d', 1024, undefined, 100)).toBe('push d: 1.0 KB');
  });

  it('fits a line to the terminal, and has no line for a terminal without a width', () => {
    expect(fitLine('abcdef', 5)).toBe('abc…');
    expect(fitLine('abc', 80)).toBe('abc');
    for (const w of [0, 1, undefined, Number.NaN, Number.POSITIVE_INFINITY]) expect(fitLine('abc', w)).toBeNull();
  });
});

describe('the reporter on a terminal', () => {
  const env = { TERM: 'xterm' };

  it('with 0 columns prints plain lines and a bounded amount, however long the step runs', async () => {
    const t = terminal(0);
    const r = createReporter({ stderr: t.stream, stderrIsTTY: true, env }, false);
    r.step('push d: commit 1');
    const meter = r.progress('push d: commit 2', 1e9);
    for (let i = 0; i < 100; i++) meter.add(1e6);
    await tick(350);
    meter.end();
    r.done();
    expect(t.text()).toBe('==> push d: commit 1\n==> push d: commit 2\n');
  });

  it('with a width redraws one line in place, cut to the width, with bytes, rate and ETA', async () => {
    const t = terminal(60);
    const r = createReporter({ stderr: t.stream, stderrIsTTY: true, env }, false);
    const meter = r.progress('push d: commit 2', 4 * 1024 * 1024);
    meter.add(1024 * 1024);
    await tick(650);
    meter.end();
    const out = t.text();
    expect(out).toMatch(/push d: commit 2: 1\.0 MB of 4\.0 MB, [\d.]+ MB\/s, ETA 0:0\d/);
    expect(out.endsWith('\r\x1b[K')).toBe(true);
    expect(out).not.toContain('\n');
    for (const line of out.split('\r')) expect([...line.replace('\x1b[K', '')].length).toBeLessThan(60);
    // At most one frame per 100 ms.
    expect(out.split('\r').length).toBeLessThan(12);
  });

  it('stops drawing when the terminal loses its width mid-step', async () => {
    const t = terminal(80);
    const r = createReporter({ stderr: t.stream, stderrIsTTY: true, env }, false);
    r.step('working');
    t.stream.columns = 0;
    await tick(250);
    const before = t.text().length;
    await tick(250);
    expect(t.text().length).toBe(before);
    r.done();
  });

  it('puts a --verbose line above the status line, not into it', async () => {
    const t = terminal(80);
    const r = createReporter({ stderr: t.stream, stderrIsTTY: true, env }, false);
    r.step('working');
    r.log('+ zfs send p/d@c  (12ms, exit 0)');
    await tick(150);
    r.done();
    expect(t.text()).toMatch(/^. working\x1b\[K\r\x1b\[K\+ zfs send p\/d@c {2}\(12ms, exit 0\)\n. working\x1b\[K/);
  });

  it('shows no bytes on a pipe, only the step', () => {
    const t = terminal(undefined);
    const r = createReporter({ stderr: t.stream, stderrIsTTY: false, env }, false);
    r.progress('pull d: commit 1', 100).add(50);
    expect(t.text()).toBe('==> pull d: commit 1\n');
  });
});

describe('metered', () => {
  it('passes every byte through, tells each piece, and ends with its input', async () => {
    let told = 0;
    const out: Buffer[] = [];
    for await (const c of metered(Readable.from([Buffer.alloc(1000, 1), Buffer.alloc(24, 2)]), (n) => (told += n))) out.push(c as Buffer);
    expect(Buffer.concat(out).length).toBe(1024);
    expect(told).toBe(1024);
  });

  it("fails with its input's error", async () => {
    const input = new PassThrough();
    const counted = metered(input, () => {});
    const failed = new Promise((resolve) => counted.once('error', resolve));
    input.destroy(new Error('disk gone'));
    expect(((await failed) as Error).message).toBe('disk gone');
  });
});
