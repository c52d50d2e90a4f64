import { mkdirSync, writeFileSync } from 'node:fs';
import { execa, type Options, type Result, type ResultPromise } from 'execa';
import { busyboxTar, launchDockerd, type Dockerd } from './dockerd.js';
import { kernelMounts } from './mounts.js';
import { pickSubnet, pickTag } from './net.js';
import { haveTools } from './tools.js';

/**
 * Simulated fleet hosts on one machine: each host is a network namespace (its own eth0 and IP on
 * a private bridge) plus a UTS namespace (its own hostname), with its own dockerd inside. Hosts
 * share the machine's mount namespace, so paths, pools and mounts look the same everywhere.
 */

export interface NetHost {
  /** Also the hostname that processes and --network host containers on this host see. */
  name: string;
  /** dir/name: this host's dockerd and anything else private to it (state dirs, logs). */
  dir: string;
  /** The network namespace, as `ip netns list` shows it. */
  ns: string;
  ip: string;
  dockerd: Dockerd;
  /** Runs file inside this host's namespaces; DOCKER_HOST points at this host's dockerd. */
  spawn<O extends Options = Record<never, never>>(file: string, args?: readonly string[], opts?: O): ResultPromise<O>;
  exec<O extends Options = Record<never, never>>(file: string, args?: readonly string[], opts?: O): Promise<Result<O>>;
  stopDocker(): Promise<void>;
  teardown(): Promise<void>;
}

export interface Fabric {
  /** Prefix of every bridge, veth and netns name this fabric creates. */
  tag: string;
  bridge: string;
  /** e.g. 10.37.201.0/24 */
  subnet: string;
  /** The bridge's address in the root namespace: where hosts reach the machine (etcd, ...). */
  gateway: string;
  hosts: NetHost[];
  addHost(name: string): Promise<NetHost>;
  teardown(): Promise<void>;
}

export const haveNetns = () => process.getuid?.() === 0 && haveTools('ip', 'nsenter', 'unshare', 'dockerd', 'docker', 'busybox');

/**
 * file and args as a host's spawn or exec runs them, in a mount namespace of their own whose /sys is the
 * host's network namespace's: the shared one lists the root namespace's links, and LXC looks for a
 * bridge there. The machine's cgroup hierarchies are mounted back over it; mounts made inside stay inside.
 */
export function withNetnsSysfs(file: string, args: readonly string[]): [string, string[]] {
  const keep = '/run/knarr-netns-cgroup';
  const script = `mkdir -p ${keep} && mount --rbind /sys/fs/cgroup ${keep} && mount -t sysfs sysfs /sys && mount --rbind ${keep} /sys/fs/cgroup && exec "$@"`;
  return ['unshare', ['--mount', '--propagation', 'slave', 'sh', '-c', script, 'sh', file, ...args]];
}

/** What teardown needs of a spawned subprocess: stop it and see it end. */
type Running = { kill(signal?: NodeJS.Signals): boolean } & Promise<unknown>;

const ip = (...args: string[]) => execa('ip', args);
const ipQuiet = (...args: string[]) => execa('ip', args, { reject: false });

/** Mounts under dir in reverse mount order (children first), lazily. */
async function unmountUnder(dir: string): Promise<void> {
  for (const t of kernelMounts()
    .map((m) => m.target)
    .filter((t) => t.startsWith(`${dir}/`))
    .reverse())
    await execa('umount', ['-l', t], { reject: false });
}

/** pids still in a netns, as the kernel sees them (`ip netns pids`). */
async function nsPids(ns: string): Promise<number[]> {
  const r = await ipQuiet('netns', 'pids', ns);
  return r.exitCode === 0 ? r.stdout.split('\n').filter(Boolean).map(Number) : [];
}

/**
 * Creates a bridge on a fresh private /24 with the gateway (.1) address in the root namespace.
 * Hosts come from addHost(); teardown() removes everything, whatever state a failed test left.
 */
