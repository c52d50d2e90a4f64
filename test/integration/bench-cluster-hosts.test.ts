import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'the cluster-hosts benchmark',
  process.getuid?.() === 0 && haveTools('ip', 'nsenter', 'unshare', 'lxc-start', 'lxc-copy', 'etcd', 'busybox'),
  'needs root, iproute2, util-linux, lxc, etcd and busybox-static',
);
const BENCH = resolve('test/bench/cluster-hosts.mjs');

/** What the benchmark makes on the machine: its namespaces, links, mounts and directories. */
async function traces(): Promise<string[]> {
  const ns = (await execa('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => /^kh/.test(l));
  const links = (await execa('ip', ['-o', 'link', 'show'])).stdout
    .split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
    .filter((n) => /^(kh|kq)/.test(n));
  const mounts = (await execa('cat', ['/proc/self/mountinfo'])).stdout.split('\n').filter((l) => l.includes('knarr-bench-cluster-hosts-'));
  const dirs = readdirSync(tmpdir()).filter((d) => d.startsWith('knarr-bench-cluster-hosts-'));
  return [...ns, ...links, ...mounts, ...dirs].sort();
}

describe.skipIf(!run)('bench cluster-hosts in a quick mode (3 netns hosts with agents, real LXC)', () => {
  it('measures a small cluster over three hosts against plain LXC and leaves nothing behind', async () => {
    const before = await traces();
    const r = await execa('node', [BENCH], { env: { KNARR_BENCH_ROUNDS: '1', KNARR_BENCH_CLUSTER_NODES: '3' }, reject: false });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(r.stdout).toMatch(/3 nodes over 3 hosts: knarr \d+\.\d+ s, .*median of the rounds' ratios \d+\.\d+ \(target <= 1\.5\) (PASS|FAIL)/);
    expect(r.stdout).toMatch(/round 0: wall \d+\.\d+: agent pickup .*parts \[.*\].*etcd \d+ fsyncs/);
    expect(await traces()).toEqual(before);
  }, 300_000);

  it('a run that fails half-way (a cluster knarr refuses) says why, exits non-zero and still leaves nothing behind', async () => {
    const before = await traces();
    const r = await execa('node', [BENCH], { env: { KNARR_BENCH_ROUNDS: '1', KNARR_BENCH_CLUSTER_NODES: '0' }, reject: false });
    expect(r.exitCode).not.toBe(0);
    expect(String(r.stderr)).toMatch(/cluster create b\w+ --size 0 --spread exited/);
    expect(await traces()).toEqual(before);
  }, 300_000);
});
