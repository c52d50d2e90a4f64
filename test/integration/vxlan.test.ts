import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveNetns, makeFabric, type Fabric, type NetHost } from '../harness/netns.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('VXLAN between hosts', haveNetns() && haveTools('bridge', 'nft'), 'needs root, iproute2, nftables, dockerd and busybox-static');
const dist = resolve('dist');
const KNARR = resolve('bin/knarr');
const BRIDGE = 'kvxbr0';
const NET = '10.250.7';
const GATEWAY = `${NET}.1`;

/**
 * Three netns hosts, each with a cluster bridge and a "node" (a netns on a veth in the bridge) on
 * one /24: knarr's VXLAN device and flood entries make them one layer-2 network, and each host's
 * gateway stays its own.
 */
describe.skipIf(!run)('VXLAN: one network for the nodes of three hosts', () => {
  let tmp: TempDir;
  let fabric: Fabric;
  let hosts: NetHost[];
  let etcd: EtcdInstance | undefined;
  const agents: ResultPromise[] = [];
  const nodeNs = (h: NetHost) => `${fabric.tag}-${h.name}-n`;
  const nodeIp = (i: number) => `${NET}.${10 + i}`;
  const inNode = (h: NetHost, ...argv: string[]) => execa('ip', ['netns', 'exec', nodeNs(h), ...argv], { reject: false });
  /** One reply out of three tries: the first packet after a link change may go before ARP settles. */
  const ping = async (h: NetHost, ip: string) => {
    for (let i = 0; i < 3; i++) if ((await inNode(h, 'busybox', 'ping', '-c', '1', '-W', '1', ip)).exitCode === 0) return true;
    return false;
  };
  /** Calls src/host/vxlan.ts (built) inside the host's netns, as its agent would. */
  const call = async (h: NetHost, fn: 'ensureVxlan' | 'syncFloodPeers' | 'floodPeers' | 'dropVxlan', ...args: unknown[]) => {
    const script = `
      const { Runner } = await import(${JSON.stringify(`${dist}/host/runner.js`)});
      const vx = await import(${JSON.stringify(`${dist}/host/vxlan.js`)});
      const runner = new Runner({ dryRun: false, verbose: false, env: process.env, log: () => {} });
      const out = await vx[${JSON.stringify(fn)}](runner, ...${JSON.stringify(args)});
      process.stdout.write(JSON.stringify(out ?? null));`;
    const r = await h.exec(process.execPath, ['--input-type=module', '-e', script], { reject: false });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    return JSON.parse(String(r.stdout)) as unknown;
  };
  /** Flood entries on h for every host of the fabric (its own left out, as an agent does). */
  const syncAll = (h: NetHost) =>
    call(
      h,
      'syncFloodPeers',
      BRIDGE,
      hosts.map((x) => x.ip),
      h.ip,
    );
  const othersOf = (h: NetHost) =>
    hosts
      .filter((x) => x !== h)
      .map((x) => x.ip)
      .sort();
  const everyNodePingsEveryOther = async () => {
    for (const [i, h] of hosts.entries())
      for (const [j] of hosts.entries()) if (i !== j) expect(await ping(h, nodeIp(j)), `${h.name} -> ${nodeIp(j)}`).toBe(true);
  };
  const spec = (h: NetHost, vni = 7946) => ({ bridge: BRIDGE, vni, port: 4789, local: h.ip, gateways: [GATEWAY] });
  // ip, not /sys: the hosts share the root namespace's sysfs.
  const bridgeMac = async (h: NetHost) =>
    (JSON.parse(String((await h.exec('ip', ['-j', 'link', 'show', 'dev', BRIDGE])).stdout)) as { address: string }[])[0]!.address;
  /** The MACs that answer an ARP request for ip from h's node. */
  const arpRepliers = async (h: NetHost, ip: string) => {
    const r = await inNode(h, 'busybox', 'arping', '-c', '3', '-w', '3', '-I', 'eth0', ip);
    return [...new Set([...String(r.stdout).matchAll(/\[([0-9a-f:]{17})\]/gi)].map((m) => m[1]!.toLowerCase()))].sort();
  };

  beforeAll(async () => {
    tmp = await tempDir('knarr-vxlan-');
    fabric = await makeFabric(tmp.path);
    hosts = await Promise.all(['va', 'vb', 'vc'].map((n) => fabric.addHost(n)));
    for (const [i, h] of hosts.entries()) {
      const sh = (...argv: string[]) => h.exec(argv[0]!, argv.slice(1));
      await sh('ip', 'link', 'add', BRIDGE, 'type', 'bridge');
      await sh('ip', 'addr', 'add', `${GATEWAY}/24`, 'dev', BRIDGE);
      await sh('ip', 'link', 'set', BRIDGE, 'up');
      await execa('ip', ['netns', 'add', nodeNs(h)]);
      await sh('ip', 'link', 'add', 'node0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', nodeNs(h));
      await sh('ip', 'link', 'set', 'node0', 'master', BRIDGE, 'up');
      for (const argv of [
        ['ip', 'link', 'set', 'lo', 'up'],
        ['ip', 'link', 'set', 'eth0', 'mtu', '1450', 'up'],
        ['ip', 'addr', 'add', `${nodeIp(i)}/24`, 'dev', 'eth0'],
      ])
        await execa('ip', ['netns', 'exec', nodeNs(h), ...argv]);
    }
  }, 180_000);

  afterAll(async () => {
    for (const a of agents) a.kill('SIGKILL');
    await Promise.all(agents);
    await etcd?.stop();
    for (const h of hosts ?? []) await execa('ip', ['netns', 'del', nodeNs(h)], { reject: false });
    await fabric?.teardown();
    await tmp?.cleanup();
  }, 120_000);

  it('without VXLAN the nodes of different hosts do not reach each other', async () => {
    expect(await ping(hosts[0]!, nodeIp(1))).toBe(false);
    expect(await ping(hosts[0]!, GATEWAY)).toBe(true);
  }, 30_000);

  it('with the device and flood entries on each host, every node pings every other; a second pass changes nothing', async () => {
    for (const h of hosts) {
      expect(await call(h, 'ensureVxlan', spec(h))).toBe('made');
      expect(await syncAll(h)).toEqual({
        add: othersOf(h),
        remove: [],
      });
    }
    await everyNodePingsEveryOther();
    for (const h of hosts) {
      expect(await call(h, 'ensureVxlan', spec(h))).toBe('kept');
      expect(await syncAll(h)).toEqual({ add: [], remove: [] });
    }
    // A full-size packet for the nodes' MTU crosses whole (1450 less 28 bytes of IP and ICMP headers).
    expect((await inNode(hosts[0]!, 'busybox', 'ping', '-c', '1', '-W', '2', '-s', '1422', nodeIp(2))).exitCode).toBe(0);
  }, 60_000);

  it("each node's gateway is its own host's bridge: ARP about the gateway does not cross", async () => {
    for (const h of hosts) expect(await arpRepliers(h, GATEWAY), h.name).toEqual([await bridgeMac(h)]);
    // The guard is what keeps it so: without it, every host's bridge answers.
    for (const h of hosts) await h.exec('nft', ['delete', 'table', 'bridge', 'knarr_kvxbr0vx']);
    expect((await arpRepliers(hosts[0]!, GATEWAY)).length).toBeGreaterThan(1);
    for (const h of hosts) await call(h, 'ensureVxlan', spec(h));
    expect(await arpRepliers(hosts[0]!, GATEWAY)).toEqual([await bridgeMac(hosts[0]!)]);
  }, 60_000);

  it('a host gone from the records loses its flood entry; a device of another VNI is made again', async () => {
    const [a, b, c] = hosts as [NetHost, NetHost, NetHost];
    expect(await call(a, 'syncFloodPeers', BRIDGE, [a.ip, b.ip], a.ip)).toEqual({ add: [], remove: [c.ip] });
    expect(await call(a, 'floodPeers', BRIDGE)).toEqual([b.ip]);
    expect(await ping(a, nodeIp(1))).toBe(true);
    expect(await call(a, 'ensureVxlan', spec(a, 7947))).toBe('remade');
    // Remade empty: the flood entries come back with the next sync.
    expect(await call(a, 'floodPeers', BRIDGE)).toEqual([]);
    expect(await call(a, 'ensureVxlan', spec(a))).toBe('remade');
    await call(
      a,
      'syncFloodPeers',
      BRIDGE,
      hosts.map((x) => x.ip),
      a.ip,
    );
    expect(await ping(a, nodeIp(2))).toBe(true);
  }, 60_000);

  it('drop takes the device and its guard away, and is safe to repeat', async () => {
    const a = hosts[0]!;
    await call(a, 'dropVxlan', BRIDGE);
    await call(a, 'dropVxlan', BRIDGE);
    expect((await a.exec('ip', ['link', 'show', 'kvxbr0vx'], { reject: false })).exitCode).not.toBe(0);
    expect(String((await a.exec('nft', ['list', 'tables'])).stdout)).not.toContain('knarr_kvxbr0vx');
    expect(await ping(a, nodeIp(1))).toBe(false);
  }, 60_000);

  it("the agents keep it so from the fleet's records: each publishes its endpoint, and a host that leaves loses its flood entries", async () => {
    for (const h of hosts) await call(h, 'dropVxlan', BRIDGE);
    etcd = await startEtcd(fabric.gateway);
    const tokenFile = `${tmp.path}/agent.token`;
    writeFileSync(tokenFile, 'vxlan-test-token\n', { mode: 0o600 });
    const env = { KNARR_ETCD: etcd.url, KNARR_CLUSTER_BRIDGE: BRIDGE, KNARR_AGENT_TOKEN_FILE: tokenFile, KNARR_STATE_DIR: `${tmp.path}/cli` };
    for (const h of hosts)
      agents.push(
        h.spawn(KNARR, ['--state-dir', `${tmp.path}/${h.name}-state`, 'daemon', '--name', h.name, '--listen', `${h.ip}:7946`, '--ttl', '2'], {
          env: { ...h.dockerd.env, ...env },
          reject: false,
          stdio: ['ignore', 'ignore', 'pipe'],
        }),
      );
    const knarr = (...argv: string[]) => execa(KNARR, argv, { env, reject: false });
    await eventually(async () => {
      for (const h of hosts) expect(await call(h, 'floodPeers', BRIDGE), h.name).toEqual(othersOf(h));
    }, 30_000);
    const shown = JSON.parse(String((await knarr('--json', 'host', 'show', 'va')).stdout)) as { vtep?: unknown };
    expect(shown.vtep).toEqual({ ip: hosts[0]!.ip, vni: 7946, port: 4789 });
    await everyNodePingsEveryOther();
    expect(await arpRepliers(hosts[1]!, GATEWAY)).toEqual([await bridgeMac(hosts[1]!)]);

    agents[2]!.kill('SIGKILL');
    const left = await knarr('host', 'leave', 'vc', '--force');
    expect(left.exitCode, String(left.stderr)).toBe(0);
    await eventually(async () => {
      for (const h of hosts.slice(0, 2))
        expect(await call(h, 'floodPeers', BRIDGE), h.name).toEqual(hosts.filter((x) => x !== h && x.name !== 'vc').map((x) => x.ip));
    }, 15_000);
    expect(await ping(hosts[0]!, nodeIp(1))).toBe(true);
  }, 120_000);
});
