// Fleet hosts for a benchmark, as test/harness/netns.ts makes them for the tests, less each host's dockerd (a cluster
// needs none): a network namespace with its own eth0 on a private bridge, and a UTS namespace with its own hostname.
// Hosts share the machine's mount namespace, so paths, pools and mounts look the same everywhere.
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { freeSubnet } from './dockerd.mjs';

const ip = (...args) => spawnSync('ip', args, { encoding: 'utf8' });
const must = (r, what) => {
  if (r.status !== 0) throw new Error(`${what}: ${r.error?.message ?? r.stderr}`);
  return r;
};

/**
 * file and args as LXC in a netns host needs them (test/harness/netns.ts's withNetnsSysfs): a mount namespace of
 * their own whose /sys is the netns's, where LXC looks for the bridge, with the machine's cgroups mounted back over it.
 */
export function withNetnsSysfs(file, args) {
  const keep = '/run/knarr-netns-cgroup';
  const script = `mkdir -p ${keep} && mount --rbind /sys/fs/cgroup ${keep} && mount -t sysfs sysfs /sys && mount --rbind ${keep} /sys/fs/cgroup && exec "$@"`;
  return ['unshare', ['--mount', '--propagation', 'slave', 'sh', '-c', script, 'sh', file, ...args]];
}

/** The mounts under dir, deepest first, as the kernel lists them. */
function mountsUnder(dir) {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((t) => t?.startsWith(`${dir}/`))
    .reverse();
}

/**
 * Hosts named names under dir, on a fresh bridge whose .1 (the gateway) is in the root namespace. Each host has
 * `argv(file, args)`: the argv that runs file inside it. teardown() removes everything, whatever state a failure left.
 */
export function netnsHosts(dir, names) {
  const tag = `kh${randomInt(36 ** 4)
    .toString(36)
    .padStart(4, '0')}`;
  const bridge = `${tag}br`;
  const net = freeSubnet();
  const gateway = `${net}.1`;
  const forward = ['FORWARD', '-i', bridge, '-o', bridge, '-m', 'comment', '--comment', `knarr-bench ${tag}`, '-j', 'ACCEPT'];
  const hosts = [];
  let forwarding = false;

  const teardown = () => {
    for (const h of hosts) {
      // Whatever is still in the netns (an agent, a container, a stray child) would keep it alive.
      for (let i = 0; i < 50; i++) {
        const pids = ip('netns', 'pids', h.ns).stdout?.split('\n').filter(Boolean).map(Number) ?? [];
        if (pids.length === 0) break;
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone already */
          }
        }
        spawnSync('sleep', ['0.1']);
      }
      for (const t of mountsUnder(h.dir)) spawnSync('umount', ['-l', t]);
      ip('netns', 'del', h.ns);
      ip('link', 'del', h.veth);
    }
    if (forwarding) spawnSync('iptables', ['-D', ...forward]);
    ip('link', 'del', bridge);
  };

  try {
    must(ip('link', 'add', bridge, 'type', 'bridge'), `ip link add ${bridge}`);
    must(ip('addr', 'add', `${gateway}/24`, 'dev', bridge), 'ip addr add');
    must(ip('link', 'set', bridge, 'up'), 'ip link set up');
    // With br_netfilter a docker install's FORWARD DROP would stop host-to-host frames: this bridge's own pass.
    forwarding = spawnSync('iptables', ['-I', ...forward]).status === 0;
    names.forEach((name, i) => {
      const h = { name, dir: `${dir}/${name}`, ns: `${tag}-${name}`, veth: `${tag}v${i + 2}`, ip: `${net}.${i + 2}` };
      hosts.push(h);
      mkdirSync(h.dir, { recursive: true });
      for (const argv of [
        ['netns', 'add', h.ns],
        ['link', 'add', h.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns],
        ['link', 'set', h.veth, 'master', bridge],
        ['link', 'set', h.veth, 'up'],
        ['-n', h.ns, 'link', 'set', 'lo', 'up'],
        ['-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0'],
        ['-n', h.ns, 'link', 'set', 'eth0', 'up'],
        ['-n', h.ns, 'route', 'add', 'default', 'via', gateway],
      ])
        must(ip(...argv), `ip ${argv.join(' ')}`);
      // A persistent UTS namespace (bind-mounted on a file) gives the host its own hostname.
      writeFileSync(`${h.dir}/uts`, '');
      must(spawnSync('unshare', [`--uts=${h.dir}/uts`, 'hostname', name], { encoding: 'utf8' }), `hostname ${name}`);
      h.argv = (file, args = []) => ['nsenter', [`--net=/run/netns/${h.ns}`, `--uts=${h.dir}/uts`, '--', file, ...args]];
    });
  } catch (e) {
    teardown();
    throw e;
  }
  return { tag, bridge, gateway, hosts, teardown };
}
