import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { haveTools, integration } from '../harness/tools.js';
import { zfsAnswers } from '../harness/zfs.js';

const run = integration(
  'the dot benchmark',
  process.getuid?.() === 0 && (await zfsAnswers()) && haveTools('ip', 'nsenter', 'unshare', 'etcd', 'curl', 'openssl'),
  'needs root, a zpool that answers, iproute2, util-linux, etcd, curl and openssl',
);
const BENCH = resolve('test/bench/dot.mjs');

/** What the benchmark makes on the machine: its directories, mounts, pools, namespaces and links. */
async function traces(): Promise<string[]> {
  const dirs = readdirSync(tmpdir()).filter((d) => d.startsWith('knarr-bench-dot-'));
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes('knarr-bench-dot-'));
  const pools = (await execa('zpool', ['list', '-H', '-o', 'name'])).stdout.split('\n').filter((p) => p.startsWith('kbd'));
  const ns = (await execa('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => /^kh/.test(l));
  const links = (await execa('ip', ['-o', 'link', 'show'])).stdout
    .split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
    .filter((n) => /^kh/.test(n));
  return [...dirs, ...mounts, ...pools, ...ns, ...links].sort();
}

/** The milliseconds of knarr and of the plain tool on a line of the report. */
function times(out: string, pattern: RegExp): { knarr: number; plain: number } {
  const m = pattern.exec(out);
  expect(m, out).not.toBeNull();
  return { knarr: Number(m![1]), plain: Number(m![2]) };
}

describe.skipIf(!run)('bench dot in a quick mode (64 MiB, one round; a hub on a network-namespace host)', () => {
  it('measures clones, the file push and the hub push against the plain tools, within a loose bound, and leaves nothing behind', async () => {
    const before = await traces();
    const r = await execa('node', [BENCH], {
      env: { KNARR_BENCH_ROUNDS: '1', KNARR_BENCH_DOT_MIB: '64', KNARR_BENCH_PUSH_MIB: '64' },
      reject: false,
    });
    const out = String(r.stdout);
    expect(r.exitCode, `${out}\n${String(r.stderr)}`).toBe(0);
    expect(out).toMatch(/zfs: commit\+clone 64 MiB \d+ ms, 1 MiB \d+ ms {2}ratio \d+\.\d+ \(target <= 1\.5\)/);
    const file = times(
      out,
      /zfs: push 64 MiB to file:\/\/ (\d+) ms vs zfs send > file && sync -f file (\d+) ms {2}ratio \d+\.\d+ \(target <= 1\.2; stream \d+ bytes\)/,
    );
    const hub = times(
      out,
      /zfs: push 64 MiB to a hub on another host \(https\) (\d+) ms vs zfs send \| curl -T - to a receiver that fsyncs (\d+) ms {2}ratio \d+\.\d+/,
    );
    expect(out).toMatch(/zfs: fixed cost of a push to file:\/\/: -?\d+ ms/);
    expect(out).toMatch(/zfs: fixed cost of a push to the hub: -?\d+ ms/);
    expect(out).toMatch(/^dot: .*zfs file push ratio \d+\.\d+ \(target 1\.2\) (PASS|FAIL); zfs hub push ratio \d+\.\d+ \(target 1\.2\) (PASS|FAIL)/m);
    // Loose on purpose (one round, small data, a shared machine): it catches a push gone badly wrong, say the stream read twice over.
    for (const t of [file, hub]) expect(t.knarr, out).toBeLessThan(4 * t.plain + 5000);
    expect(await traces()).toEqual(before);
  }, 600_000);
});
