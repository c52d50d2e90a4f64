import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Result, ResultPromise } from 'execa';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { startEtcd, type EtcdInstance } from './etcd.js';
import { eventually } from './eventually.js';
import { pickNetwork } from './net.js';
import { makeFabric, withNetnsSysfs, type Fabric, type NetHost } from './netns.js';
import { tempDir, type TempDir } from './tmp.js';

const KNARR = resolve('bin/knarr');
/** No command of a test waits longer: one stuck behind a failed test's operation must not keep the teardown from running. */
const COMMAND_TIMEOUT_MS = 120_000;

export interface LxcFleetOptions {
  /** Temp dir prefix, e.g. knarr-migrate-. */
  prefix: string;
  fleet: string;
  /** The hosts' names (short: they name netns and veths). */
  hosts: string[];
  /** The clusters' bridge on every host (unique per test file: files run side by side). */
  bridge: string;
  /** Agents with --share DIR (one directory all hosts see, as an NFS mount would be). */
  share?: boolean;
  /** The nodes' pool on each host: a directory, or btrfs on a loop file. */
  driver?: 'dir' | 'btrfs';
  user?: string;
  /** More flags for every agent, e.g. --collect-every 2. */
  agentArgs?: string[];
}

/** Netns hosts, each with a pool "nodes", the image "base" and an agent, on one private etcd: a fleet for real LXC clusters. */
export interface LxcFleet {
  tmp: TempDir;
  fabric: Fabric;
  etcd: EtcdInstance;
  store: Store;
  hosts: NetHost[];
  /** The environment every knarr command and agent runs with (etcd, fleet, network, bridge, user, token). */
  env: Record<string, string>;
  /** The shared directory the agents were given, or null. */
  share: string | null;
  host(name: string): NetHost;
  /** A knarr command on a host; never throws. */
  k(h: NetHost, ...argv: string[]): Promise<Result>;
  /** A knarr command on a host that must succeed: its stdout. */
  ok(h: NetHost, ...argv: string[]): Promise<string>;
  /** Starts a host's agent (again); extra flags after the usual ones. */
  startAgent(h: NetHost, extra?: string[]): ResultPromise;
  /** A host's agent process, as started last. */
  agent(h: NetHost): ResultPromise | undefined;
  /** SIGKILLs a host's agent and waits for it to end. */
  killAgent(h: NetHost): Promise<void>;
  /** The hosts whose agent is up, sorted. */
  upHosts(): Promise<string[]>;
  /** The containers under a host's LXC path, sorted. */
  lxcNames(h: NetHost): Promise<string[]>;
  /** Kills the agents, stops every node, and removes the hosts, etcd and the temp dir; safe after a half-made fleet. */
  teardown(): Promise<void>;
}

