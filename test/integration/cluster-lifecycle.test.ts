import { existsSync, readFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { hostname } from 'node:os';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/state/store.js';
import { fleetKeys } from '../../src/state/keys.js';
import { OpRepo } from '../../src/state/ops.js';
import type { OpRecord } from '../../src/core/ops.js';
import { knarr } from '../harness/cli.js';
import { clusterWorld, type ClusterWorld } from '../harness/clusters.js';
import { eventually } from '../harness/eventually.js';
import { freePort } from '../harness/ports.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'cluster lifecycle',
  process.getuid?.() === 0 && haveTools('lxc-start', 'lxc-attach', 'lxc-freeze', 'lxc-cgroup', 'busybox', 'ip', 'etcd'),
  'needs root, lxc, busybox-static, iproute2 and etcd (Debian packages lxc, busybox-static, iproute2, etcd-server)',
);
const btrfs =
  run &&
  integration(
    'cluster clone on btrfs',
    haveTools('mkfs.btrfs', 'losetup') && /\bbtrfs$/m.test(readFileSync('/proc/filesystems', 'utf8')) && existsSync('/dev/loop-control'),
    'needs mkfs.btrfs (btrfs-progs), btrfs in /proc/filesystems and /dev/loop-control',
  );
const bin = new URL('../../bin/knarr', import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ShownNode {
  index: number;
  container: string;
  hostname: string;
  ip: string;
  state: string;
  memory: number;
  cpu: number;
  volume: string;
}

describe.skipIf(!run)("a node's lifecycle: suspend, resume, reboot, update, clone (real LXC, durable operations)", () => {
  let w: ClusterWorld;
  let store: Store;
  let env: Record<string, string>;
  let lxcPath: string;
  let poolDir: string;
  const fleet = 'life';
  const k = (argv: string[]) => knarr(argv, { env });
  const lxcLs = () => w.lxcLs();
  const attach = (container: string, ...cmd: string[]) => w.attach(container, ...cmd);
  const show = async (name: string) =>
    (await k(['--json', 'cluster', 'show', name])).json() as { id: number; status: string; frozen: number; nodes: ShownNode[] };
  /** The cluster events of life, oldest first. */
  const events = async () =>
    ((await k(['--json', 'events', '--kind', 'cluster'])).json() as { object: string; event: string }[])
      .filter((e) => e.object === 'alice/life')
      .map((e) => e.event);
  const states = async (name: string) => (await show(name)).nodes.map((n) => n.state);
  const ok = async (argv: string[]) => {
    const r = await k(argv);
    expect(r.code, `knarr ${argv.join(' ')}: ${r.stderr}`).toBe(0);
    return r;
  };
  const ping = async (container: string, to: string) =>
    (await execa('lxc-attach', ['-P', lxcPath, '-n', container, '--', 'ping', '-c', '1', '-W', '3', to], { reject: false })).exitCode;
  /** The start time of the node's init (clock ticks since the host booted): a reboot gives a new one. */
  const initStart = async (container: string) => (await attach(container, 'cat', '/proc/1/stat')).split(' ')[21];
  /** The knarr CLI as its own process, killed with SIGKILL once the operation of kind it runs has state saying so. */
  async function killWhen(argv: string[], kind: string, ready: (op: OpRecord) => boolean): Promise<OpRecord> {
    const ops = new OpRepo(store, fleet);
    const before = new Set((await ops.list()).map((o) => o.id));
    const child = execa(bin, argv, { env: { ...process.env, ...env }, reject: false });
    let caught: OpRecord | undefined;
    for (let i = 0; i < 3000 && !caught; i++) {
      caught = (await ops.list()).find((o) => !before.has(o.id) && o.kind === kind && o.status === 'running' && ready(o));
      if (!caught) await sleep(5);
    }
    child.kill('SIGKILL');
    await child;
    expect(caught, `${kind} was never caught part-way`).toBeDefined();
    const op = (await ops.get(caught!.id))!;
    expect(op.status).toBe('running');
    // The dead command's lease lapses: nobody holds the operation any more.
    await eventually(async () => expect(await ops.claimed(op.id)).toBe(false), 30_000);
    return op;
  }

  beforeAll(async () => {
    w = await clusterWorld('knarr-life-', fleet, 'alice');
    ({ store, env, lxcPath, poolDir } = w);
    await ok(['cluster', 'create', 'life', '--size', '2', '--memory', '128M']);
  }, 90_000);

  afterAll(async () => {
    await w?.teardown();
  }, 90_000);

  it('suspend holds a node: a process counting in it stops while frozen and carries on after resume; re-runs say so and succeed', async () => {
    const { id, nodes } = await show('life');
    const node = nodes[1]!;
    // Counts into a file of the node's own volume, read from the host: a frozen node cannot be asked.
    await attach(
      node.container,
      'sh',
      '-c',
      "setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > /root/count; sleep 0.05; done' </dev/null >/dev/null 2>&1 &",
    );
    const counter = `${poolDir}/knarr-clusters/${node.container}/delta/root/count`;
    const count = () => Number(readFileSync(counter, 'utf8').trim() || 0);
    await eventually(async () => expect(count()).toBeGreaterThan(2));

    const r = await ok(['cluster', 'suspend', 'life', 'host-1']);
    expect(r.stdout).toMatch(/cluster\.suspend done/);
    expect(r.stdout).toMatch(/^host-1 frozen$/m);
    expect(await states('life')).toEqual(['RUNNING', 'FROZEN']);
    const list = (await k(['cluster', 'list'])).stdout;
    expect(list).toMatch(/running, 1\/2 frozen/);
    expect((await show('life')).frozen).toBe(1);
    const held = count();
    await sleep(1000);
    expect(count()).toBe(held);
    // Already frozen: said, and no failure.
    const again = await ok(['cluster', 'suspend', 'life', '1']);
    expect(again.stdout).toMatch(/^host-1 was frozen already$/m);

    const resumed = await ok(['--json', 'cluster', 'resume', 'life', '1']);
    expect(resumed.json().result.resumed).toEqual([{ node: 1, hostname: 'host-1', container: node.container, changed: true }]);
    await eventually(async () => expect(count()).toBeGreaterThan(held + 3));
    expect(await states('life')).toEqual(['RUNNING', 'RUNNING']);
    expect((await ok(['cluster', 'resume', 'life'])).stdout).toMatch(/^host-0 was running already\nhost-1 was running already$/m);

    // A start of a cluster with a frozen node thaws it.
    await ok(['cluster', 'suspend', 'life', '0']);
    await ok(['cluster', 'start', 'life']);
    expect(await states('life')).toEqual(['RUNNING', 'RUNNING']);
    expect((await show('life')).frozen).toBe(0);

    // The whole cluster: list says suspended; a stop thaws and stops it, a start brings it back running.
    await ok(['cluster', 'suspend', 'life']);
    expect(await states('life')).toEqual(['FROZEN', 'FROZEN']);
    expect((await k(['--json', 'cluster', 'list'])).json()[0]).toMatchObject({ frozen: 2 });
    expect((await k(['cluster', 'list'])).stdout).toMatch(/\bsuspended\b/);
    await ok(['cluster', 'stop', 'life']);
    expect(await states('life')).toEqual(['STOPPED', 'STOPPED']);
    expect((await show('life')).frozen).toBe(0);

    // A stopped cluster and a node it does not have: clear errors, nothing queued.
    const ops = (await new OpRepo(store, fleet).list()).length;
    const stopped = await k(['cluster', 'suspend', 'life']);
    expect(stopped.code).toBe(4);
    expect(stopped.stderr).toMatch(/cannot suspend cluster life: it is stopped, not running\n {2}hint: start it first: knarr cluster start life/);
    expect((await k(['cluster', 'reboot', 'life'])).stderr).toMatch(/cannot reboot cluster life: it is stopped/);
    await ok(['cluster', 'start', 'life']);
    const noNode = await k(['cluster', 'resume', 'life', '7']);
    expect(noNode.code).toBe(3);
    expect(noNode.stderr).toMatch(/cluster life has no node 7 \(its nodes: host-0\.\.host-1\)/);
    expect((await k(['cluster', 'suspend', 'life', 'node-x'])).stderr).toMatch(/NODE: "node-x" is not a node/);
    expect((await new OpRepo(store, fleet).list()).length).toBe(ops + 1);
    expect(await events()).toEqual(expect.arrayContaining(['suspended', 'resumed']));
    expect(id).toBe((await show('life')).id);
  }, 120_000);

  it('reboot gives a node a new init (its processes gone) and it comes back reachable by name; the other node runs on', async () => {
    const { nodes } = await show('life');
    const [n0, n1] = [nodes[0]!, nodes[1]!];
    const [before0, before1] = [await initStart(n0.container), await initStart(n1.container)];
    await attach(n0.container, 'sh', '-c', 'setsid sleep 1000 </dev/null >/dev/null 2>&1 &');
    expect(await attach(n0.container, 'ps')).toContain('sleep 1000');
    // A frozen node reboots too, thawed on the way down: at once, not after lxc-stop's 10 s timeout.
    await ok(['cluster', 'suspend', 'life', '0']);
    const t0 = Date.now();
    const r = await ok(['cluster', 'reboot', 'life', 'host-0']);
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(r.stdout).toMatch(/^rebooted host-0$/m);
    expect(await initStart(n0.container)).not.toBe(before0);
    expect(await initStart(n1.container)).toBe(before1);
    expect(await attach(n0.container, 'ps')).not.toContain('sleep 1000');
    expect(await states('life')).toEqual(['RUNNING', 'RUNNING']);
    expect((await show('life')).frozen).toBe(0);
    expect(await ping(n1.container, 'host-0')).toBe(0);
    expect(await ping(n0.container, 'host-1.life')).toBe(0);
    expect(await events()).toContain('rebooted');
  }, 60_000);

  it("update sets the memory limit live in the node's cgroup, records it (a restart keeps it), and says when it waits for the next start", async () => {
    const { nodes } = await show('life');
    const limit = async (container: string, key = 'memory.limit_in_bytes') => (await execa('lxc-cgroup', ['-P', lxcPath, '-n', container, key])).stdout.trim();
    expect(await limit(nodes[0]!.container)).toBe(String(128 << 20));
    const r = await ok(['cluster', 'update', 'life', '--memory', '96M']);
    expect(r.stdout).toMatch(/^host-0: memory 96M, cpus none: applied live$/m);
    for (const n of nodes) expect(await limit(n.container)).toBe(String(96 << 20));
    // One node's cpus: its own limit, over the cluster's.
    const cpu = await ok(['--json', 'cluster', 'update', 'life', '1', '--cpus', '0.5']);
    expect(cpu.json().result.nodes).toEqual([{ node: 1, hostname: 'host-1', memory: 96 << 20, cpu: 500, applied: 'live' }]);
    expect(await limit(nodes[1]!.container, 'cpu.cfs_quota_us')).toBe('50000');
    expect(await limit(nodes[0]!.container, 'cpu.cfs_quota_us')).toBe('-1');
    expect((await show('life')).nodes.map((n) => [n.memory, n.cpu])).toEqual([
      [96 << 20, 0],
      [96 << 20, 500],
    ]);
    // Stopped: recorded, and in force once it starts again.
    await ok(['cluster', 'stop', 'life']);
    const later = await ok(['cluster', 'update', 'life', '--memory', '80M']);
    expect(later.stdout).toMatch(/^host-1: memory 80M, cpus 500m: at its next start \(host-1 is stopped\)$/m);
    await ok(['cluster', 'start', 'life']);
    for (const n of nodes) expect(await limit(n.container)).toBe(String(80 << 20));
    expect(await limit(nodes[1]!.container, 'cpu.cfs_quota_us')).toBe('50000');
    expect(await events()).toContain('updated');
    // No limit asked: refused before anything is queued.
    const none = await k(['cluster', 'update', 'life']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--memory: give the new limit/);
  }, 90_000);

  it('update: a limit the kernel refuses live (below what the node uses) is recorded for the next start, and the result says why', async () => {
    const { nodes } = await show('life');
    // The node holds 24 MiB in a file of its tmpfs; 8 MiB cannot be reclaimed from it without swap.
    await attach(nodes[0]!.container, 'sh', '-c', 'mkdir -p /tmp/m && mount -t tmpfs tmpfs /tmp/m && dd if=/dev/zero of=/tmp/m/f bs=1M count=24 2>/dev/null');
    const r = await k(['--json', 'cluster', 'update', 'life', '0', '--memory', '8M']);
    expect(r.code, r.stderr).toBe(0);
    const [step] = r.json().result.nodes as { applied: string; reason?: string }[];
    // A host with swap could reclaim it: then nothing is refused, and the limit is in force now.
    if (readFileSync('/proc/swaps', 'utf8').trim().split('\n').length > 1) return;
    expect(step).toMatchObject({ applied: 'next start', reason: expect.stringMatching(/the kernel refused memory\.limit_in_bytes = 8388608/) });
    expect((await show('life')).nodes[0]!.memory).toBe(8 << 20);
    await ok(['cluster', 'update', 'life', '0', '--memory', '80M']);
  }, 60_000);

  it('clone: new ids and addresses, the nodes run and ping each other by name, the volumes hold what was written before the clone only', async () => {
    const src = await show('life');
    await attach(src.nodes[0]!.container, 'sh', '-c', 'echo before > /root/before.txt; sync');
    const r = await ok(['--json', 'cluster', 'clone', 'life', 'twin']);
    expect(r.json().result).toMatchObject({ cluster: 'twin', from: 'life', nodes: 2, volumes: 'copy' });
    await attach(src.nodes[0]!.container, 'sh', '-c', 'echo after > /root/after.txt');
    const twin = await show('twin');
    expect(twin.id).not.toBe(src.id);
    expect(twin.status).toBe('running');
    expect(twin.nodes.map((n) => n.state)).toEqual(['RUNNING', 'RUNNING']);
    expect(twin.nodes.map((n) => n.container)).toEqual([`alice-${twin.id}-0`, `alice-${twin.id}-1`]);
    const ips = [...src.nodes, ...twin.nodes].map((n) => n.ip);
    expect(new Set(ips).size).toBe(4);
    // The source's limits come along, a node's own too.
    expect(twin.nodes.map((n) => [n.memory, n.cpu])).toEqual(src.nodes.map((n) => [n.memory, n.cpu]));
    const hosts = await attach(twin.nodes[1]!.container, 'cat', '/etc/hosts');
    for (const n of twin.nodes) expect(hosts).toContain(`${n.ip} ${n.hostname} ${n.hostname}.twin`);
    expect(hosts).not.toContain('.life');
    expect(await ping(twin.nodes[0]!.container, 'host-1')).toBe(0);
    expect(await ping(twin.nodes[1]!.container, 'host-0.twin')).toBe(0);
    expect(await attach(twin.nodes[0]!.container, 'cat', '/root/before.txt')).toBe('before');
    expect(
      (await execa('lxc-attach', ['-P', lxcPath, '-n', twin.nodes[0]!.container, '--', 'test', '-e', '/root/after.txt'], { reject: false })).exitCode,
    ).toBe(1);
    // The source was thawed after its copy, and is as it was.
    expect(await states('life')).toEqual(['RUNNING', 'RUNNING']);
    expect(await attach(src.nodes[0]!.container, 'cat', '/root/after.txt')).toBe('after');
    // The name is taken now, and a clone needs a name of its own.
    expect((await k(['cluster', 'clone', 'life', 'twin'])).stderr).toMatch(/user alice already has a cluster twin/);
    expect((await k(['cluster', 'clone', 'life', 'life'])).stderr).toMatch(/NEW: the clone needs a name of its own/);
    expect(await events()).toContain('cloned');
    // A suspended cluster is deleted whole: its frozen nodes are thawed to be killed.
    await ok(['cluster', 'suspend', 'twin']);
    await ok(['cluster', 'delete', 'twin']);
    expect((await lxcLs()).filter((n) => n.startsWith(`alice-${twin.id}-`))).toEqual([]);
  }, 120_000);

  describe('killed part-way (kill -9 of the command)', () => {
    beforeAll(async () => {
      await ok(['cluster', 'scale', 'life', '--size', '6']);
    }, 120_000);

    it('a suspend cut short is undone by op cancel: the nodes it froze are thawed, the record says none frozen', async () => {
      const op = await killWhen(['cluster', 'suspend', 'life'], 'cluster.suspend', (o) => ((o.state.changed as string[] | undefined)?.length ?? 0) >= 2);
      expect(((op.state.changed as string[]) ?? []).length).toBeLessThan(6);
      const cancelled = await k(['--json', 'op', 'cancel', op.id]);
      expect(cancelled.code, cancelled.stderr).toBe(0);
      expect(cancelled.json()).toMatchObject({ status: 'cancelled' });
      expect(await states('life')).toEqual(Array(6).fill('RUNNING'));
      expect((await show('life')).frozen).toBe(0);
    }, 120_000);

    it('an update cut short is undone by op cancel: the record and every cgroup hold the limits from before', async () => {
      const { nodes } = await show('life');
      const limit = async (container: string) => (await execa('lxc-cgroup', ['-P', lxcPath, '-n', container, 'memory.limit_in_bytes'])).stdout.trim();
      const before = (await show('life')).nodes.map((n) => n.memory);
      const cgroups = await Promise.all(nodes.map((n) => limit(n.container)));
      const op = await killWhen(['cluster', 'update', 'life', '--memory', '200M'], 'cluster.update', (o) => o.state.before !== undefined);
      const cancelled = await k(['--json', 'op', 'cancel', op.id]);
      expect(cancelled.code, cancelled.stderr).toBe(0);
      expect(cancelled.json(), JSON.stringify(cancelled.json())).toMatchObject({ status: 'cancelled' });
      expect((await show('life')).nodes.map((n) => n.memory)).toEqual(before);
      expect(await Promise.all(nodes.map((n) => limit(n.container)))).toEqual(cgroups);
    }, 120_000);

    it('a reboot cut short with a node down is finished by running the command again (every node rebooted), or cancelled ' +
      '(the node it had down started)', async () => {
      const { nodes } = await show('life');
      const before = await Promise.all(nodes.map((n) => initStart(n.container)));
      const op = await killWhen(
        ['cluster', 'reboot', 'life'],
        'cluster.reboot',
        (o) => ((o.state.rebooted as string[] | undefined)?.length ?? 0) >= 1 && typeof o.state.down === 'string',
      );
      expect(op.state.down).toMatch(/^alice-\d+-[1-5]$/);
      // The same command again finishes it rather than being refused for it.
      const resumed = await k(['--json', 'cluster', 'reboot', 'life']);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.json()).toMatchObject({ id: op.id, status: 'done', attempts: 2 });
      expect(resumed.stderr).toMatch(new RegExp(`${op.id} \\(cluster.reboot\\) was cut short \\(attempt 1\\); finishing it`));
      expect(await states('life')).toEqual(Array(6).fill('RUNNING'));
      const after = await Promise.all(nodes.map((n) => initStart(n.container)));
      for (const [i, t] of after.entries()) expect(t, nodes[i]!.hostname).not.toBe(before[i]);
      // Cut short again and taken back: the node it had down is started, none is left stopped.
      const again = await killWhen(['cluster', 'reboot', 'life'], 'cluster.reboot', (o) => typeof o.state.down === 'string');
      const cancelled = await k(['--json', 'op', 'cancel', again.id]);
      expect(cancelled.code, cancelled.stderr).toBe(0);
      expect(cancelled.json()).toMatchObject({ status: 'cancelled' });
      expect(await states('life')).toEqual(Array(6).fill('RUNNING'));
    }, 120_000);

    it('a clone cut short: op cancel leaves no container, volume, address or record of it and the source thawed; the ' +
      'same command again finishes one', async () => {
      const addresses = async () => (await store.list(fleetKeys(fleet).userAddresses('alice'))).length;
      const held = await addresses();
      const op = await killWhen(['cluster', 'clone', 'life', 'gone'], 'cluster.clone', (o) => ((o.state.held as string[] | undefined)?.length ?? 0) >= 3);
      const cancelled = await k(['--json', 'op', 'cancel', op.id]);
      expect(cancelled.code, cancelled.stderr).toBe(0);
      const { id } = await show('life');
      expect((await lxcLs()).filter((n) => !n.startsWith(`alice-${id}-`))).toEqual([]);
      expect((await execa('ls', [`${poolDir}/knarr-clusters`])).stdout.split('\n').filter((n) => !n.startsWith(`alice-${id}-`))).toEqual([]);
      expect(await addresses()).toBe(held);
      expect((await k(['cluster', 'show', 'gone'])).code).toBe(3);
      expect(await states('life')).toEqual(Array(6).fill('RUNNING'));

      const again = await killWhen(['cluster', 'clone', 'life', 'whole'], 'cluster.clone', (o) => ((o.state.held as string[] | undefined)?.length ?? 0) >= 2);
      // A create of that name is refused while the clone is unfinished; the same command finishes it (op run would too).
      expect((await k(['cluster', 'create', 'whole', '--size', '1'])).stderr).toMatch(/user alice already has a cluster whole/);
      const finished = await k(['--json', 'cluster', 'clone', 'life', 'whole']);
      expect(finished.code, finished.stderr).toBe(0);
      expect(finished.json()).toMatchObject({ id: again.id, status: 'done', attempts: 2 });
      const whole = await show('whole');
      expect(whole.nodes.map((n) => n.state)).toEqual(Array(6).fill('RUNNING'));
      expect(await states('life')).toEqual(Array(6).fill('RUNNING'));
      expect(await ping(whole.nodes[5]!.container, 'host-0')).toBe(0);
      await ok(['cluster', 'delete', 'whole']);
    }, 180_000);
  });

  it("with an agent up, the host's agent runs them: suspend, resume and update of one node", async () => {
    const port = await freePort();
    const agent = execa(bin, ['daemon', '--name', hostname(), '--listen', `127.0.0.1:${port}`, '--ttl', '2'], {
      env: { ...process.env, ...env },
      reject: false,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      await eventually(async () => expect((await k(['--json', 'host', 'show', hostname()])).json()).toMatchObject({ up: true }));
      const suspended = await ok(['--json', 'cluster', 'suspend', 'life', '1']);
      expect(suspended.json()).toMatchObject({ status: 'done', runner: expect.stringMatching(/^agent:/) });
      expect((await states('life'))[1]).toBe('FROZEN');
      await ok(['cluster', 'resume', 'life', '1']);
      const updated = await ok(['--json', 'cluster', 'update', 'life', '1', '--cpus', '1']);
      expect(updated.json()).toMatchObject({ runner: expect.stringMatching(/^agent:/), result: { nodes: [{ cpu: 1000, applied: 'live' }] } });
      expect((await states('life'))[1]).toBe('RUNNING');
    } finally {
      agent.kill('SIGTERM');
      await agent;
    }
  }, 60_000);

  it.skipIf(!btrfs)(
    'clone on a btrfs pool snapshots each volume (copy-on-write)',
    async () => {
      const img = `${w.tmp.path}/bt.img`;
      const name = `klb${randomInt(36 ** 4).toString(36)}`;
      await ok(['pool', 'init', '--name', name, '--driver', 'btrfs', '--loop-file', img, '--size', '256M']);
      try {
        await ok(['image', 'import', 'bbase', '--busybox', '--pool', name]);
        await ok(['cluster', 'create', 'onbt', '--size', '1', '--image', 'bbase', '--pool', name]);
        const src = await show('onbt');
        await attach(src.nodes[0]!.container, 'sh', '-c', 'echo cow > /root/cow.txt; sync');
        const r = await ok(['--json', 'cluster', 'clone', 'onbt', 'onbt2']);
        expect(r.json().result).toMatchObject({ volumes: 'snapshot' });
        const twin = await show('onbt2');
        const mount = (await k(['--json', 'pool', 'status', name])).json().mountpoint as string;
        const sub = await execa('btrfs', ['subvolume', 'show', `${mount}/${twin.nodes[0]!.volume}`]);
        expect(sub.stdout).toMatch(/Parent UUID:\s+[0-9a-f-]{36}/);
        expect(await attach(twin.nodes[0]!.container, 'cat', '/root/cow.txt')).toBe('cow');
        for (const c of ['onbt2', 'onbt']) await ok(['cluster', 'delete', c]);
        await ok(['image', 'rm', 'bbase']);
      } finally {
        await k(['pool', 'destroy', name, '--yes', '--force']);
      }
    },
    120_000,
  );
});
