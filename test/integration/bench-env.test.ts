import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'the env benchmark',
  process.getuid?.() === 0 && haveTools('dockerd', 'docker', 'etcd', 'busybox', 'ip'),
  'needs root, dockerd, docker, etcd and busybox-static',
);
const BENCH = resolve('test/bench/env.mjs');
const PREFIX = 'knarr-envbench-';

/** What the benchmark makes on the machine: its directories, mounts and processes (dockerd, etcd, the agent, containers' shims). */
function traces(): string[] {
  const dirs = readdirSync(tmpdir()).filter((d) => d.startsWith(PREFIX));
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(PREFIX));
  const procs = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ');
        return cmd.includes(`${tmpdir()}/${PREFIX}`) ? [`${p} ${cmd}`] : [];
      } catch {
        return [];
      }
    });
  return [...dirs, ...mounts, ...procs].sort();
}

describe.skipIf(!run)('bench env in a quick mode (a private dockerd, etcd and one agent)', () => {
  it('measures env create of webs + balancer against docker run, checks the service answers from every web, and leaves nothing behind', async () => {
    const before = traces();
    const r = await execa('node', [BENCH], { env: { KNARR_BENCH_ROUNDS: '1' }, reject: false });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(r.stdout).toMatch(
      /env create, 3 webs \+ balancer on one host: knarr \d+\.\d+ s, plain .* median of the rounds' ratios \d+\.\d+ \(target <= 1\.5\) (PASS|FAIL)/,
    );
    expect(r.stdout).toMatch(
      /round 0: wall \d+ ms: CLI to queued \d+ \(knarr --version alone \d+\), .*members \[balancer-1 \d+, web-1 \d+, web-2 \d+, web-3 \d+\].*etcd \d+ fsyncs/,
    );
    expect(traces()).toEqual(before);
  }, 300_000);

  it('a run that fails half-way (an environment knarr refuses) says why, exits non-zero and still leaves nothing behind', async () => {
    const before = traces();
    const r = await execa('node', [BENCH], { env: { KNARR_BENCH_ROUNDS: '1', KNARR_BENCH_ENV_WEBS: '65' }, reject: false });
    expect(r.exitCode).not.toBe(0);
    expect(String(r.stderr)).toMatch(/env create bnw -f \S+ exited 2/);
    expect(traces()).toEqual(before);
  }, 300_000);
});
