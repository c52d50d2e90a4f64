import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpRepo } from '../../src/state/ops.js';
import { connectEtcd } from '../../src/state/store.js';
import { eventually } from '../harness/eventually.js';
import { lxcFleet, type LxcFleet } from '../harness/lxc-fleet.js';
import { haveNetns, type NetHost } from '../harness/netns.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'a cluster over two hosts, tried as an operator and an attacker would',
  haveNetns() && haveTools('lxc-start', 'lxc-attach', 'bridge', 'nft', 'etcd'),
  'needs root, iproute2, nftables, lxc, dockerd, busybox-static and etcd',
);
const KNARR = resolve('bin/knarr');
const BRIDGE = 'kadvbr0';
const FLEET = 'adv';

interface Node {
  index: number;
  hostname: string;
  ip: string;
  host: string;
  container: string;
  state: string;
  frozen?: boolean;
}

/**
 * Two netns hosts with agents sharing one data directory and real LXC: a multi-host cluster under agents
 * killed mid-operation, hosts down, concurrent whole-cluster operations, hostile `cluster exec`, and --dry-run.
 */
describe.skipIf(!run)('a cluster over two hosts, adversarially (real LXC on netns hosts)', () => {
  let f: LxcFleet;
  let hosts: NetHost[] = [];
  const startAgent = (h: NetHost) => f.startAgent(h);
  const killAgent = (h: NetHost) => f.killAgent(h);
  const upHosts = () => f.upHosts();
  const containersOn = (h: NetHost) => f.lxcNames(h);
  /** Every container of the world's hosts, and every node volume left on their pools. */
  const leftovers = async () => {
    const found: string[] = [];
    for (const h of hosts) {
      for (const c of await containersOn(h)) found.push(`${h.name} ${c}`);
      const volumes = `${h.dir}/state/mnt/nodes/knarr-clusters`;
      for (const v of existsSync(volumes) ? readdirSync(volumes) : []) found.push(`${h.name} volume ${v}`);
    }
    return found.sort();
  };
  const lxcState = async (h: NetHost, container: string) =>
    String((await h.exec('lxc-info', ['-P', `${h.dir}/state/lxc`, '-n', container, '-s'])).stdout)
      .replace(/^State:\s*/, '')
      .trim();
  const byName = (name: string) => f.host(name);
  const k = (h: NetHost, ...argv: string[]) => f.k(h, ...argv);
  const ok = (h: NetHost, ...argv: string[]) => f.ok(h, ...argv);
  const show = async (name: string) =>
    JSON.parse(await ok(hosts[0]!, '--json', 'cluster', 'show', name)) as { status: string; nodes: Node[]; frozen: number; op: string };
  /** The fleet's records a change to a cluster would touch (hosts' liveness and events move by themselves). */
  const records = async () => {
    const store = await connectEtcd([f.etcd.url]);
    try {
      const root = `/knarr/${FLEET}/`;
      const kept = ['clusters/', 'users/', 'subnets/', 'ops/', 'ops-pending/', 'op-claims/', 'placeholders/', 'counters/', 'locks/'];
      return (await store.list(root)).filter((kv) => kept.some((p) => kv.key.startsWith(root + p))).map((kv) => `${kv.key}=${kv.value}`);
    } finally {
      await store.close();
    }
  };
  /** lxc-attach processes into a container, on the machine (netns hosts share its process table). */
  const attachesInto = async (container: string) =>
    String((await execa('ps', ['-eo', 'pid=,args='], { reject: false })).stdout)
      .split('\n')
      .filter((l) => l.includes('lxc-attach') && l.includes(container));

  beforeAll(async () => {
    // The collector every 2 s: a host's leftovers go soon after it is back.
    f = await lxcFleet({ prefix: 'knarr-adv-', fleet: FLEET, hosts: ['xa', 'xb'], bridge: BRIDGE, share: true, agentArgs: ['--collect-every', '2'] });
    hosts = f.hosts;
  }, 300_000);

  afterAll(async () => {
    // At once, each bounded by the harness: one stuck behind a failed test's operation must not keep the teardown from running.
    if (hosts[0]) await Promise.all(['lab', 'again', 'gone', 'late'].map((n) => k(hosts[0]!, 'cluster', 'delete', n)));
    await f?.teardown();
  }, 400_000);

  it('--dry-run create --spread changes nothing on any host', async () => {
    const before = await records();
    const r = await k(hosts[0]!, '--dry-run', 'cluster', 'create', 'lab', '--size', '4', '--spread');
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(await records()).toEqual(before);
    expect(await leftovers()).toEqual([]);
  }, 60_000);

  it('a create spreads four nodes over the two hosts', async () => {
    await ok(hosts[0]!, 'cluster', 'create', 'lab', '--size', '4', '--spread');
    const c = await show('lab');
    expect(c.status).toBe('running');
    expect(c.nodes.map((n) => n.host).sort()).toEqual(['xa', 'xa', 'xb', 'xb']);
  }, 240_000);

  it('--dry-run stop and delete of the cluster change nothing on any host', async () => {
    const before = await records();
    const there = await leftovers();
    for (const verb of ['stop', 'delete', 'suspend']) {
      const r = await k(hosts[0]!, '--dry-run', 'cluster', verb, 'lab');
      expect(r.exitCode, `${verb}: ${String(r.stderr)}`).toBe(0);
      expect(String(r.stdout) + String(r.stderr), verb).toContain('xb');
    }
    expect(await records()).toEqual(before);
    expect(await leftovers()).toEqual(there);
    for (const n of (await show('lab')).nodes) expect(await lxcState(byName(n.host), n.container)).toBe('RUNNING');
  }, 60_000);

  it('cluster exec to a remote node: a missing node, another user, a wrong token, a huge stdin, a command that reads none', async () => {
    const c = await show('lab');
    const far = c.nodes.find((n) => n.host === 'xb')!;
    const missing = await k(hosts[0]!, 'cluster', 'exec', 'lab', '9', '--', 'true');
    expect(missing.exitCode).not.toBe(0);
    expect(String(missing.stderr)).toMatch(/no node 9/);
    const other = await k(hosts[0]!, 'cluster', 'exec', 'lab', String(far.index), '--user', 'bob', '--', 'true');
    expect(other.exitCode).not.toBe(0);
    expect(String(other.stderr)).toMatch(/bob.*lab|lab.*bob/);
    const badFile = `${f.tmp.path}/bad.token`;
    writeFileSync(badFile, 'not-the-token\n', { mode: 0o600 });
    const bad = await hosts[0]!.exec(KNARR, ['--state-dir', `${hosts[0]!.dir}/state`, 'cluster', 'exec', 'lab', String(far.index), '--', 'hostname'], {
      env: { ...hosts[0]!.dockerd.env, ...f.env, KNARR_AGENT_TOKEN_FILE: badFile },
      reject: false,
    });
    expect(bad.exitCode).not.toBe(0);
    expect(String(bad.stdout)).toBe('');
    expect(String(bad.stderr)).toMatch(/xb/);
    expect(String(bad.stderr)).toMatch(/token/i);
    const big = 'y'.repeat(32 * 1024 * 1024);
    const args = ['--state-dir', `${hosts[0]!.dir}/state`, 'cluster', 'exec', '-i', 'lab', String(far.index), '--'];
    const counted = await hosts[0]!.exec(KNARR, [...args, 'wc', '-c'], { env: { ...hosts[0]!.dockerd.env, ...f.env }, input: big, reject: false });
    expect(counted.exitCode, String(counted.stderr)).toBe(0);
    expect(String(counted.stdout).trim()).toBe(String(big.length));
    const t = Date.now();
    const ignored = await hosts[0]!.exec(KNARR, [...args, 'true'], { env: { ...hosts[0]!.dockerd.env, ...f.env }, input: big, reject: false, timeout: 60_000 });
    expect(ignored.exitCode, String(ignored.stderr)).toBe(0);
    console.info(`a remote command that reads none of 32 MiB of stdin ended in ${Date.now() - t} ms`);
    expect(await attachesInto(far.container)).toEqual([]);
  }, 180_000);

  it('ctrl-C on a cluster exec stops the command in the node, on another host or this one: nothing of it is left', async () => {
    const c = await show('lab');
    for (const node of [c.nodes.find((n) => n.host === 'xb')!, c.nodes.find((n) => n.host === 'xa')!])
      for (const interactive of [false, true]) {
        const what = `${node.hostname} on ${node.host}, interactive ${interactive}`;
        const cli = hosts[0]!.spawn(
          KNARR,
          ['--state-dir', `${hosts[0]!.dir}/state`, 'cluster', 'exec', ...(interactive ? ['-i'] : []), 'lab', String(node.index), '--', 'sleep', '300'],
          { env: { ...hosts[0]!.dockerd.env, ...f.env }, reject: false, stdin: 'pipe' },
        );
        await eventually(async () => expect((await attachesInto(node.container)).length, what).toBeGreaterThan(0), 20_000, 100);
        cli.kill('SIGINT');
        const ended = await cli;
        expect(ended.exitCode, what).not.toBe(0);
        await eventually(async () => expect(await attachesInto(node.container), what).toEqual([]), 15_000, 200);
        const sleeping = await k(byName(node.host), 'cluster', 'exec', 'lab', String(node.index), '--', 'sh', '-c', 'ps | grep -c "[s]leep 300" || true');
        expect(String(sleeping.stdout).trim(), what).toBe('0');
      }
  }, 120_000);

  it('cluster exec into a suspended node is refused at once with the way out, not left hanging in the freezer', async () => {
    const far = (await show('lab')).nodes.find((n) => n.host === 'xb')!;
    await ok(hosts[0]!, 'cluster', 'suspend', 'lab', String(far.index));
    try {
      const r = await hosts[0]!.exec(KNARR, ['--state-dir', `${hosts[0]!.dir}/state`, 'cluster', 'exec', 'lab', String(far.index), '--', 'hostname'], {
        env: { ...hosts[0]!.dockerd.env, ...f.env },
        reject: false,
        timeout: 20_000,
      });
      expect(r.timedOut, 'the exec hung on the frozen node').toBe(false);
      expect(r.exitCode).toBe(4);
      expect(String(r.stderr)).toMatch(/suspended/);
      expect(String(r.stderr)).toContain(`knarr cluster resume lab ${far.index}`);
    } finally {
      await ok(hosts[0]!, 'cluster', 'resume', 'lab', String(far.index));
    }
    expect(await attachesInto(far.container)).toEqual([]);
  }, 120_000);

  it('stop from one host and suspend from the other at once: one waits or is refused, and the record stays true', async () => {
    for (let round = 0; round < 2; round++) {
      const [stop, suspend] = await Promise.all([k(hosts[0]!, 'cluster', 'stop', 'lab'), k(hosts[1]!, 'cluster', 'suspend', 'lab')]);
      expect(stop.exitCode === 0 || suspend.exitCode === 0, `${String(stop.stderr)} ${String(suspend.stderr)}`).toBe(true);
      const c = await show('lab');
      if (stop.exitCode === 0) {
        // Stopped last (or alone): no node frozen, every container stopped.
        expect(c.status).toBe('stopped');
        expect(c.frozen).toBe(0);
        for (const n of c.nodes) expect(await lxcState(byName(n.host), n.container), n.container).toBe('STOPPED');
      } else {
        expect(c.status).toBe('running');
        expect(c.frozen).toBe(4);
        for (const n of c.nodes) expect(await lxcState(byName(n.host), n.container), n.container).toBe('FROZEN');
        await ok(hosts[0]!, 'cluster', 'stop', 'lab');
      }
      await ok(hosts[1]!, 'cluster', 'start', 'lab');
      const again = await show('lab');
      expect(again.status).toBe('running');
      expect(again.frozen).toBe(0);
    }
  }, 300_000);

  it("a stop of the whole cluster and a suspend of a node on the other host (its own host's queue) at once: the record stays true", async () => {
    const far = (await show('lab')).nodes.find((n) => n.host === 'xb')!;
    for (let round = 0; round < 2; round++) {
      const [stop, suspend] = await Promise.all([k(hosts[0]!, 'cluster', 'stop', 'lab'), k(hosts[1]!, 'cluster', 'suspend', 'lab', String(far.index))]);
      expect(stop.exitCode === 0 || suspend.exitCode === 0, `${String(stop.stderr)} ${String(suspend.stderr)}`).toBe(true);
      const c = await show('lab');
      if (stop.exitCode === 0) {
        expect(c.status, String(suspend.stderr)).toBe('stopped');
        expect(c.frozen, String(suspend.stderr)).toBe(0);
        for (const n of c.nodes) expect(await lxcState(byName(n.host), n.container), n.container).toBe('STOPPED');
        await ok(hosts[1]!, 'cluster', 'start', 'lab');
      } else {
        // The stop was refused: the suspend ran alone.
        expect(String(stop.stderr)).toMatch(/cluster\.suspend/);
        expect(c.status).toBe('running');
        expect(c.nodes.filter((n) => n.frozen).map((n) => n.container)).toEqual([far.container]);
        for (const n of c.nodes)
          expect(await lxcState(byName(n.host), n.container), n.container).toBe(n === c.nodes.find((x) => x.index === far.index) ? 'FROZEN' : 'RUNNING');
        await ok(hosts[1]!, 'cluster', 'resume', 'lab', String(far.index));
      }
    }
  }, 300_000);

  it("scale out with a node's host down is refused, naming the host, and changes nothing (it would wait for that host)", async () => {
    await killAgent(hosts[1]!);
    await eventually(async () => expect(await upHosts()).toEqual(['xa']), 30_000);
    try {
      const before = await show('lab');
      const r = await hosts[0]!.exec(KNARR, ['--state-dir', `${hosts[0]!.dir}/state`, 'cluster', 'scale', 'lab', '--size', '6'], {
        env: { ...hosts[0]!.dockerd.env, ...f.env },
        reject: false,
        timeout: 45_000,
      });
      expect(r.timedOut, 'the scale waited for the host that is down').toBe(false);
      expect(r.exitCode).not.toBe(0);
      expect(String(r.stderr)).toMatch(/xb.*down|down.*xb/);
      const after = await show('lab');
      expect(after.nodes.map((n) => [n.container, n.host])).toEqual(before.nodes.map((n) => [n.container, n.host]));
      expect(after.status).toBe('running');
      expect((await leftovers()).filter((l) => l.startsWith('xa ')).length).toBe(4);
    } finally {
      startAgent(hosts[1]!);
      await eventually(async () => expect(await upHosts()).toEqual(['xa', 'xb']), 30_000);
    }
  }, 180_000);

  it("stop and suspend with a node's host down are refused, naming the host, and change nothing", async () => {
    await killAgent(hosts[1]!);
    await eventually(async () => expect(await upHosts()).toEqual(['xa']), 30_000);
    try {
      const before = await show('lab');
      for (const verb of ['stop', 'suspend']) {
        const r = await k(hosts[0]!, 'cluster', verb, 'lab');
        expect(r.exitCode, verb).not.toBe(0);
        expect(String(r.stderr), verb).toMatch(/xb/);
        expect(String(r.stderr), verb).toMatch(/down/);
      }
      const after = await show('lab');
      expect(after.status).toBe('running');
      expect(after.frozen).toBe(0);
      for (const n of before.nodes) expect(await lxcState(byName(n.host), n.container), n.container).toBe('RUNNING');
    } finally {
      startAgent(hosts[1]!);
      await eventually(async () => expect(await upHosts()).toEqual(['xa', 'xb']), 30_000);
    }
  }, 120_000);

  it("delete with a node's host down: the record goes, and that host's collector removes its nodes when its agent is back", async () => {
    await killAgent(hosts[1]!);
    await eventually(async () => expect(await upHosts()).toEqual(['xa']), 30_000);
    await ok(hosts[0]!, 'cluster', 'delete', 'lab');
    expect((JSON.parse(await ok(hosts[0]!, '--json', 'cluster', 'list')) as unknown[]).length).toBe(0);
    expect((await leftovers()).filter((l) => l.startsWith('xa '))).toEqual([]);
    expect((await leftovers()).filter((l) => l.startsWith('xb ')).length).toBeGreaterThan(0);
    startAgent(hosts[1]!);
    await eventually(async () => expect(await upHosts()).toEqual(['xa', 'xb']), 30_000);
    await eventually(async () => expect(await leftovers()).toEqual([]), 60_000, 1000);
  }, 180_000);

  /** A create of eight nodes over the two hosts, detached, once the other host's part runs (watched in etcd, not through the CLI: a part is quick). */
  const createUntilPartRuns = async (name: string) => {
    const r = await k(hosts[0]!, '--json', 'cluster', 'create', name, '--size', '8', '--spread', '--detach');
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const op = (JSON.parse(String(r.stdout)) as { id: string }).id;
    const ops = new OpRepo(f.store, FLEET);
    await eventually(
      async () => {
        const child = (await ops.get(op))?.children[0];
        expect(child).toBeDefined();
        expect(await ops.get(child!)).toMatchObject({ status: 'running', host: 'xb' });
      },
      30_000,
      10,
    );
    return op;
  };

  /** The same, the other host's agent killed once its part runs. */
  const createAndKillPart = async (name: string) => {
    const op = await createUntilPartRuns(name);
    await killAgent(hosts[1]!);
    return op;
  };

  it("the other host's agent killed mid-create: the parent waits, and when it is back the create completes", async () => {
    const base = await leftovers();
    const op = await createAndKillPart('again');
    await new Promise((r) => setTimeout(r, 4000));
    expect((JSON.parse(await ok(hosts[0]!, '--json', 'op', 'show', op)) as { status: string }).status).toBe('running');
    startAgent(hosts[1]!);
    const waited = await k(hosts[0]!, '--json', 'op', 'wait', op, '--timeout', '120');
    expect(waited.exitCode, String(waited.stderr)).toBe(0);
    const c = await show('again');
    expect(c.status).toBe('running');
    expect(c.nodes.map((n) => n.state)).toEqual(Array(8).fill('RUNNING'));
    const added = async () => (await leftovers()).filter((l) => !base.includes(l));
    expect(await added()).toEqual(c.nodes.flatMap((n) => [`${n.host} ${n.container}`, `${n.host} volume ${n.container}`]).sort());
    await ok(hosts[0]!, 'cluster', 'delete', 'again');
    expect(await added()).toEqual([]);
  }, 300_000);

  it("the other host's agent killed mid-create, then the create cancelled: it ends without that host, which cleans up when back", async () => {
    await eventually(async () => expect(await upHosts()).toEqual(['xa', 'xb']), 30_000);
    const base = await leftovers();
    const added = async () => (await leftovers()).filter((l) => !base.includes(l));
    const op = await createAndKillPart('gone');
    await eventually(async () => expect(await upHosts()).toEqual(['xa']), 30_000);
    const cancelled = await k(hosts[0]!, '--json', 'op', 'cancel', op);
    expect(cancelled.exitCode, String(cancelled.stderr)).toBe(0);
    // The parent does not wait for a host that is down: op cancel is the way out.
    const waited = await k(hosts[0]!, '--json', 'op', 'wait', op, '--timeout', '30');
    expect(waited.exitCode, String(waited.stderr)).toBe(1);
    expect(JSON.parse(await ok(hosts[0]!, '--json', 'op', 'show', op)), String(waited.stderr)).toMatchObject({ status: 'cancelled' });
    expect((await added()).filter((l) => l.startsWith('xa '))).toEqual([]);
    expect((JSON.parse(await ok(hosts[0]!, '--json', 'cluster', 'list')) as { name: string }[]).map((c) => c.name)).not.toContain('gone');
    const store = await connectEtcd([f.etcd.url]);
    try {
      expect(await store.list(`/knarr/${FLEET}/users/alice/addresses/`)).toEqual([]);
      expect(await store.list(`/knarr/${FLEET}/placeholders/`)).toEqual([]);
    } finally {
      await store.close();
    }
    startAgent(hosts[1]!);
    await eventually(async () => expect(await added()).toEqual([]), 60_000, 1000);
    const part = JSON.parse(await ok(hosts[0]!, '--json', 'op', 'show', op)) as { children: string[] };
    await eventually(async () => {
      const child = JSON.parse(await ok(hosts[0]!, '--json', 'op', 'show', part.children[0]!)) as { status: string };
      expect(['cancelled', 'failed', 'done']).toContain(child.status);
    }, 30_000);
  }, 300_000);
  it("the other host's part done, then that host down, then the create cancelled: the undo does not wait for it, and it cleans up when back", async () => {
    await eventually(async () => expect(await upHosts()).toEqual(['xa', 'xb']), 30_000);
    const base = await leftovers();
    const added = async () => (await leftovers()).filter((l) => !base.includes(l));
    const op = await createUntilPartRuns('late');
    const store = await connectEtcd([f.etcd.url]);
    const home = f.agent(hosts[0]!)!.pid!;
    try {
      const ops = new OpRepo(store, FLEET);
      // The home agent held while its own nodes are made; the other host's part goes on to its end.
      process.kill(home, 'SIGSTOP');
      try {
        await eventually(async () => expect(await ops.get((await ops.get(op))!.children[0]!)).toMatchObject({ status: 'done' }), 60_000, 100);
        await killAgent(hosts[1]!);
        await eventually(async () => expect(await upHosts()).toEqual([]), 30_000);
        // The cancel is asked while the home agent is held (it keeps the operation's lock: nobody else may run it).
        const asked = await k(hosts[0]!, '--json', 'op', 'cancel', op);
        expect(asked.exitCode, String(asked.stderr)).toBe(0);
      } finally {
        process.kill(home, 'SIGCONT');
      }
      // Let go, the home agent undoes the create without waiting for xb, which is down.
      const t = Date.now();
      const waited = await k(hosts[0]!, '--json', 'op', 'wait', op, '--timeout', '60');
      expect(JSON.parse(await ok(hosts[0]!, '--json', 'op', 'show', op)), String(waited.stderr)).toMatchObject({ status: 'cancelled' });
      console.info(`cancel with the other host's done part on a down host ended ${Date.now() - t} ms after the home agent was let go`);
      await eventually(async () => expect(await f.upHosts()).toEqual(['xa']), 30_000);
      const clusters = JSON.parse(await ok(hosts[0]!, '--json', 'cluster', 'list')) as { name: string; nodes: { container: string }[] }[];
      expect(clusters.map((c) => c.name)).not.toContain('late');
      // Every address still held is a node's of a cluster that exists: none of the cancelled create's.
      const held = (await store.list(`/knarr/${FLEET}/users/alice/addresses/`)).map((kv) => kv.value).sort();
      expect(held).toEqual(clusters.flatMap((c) => c.nodes.map((n) => n.container)).sort());
    } finally {
      await store.close();
    }
    // The other host back: its collector removes what its part made; the home host's, what the held agent may have made after.
    startAgent(hosts[1]!);
    await eventually(async () => expect(await added()).toEqual([]), 90_000, 1000);
  }, 300_000);
});