export async function makeFabric(dir: string): Promise<Fabric> {
  const tag = await pickTag();
  const bridge = `${tag}br`;
  const net = await pickSubnet();
  const gateway = `${net}.1`;
  const hosts: NetHost[] = [];
  const teardowns: Array<() => Promise<void>> = [];
  let nextIndex = 2;
  let tar: Promise<string> | undefined;
  let forwardRule: string[] | null = null;
  let closed = false;
  const pending = new Set<Promise<unknown>>();

  const fabric: Fabric = {
    tag,
    bridge,
    subnet: `${net}.0/24`,
    gateway,
    hosts,
    async addHost(name) {
      if (closed) throw new Error('fabric is torn down');
      if (!/^[a-z][a-z0-9-]{0,30}$/.test(name)) throw new Error(`host name ${JSON.stringify(name)}: use a-z, 0-9 and -`);
      if (hosts.some((h) => h.name === name) || teardowns.length >= 253) throw new Error(`host ${name} exists or the /24 is full`);
      const index = nextIndex++;
      const hostDir = `${dir}/${name}`;
      const ns = `${tag}-${name}`;
      const veth = `${tag}v${index}`;
      const uts = `${hostDir}/uts`;
      const nsArgs = [`--net=/run/netns/${ns}`, `--uts=${uts}`];
      const spawned = new Set<Running>();
      let dockerd: Dockerd | undefined;
      let torn = false;

      // Registered before anything exists so a half-built host is torn down too; safe to repeat.
      const teardown = async () => {
        torn = true;
        for (const p of spawned) p.kill('SIGTERM');
        await Promise.all([...spawned].map((p) => Promise.race([p.catch(() => undefined), new Promise((r) => setTimeout(r, 5_000))])));
        if (dockerd) await dockerd.stop().catch(() => undefined);
        // Whatever is still in the netns (a shim, a container, a stray child) would keep it alive.
        for (let i = 0; i < 50; i++) {
          const pids = await nsPids(ns);
          if (!pids.length) break;
          for (const pid of pids) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              /* gone already */
            }
          }
          await new Promise((r) => setTimeout(r, 100));
        }
        // dockerd's exec-root bind-mounts the netns, and the UTS namespace is a bind mount too.
        await unmountUnder(hostDir);
        await ipQuiet('netns', 'del', ns);
        await ipQuiet('link', 'del', veth);
      };
      teardowns.push(teardown);

      const started = Date.now();
      const addr = `${net}.${index}`;
      // Checked between steps: a teardown (say, afterAll after a hook timeout) may run meanwhile.
      const alive = () => {
        if (torn) throw new Error(`host ${name} was torn down while it came up`);
      };
      const build = async (): Promise<Dockerd> => {
        mkdirSync(hostDir, { recursive: true });
        const steps: string[][] = [
          ['netns', 'add', ns],
          // The peer is born inside the netns as eth0, so no second name shows in the root namespace.
          ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns],
          ['link', 'set', veth, 'master', bridge],
          ['link', 'set', veth, 'up'],
          ['-n', ns, 'link', 'set', 'lo', 'up'],
          ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0'],
          ['-n', ns, 'link', 'set', 'eth0', 'up'],
          ['-n', ns, 'route', 'add', 'default', 'via', gateway],
        ];
        for (const argv of steps) {
          alive();
          await ip(...argv);
        }
        // A persistent UTS namespace (bind-mounted on a file) gives the host its own hostname.
        alive();
        writeFileSync(uts, '');
        await execa('unshare', [`--uts=${uts}`, 'hostname', name]);
        // One image tar per fabric; '.image' cannot clash with a host name.
        tar ??= busyboxTar(`${dir}/.image`);
        const image = await tar;
        alive();
        // nsenter rather than `ip netns exec`: the latter remounts /sys, which hides the cgroup v1
        // hierarchies dockerd needs ("Devices cgroup isn't mounted"), and gives each process its own
        // mount namespace, so an agent's mounts would be invisible to dockerd and to the test.
        dockerd = await launchDockerd(`${hostDir}/docker`, { wrap: ['nsenter', ...nsArgs, '--'], tar: image });
        alive();
        return dockerd;
      };
      // Half a host is no use to anyone: a failed build takes down what exists at once.
      const building = build().catch(async (e: unknown) => {
        await teardown();
        throw e;
      });
      pending.add(building);
      let d: Dockerd;
      try {
        d = await building;
      } finally {
        pending.delete(building);
      }

      const spawn = <O extends Options = Record<never, never>>(file: string, args: readonly string[] = [], opts?: O): ResultPromise<O> => {
        const p = execa<O>('nsenter', [...nsArgs, '--', file, ...args], { ...opts, env: { ...d.env, ...opts?.env } } as O);
        const entry: Running = p;
        spawned.add(entry);
        const forget = () => spawned.delete(entry);
        p.then(forget, forget);
        // execa types its result as ResultPromise<{} & O>: the same thing, spelled differently.
        return p as unknown as ResultPromise<O>;
      };
      async function exec<O extends Options = Record<never, never>>(file: string, args?: readonly string[], opts?: O): Promise<Result<O>> {
        return (await spawn(file, args, opts)) as unknown as Result<O>;
      }
      const host: NetHost = {
        name,
        dir: hostDir,
        ns,
        ip: addr,
        dockerd: d,
        spawn,
        exec,
        stopDocker: () => d.stop(),
        teardown,
      };
      hosts.push(host);
      if (process.env.KNARR_NETNS_DEBUG) console.warn(`netns host ${name} (${addr}) up in ${Date.now() - started} ms`);
      return host;
    },
    async teardown() {
      if (closed) return;
      closed = true;
      const errors: unknown[] = [];
      // Hosts are independent and each dockerd takes a second or so to exit: all at once.
      for (const r of await Promise.allSettled(teardowns.map((t) => t()))) if (r.status === 'rejected') errors.push(r.reason);
      // A host still coming up notices the teardown at its next step and cleans up after itself.
      await Promise.allSettled([...pending]);
      if (forwardRule) await execa('iptables', ['-D', ...forwardRule], { reject: false });
      await ipQuiet('link', 'del', bridge);
      const left = (await ip('-o', 'link', 'show')).stdout.split('\n').filter((l) => l.includes(tag));
      const leftNs = (await ip('netns', 'list')).stdout.split('\n').filter((l) => l.includes(tag));
      if (left.length || leftNs.length) errors.push(new Error(`left behind: ${[...left, ...leftNs].join('; ')}`));
      if (errors.length) throw new AggregateError(errors, `fabric ${tag} teardown: ${errors.map(String).join('; ')}`);
    },
  };

  try {
    await ip('link', 'add', bridge, 'type', 'bridge');
    await ip('addr', 'add', `${gateway}/24`, 'dev', bridge);
    await ip('link', 'set', bridge, 'up');
    // With br_netfilter loaded, host-to-host frames cross the FORWARD chain, whose policy a docker
    // install may have set to DROP: let this bridge's own traffic through, and only it.
    if (haveTools('iptables')) {
      const rule = ['FORWARD', '-i', bridge, '-o', bridge, '-m', 'comment', '--comment', `knarr-test ${tag}`, '-j', 'ACCEPT'];
      if ((await execa('iptables', ['-I', ...rule], { reject: false })).exitCode === 0) forwardRule = rule;
    }
  } catch (e) {
    await fabric.teardown().catch(() => undefined);
    throw e;
  }
  return fabric;
}