export async function lxcFleet(opts: LxcFleetOptions): Promise<LxcFleet> {
  const tmp = await tempDir(opts.prefix);
  const agents = new Map<string, ResultPromise>();
  const parts: { fabric?: Fabric; etcd?: EtcdInstance; store?: Store } = {};
  let env: Record<string, string> = {};
  const share = opts.share ? `${tmp.path}/share` : null;
  const k = (h: NetHost, ...argv: string[]) =>
    h.exec(KNARR, ['--state-dir', `${h.dir}/state`, ...argv], {
      env: { ...h.dockerd.env, ...env },
      reject: false,
      timeout: COMMAND_TIMEOUT_MS,
    }) as Promise<Result>;
  const ok = async (h: NetHost, ...argv: string[]) => {
    const r = await k(h, ...argv);
    if (r.exitCode !== 0) throw new Error(`knarr ${argv.join(' ')} on ${h.name} exited ${r.exitCode}: ${String(r.stderr)}`);
    return String(r.stdout);
  };
  const lxcNames = async (h: NetHost) =>
    String((await h.exec('lxc-ls', ['-P', `${h.dir}/state/lxc`, '-1'], { reject: false })).stdout)
      .split('\n')
      .filter(Boolean)
      .sort();
  const startAgent = (h: NetHost, extra: string[] = []) => {
    // The agent runs the cluster operations, so LXC: it needs the host's own /sys.
    const argv = [
      '--state-dir',
      `${h.dir}/state`,
      'daemon',
      '--name',
      h.name,
      '--listen',
      `${h.ip}:7946`,
      '--ttl',
      '2',
      ...(share ? ['--share', share] : []),
      ...(opts.agentArgs ?? []),
      ...extra,
    ];
    const a = h.spawn(...withNetnsSysfs(KNARR, argv), { env: { ...h.dockerd.env, ...env }, reject: false, stdio: ['ignore', 'ignore', 'pipe'] });
    agents.set(h.name, a);
    return a;
  };
  const killAgent = async (h: NetHost) => {
    const a = agents.get(h.name);
    agents.delete(h.name);
    a?.kill('SIGKILL');
    await a;
  };
  const teardown = async () => {
    for (const a of agents.values()) a.kill('SIGKILL');
    const ended = await Promise.all(agents.values());
    if (process.env.KNARR_TEST_AGENT_LOGS) for (const e of ended) console.warn(String(e.stderr));
    for (const h of parts.fabric?.hosts ?? []) {
      for (const n of await lxcNames(h)) {
        await h.exec('lxc-unfreeze', ['-P', `${h.dir}/state/lxc`, '-n', n], { reject: false });
        await h.exec('lxc-stop', ['-P', `${h.dir}/state/lxc`, '-n', n, '-k'], { reject: false });
      }
      // A btrfs pool's loop mount goes with the pool.
      if (opts.driver === 'btrfs') await k(h, 'pool', 'destroy', 'nodes', '--yes', '--force');
    }
    await parts.store?.close();
    await parts.fabric?.teardown();
    await parts.etcd?.stop();
    await tmp.cleanup();
  };
  try {
    const fabric = (parts.fabric = await makeFabric(tmp.path));
    const etcd = (parts.etcd = await startEtcd(fabric.gateway));
    const store = (parts.store = await connectEtcd([etcd.url]));
    const hosts = await Promise.all(opts.hosts.map((n) => fabric.addHost(n)));
    if (share) mkdirSync(share);
    const tokenFile = `${tmp.path}/agent.token`;
    writeFileSync(tokenFile, `${opts.fleet}-fleet-agents-test-token\n`, { mode: 0o600 });
    env = {
      KNARR_ETCD: etcd.url,
      KNARR_FLEET: opts.fleet,
      KNARR_CLUSTER_NETWORK: await pickNetwork(),
      KNARR_CLUSTER_BRIDGE: opts.bridge,
      KNARR_USER: opts.user ?? 'alice',
      KNARR_AGENT_TOKEN_FILE: tokenFile,
      KNARR_DAEMON_TOKEN_FILE: tokenFile,
    };
    const driver = opts.driver ?? 'dir';
    for (const h of hosts) {
      await ok(h, 'pool', 'init', '--name', 'nodes', '--driver', driver, ...(driver === 'btrfs' ? ['--loop-file', `${h.dir}/nodes.img`, '--size', '1G'] : []));
      await ok(h, 'image', 'import', 'base', '--busybox');
      startAgent(h);
    }
    const upHosts = async () =>
      (JSON.parse(await ok(hosts[0]!, '--json', 'host', 'list')) as { name: string; up: boolean; join?: string }[])
        .filter((h) => h.up && (h.join === undefined || h.join === 'ok'))
        .map((h) => h.name)
        .sort();
    const all = [...opts.hosts].sort();
    await eventually(async () => {
      const up = await upHosts();
      if (JSON.stringify(up) !== JSON.stringify(all)) throw new Error(`hosts up: ${up.join(', ')}; waiting for ${all.join(', ')}`);
    }, 30_000);
    return {
      tmp,
      fabric,
      etcd,
      store,
      hosts,
      env,
      share,
      host: (name) => hosts.find((h) => h.name === name)!,
      k,
      ok,
      startAgent,
      agent: (h) => agents.get(h.name),
      killAgent,
      upHosts,
      lxcNames,
      teardown,
    };
  } catch (e) {
    await teardown();
    throw e;
  }
}
