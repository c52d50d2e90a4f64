import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { dirname } from 'node:path';
import { clustersToInit, containerName, hostsFile, nodeHostname, subnetAddress, subnetBroadcast, subnetGateway, userSubnet, type ClusterNode, type ClusterRecord } from '../../core/cluster.js';
import { ConflictError, ExternalCommandError, InterruptedError, NotFoundError, OperationFailedError } from '../../core/errors.js';
import { allowBridge, forgetBridge } from '../../host/firewall.js';
import { lxcConfig, unifiedCgroups } from '../../host/lxc.js';
import { mountAt } from '../../host/mounts.js';
import type { Runner } from '../../host/runner.js';
import { fleetKeys } from '../../state/keys.js';
import type { Store } from '../../state/store.js';
import type { OpHandler, OpRun } from '../../ops/runner.js';
import { ClusterRepo, clusterPool, hostsPath, imageVolume, lxcFor, nodeVolume, userDir, type ImageRecord } from './common.js';

interface ClusterArgs {
  user: string;
  name: string;
  size?: number;
  image?: string;
  memory?: number;
  cpu?: number;
  pool?: string;
  host?: string;
  authorizedKeys?: string;
  node?: number;
}

/** What every cluster step needs, built from the operation's context. */
async function setting(r: OpRun) {
  const args = r.op.args as unknown as ClusterArgs;
  const repo = new ClusterRepo(r.store, r.ctx.config.fleet);
  const existing = await repo.get(args.user, args.name);
  const pool = await clusterPool(r.ctx, existing?.pool ?? args.pool);
  return { args, repo, pool, lxc: lxcFor(r.ctx), keys: fleetKeys(r.ctx.config.fleet), driver: r.ctx.drivers[pool.driver], existing };
}
type Setting = Awaited<ReturnType<typeof setting>>;

/** The user's subnet was given back (their last cluster went) while a create was taking addresses in it. */
class SubnetReleased extends ConflictError {
  constructor() {
    super('the user\'s subnet was released meanwhile');
  }
}

/** The user's /24: kept once given; the first free one in the fleet's network otherwise (one transaction per try). */
async function ensureSubnet(store: Store, keys: ReturnType<typeof fleetKeys>, network: string, user: string): Promise<string> {
  const held = await store.get(keys.userSubnet(user));
  if (held) return held;
  for (let i = 1; i <= 254; i++) {
    const cidr = userSubnet(network, i);
    if (!(await store.createIfAbsent(keys.subnet(cidr), user))) continue;
    if (await store.createIfAbsent(keys.userSubnet(user), cidr)) return cidr;
    // Another create for this user won the user's key meanwhile: give this subnet back.
    await store.delete(keys.subnet(cidr));
    return (await store.get(keys.userSubnet(user)))!;
  }
  throw new ConflictError(`no free /24 left in ${network}`, { hint: 'set a larger cluster.network, or delete clusters of users that are gone' });
}

/**
 * The address each container holds in the user's subnet: the one it holds already (a resumed run),
 * else free ones, all taken in one transaction (retried when another create took one meanwhile).
 */
async function ensureAddresses(store: Store, keys: ReturnType<typeof fleetKeys>, subnet: string, user: string, containers: string[], also?: (ips: Map<string, string>) => { key: string; value: string }): Promise<Map<string, string>> {
  // With a new cluster's record: only while the user still holds the subnet, and the hold is written anew (a release that looked before fails).
  const hold = also ? { key: keys.userSubnet(user), value: subnet } : null;
  const prefix = keys.userAddresses(user);
  for (;;) {
    const taken = await store.list(prefix);
    const held = new Map(taken.map((kv) => [kv.value, kv.key.slice(prefix.length)]));
    const used = new Set(held.values());
    const fresh: { key: string; value: string }[] = [];
    for (let n = 2; n <= 254 && fresh.length < containers.filter((c) => !held.has(c)).length; n++) {
      const ip = subnetAddress(subnet, n);
      if (!used.has(ip)) fresh.push({ key: keys.userAddress(user, ip), value: '' });
    }
    const wanting = containers.filter((c) => !held.has(c));
    if (fresh.length < wanting.length) throw new ConflictError(`subnet ${subnet} of user ${user} is full`, { hint: 'scale in or delete some of the user\'s clusters' });
    wanting.forEach((c, i) => (fresh[i]!.value = c));
    const planned = new Map(held);
    for (const f of fresh.slice(0, wanting.length)) planned.set(f.value, f.key.slice(prefix.length));
    // A key written in the same transaction (a new cluster's record) is created with its addresses or not at all.
    const extra = also ? [also(planned)] : [];
    const writes = [...fresh.slice(0, wanting.length), ...extra];
    if (writes.length === 0) return planned;
    const written = hold
      ? await store.transact([...writes.map((w) => ({ key: w.key, absent: true as const })), hold], [...writes, hold], [])
      : await store.createAllIfAbsent(writes);
    if (written) return planned;
    for (const e of extra) if ((await store.get(e.key)) !== null) throw new ConflictError(`${e.key.split('/').slice(-2).join('/')} already exists`);
    if (hold && (await store.get(hold.key)) !== hold.value) throw new SubnetReleased();
  }
}

/** The host's bridge, up, with the subnet's gateway address on it; read from the kernel first, so a bridge in place costs no process. */
async function ensureBridge(runner: Runner, bridge: string, subnet: string): Promise<void> {
  const flags = Number((await readFile(`/sys/class/net/${bridge}/flags`, 'utf8').catch(() => '0')).trim());
  const hasGateway = (networkInterfaces()[bridge] ?? []).some((a) => a.family === 'IPv4' && a.address === subnetGateway(subnet));
  // IFF_UP is bit 0 of the interface flags.
  if (hasGateway && (flags & 1) === 1 && !runner.dryRun) return;
  const gateway = `${subnetGateway(subnet)}/24`;
  const show = await runner.run(['ip', '-o', 'addr', 'show', 'dev', bridge], { mutates: false, okExitCodes: [1, 255] });
  if (show.exitCode !== 0) {
    const argv = ['ip', 'link', 'add', bridge, 'type', 'bridge'];
    const added = await runner.run(argv, { okExitCodes: [2] });
    // Two creates at once on a host with no bridge yet: the one that lost the race finds it made.
    if (added.exitCode === 2 && !/File exists/.test(added.stderr)) throw new ExternalCommandError(argv, 2, added.stderr);
  }
  if (!show.stdout.includes(` ${gateway} `)) await runner.run(['ip', 'addr', 'add', gateway, 'dev', bridge], { okExitCodes: [2] });
  await runner.run(['ip', 'link', 'set', bridge, 'up']);
}

/** The host's last cluster is gone: its bridge goes, with the bridge's firewall rules; a bridge something else is attached to stays. */
async function dropBridgeIfUnused(r: OpRun, s: Setting, host: string): Promise<void> {
  const bridge = r.ctx.config.cluster.bridge;
  if ((await s.repo.list()).some((c) => c.host === host)) return;
  const ports = await readdir(`/sys/class/net/${bridge}/brif`).catch(() => null);
  if (ports !== null && ports.length > 0) return;
  await forgetBridge(r.ctx.runner, r.ctx.env, bridge);
  if (ports !== null) await r.ctx.runner.run(['ip', 'link', 'del', bridge], { okExitCodes: [1] });
}

/** Writes the cluster's hosts file in place: nodes bind-mount this very inode, so they see the change. */
async function writeHosts(s: Setting, c: ClusterRecord): Promise<void> {
  const path = hostsPath(s.pool, c.user, c.id);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, hostsFile(c.name, c.nodes));
}

/** Plans nodes from..to-1: addresses taken, names given; nothing made on the host yet. */
async function planNodes(r: OpRun, s: Setting, c: ClusterRecord, from: number, to: number): Promise<ClusterNode[]> {
  const names = Array.from({ length: to - from }, (_, k) => containerName(c.user, c.id, from + k));
  const ips = await ensureAddresses(r.store, s.keys, c.subnet, c.user, names);
  return names.map((container, k) => ({ index: from + k, container, hostname: nodeHostname(from + k), ip: ips.get(container)!, host: c.host, volume: nodeVolume(container) }));
}

/** Makes and starts one node: its volume, its config, then lxc-start; each part is skipped when already there. */
async function ensureNode(r: OpRun, s: Setting, c: ClusterRecord, node: ClusterNode, image: ImageRecord, cgroup2: boolean): Promise<void> {
  const vol = await s.driver.ensureVolume(s.pool, node.volume, r.ctx.runner);
  await mkdir(`${vol.path}/delta`, { recursive: true });
  const user = userDir(s.pool, c.user);
  const config = lxcConfig({
    name: node.container,
    hostname: node.hostname,
    image: image.rootfs,
    upper: `${vol.path}/delta`,
    bridge: r.ctx.config.cluster.bridge,
    address: `${node.ip}/24`,
    broadcast: subnetBroadcast(c.subnet),
    gateway: subnetGateway(c.subnet),
    mounts: [
      { source: hostsPath(s.pool, c.user, c.id), target: 'etc/hosts', readOnly: true, kind: 'file' },
      { source: `${user}/data`, target: 'nfs', readOnly: false, kind: 'dir' },
      { source: `${user}/ssh`, target: 'root/.ssh', readOnly: true, kind: 'dir' },
    ],
    memoryBytes: c.memory,
    cpuMillis: c.cpu,
    cgroup2,
  });
  if ((await s.lxc.config(node.container)) !== config) await s.lxc.define(node.container, config);
  await s.lxc.start(node.container);
}

/** Removes one node: its container, its volume, its address. */
async function removeNode(r: OpRun, s: Setting, user: string, container: string): Promise<void> {
  await s.lxc.remove(container);
  await s.driver.removeVolume(s.pool, nodeVolume(container), r.ctx.runner);
  const prefix = s.keys.userAddresses(user);
  for (const kv of await r.store.list(prefix)) if (kv.value === container) await r.store.delete(kv.key);
}

/** Everything of cluster id that exists on the host or in the store, found by its names: what a crash may have left is found too. */
async function removeClusterParts(r: OpRun, s: Setting, user: string, id: number): Promise<void> {
  const prefix = `${user}-${id}-`;
  const containers = new Set((await s.lxc.list()).filter((n) => n.startsWith(prefix)));
  for (const entry of await readdir(`${s.pool.mountpoint}/knarr-clusters`).catch(() => [] as string[])) if (entry.startsWith(prefix)) containers.add(entry);
  for (const kv of await r.store.list(s.keys.userAddresses(user))) if (kv.value.startsWith(prefix)) containers.add(kv.value);
  for (const name of containers) await removeNode(r, s, user, name);
  await rm(hostsPath(s.pool, user, id), { force: true });
}

/** Gives the user's subnet back once the user has no cluster left (the user's data stays). */
async function releaseSubnetIfUnused(r: OpRun, s: Setting, user: string): Promise<void> {
  // Read before the clusters: a create that writes its record after this read also rewrites the hold, and the release below fails.
  const held = await r.store.getVersioned(s.keys.userSubnet(user));
  if (!held) return;
  if ((await s.repo.list()).some((c) => c.user === user)) return;
  // Both keys at once, only if no create took the subnet meanwhile.
  await r.store.transact([{ key: s.keys.userSubnet(user), modRevision: held.modRevision }], [], [s.keys.userSubnet(user), s.keys.subnet(held.value)]);
}

/** Nodes started at once: lxc-start is mostly CPU, so two at a time is all two cores gain from. */
const START_PARALLEL = 2;

async function startNodes(r: OpRun, s: Setting, c: ClusterRecord, nodes: ClusterNode[], verb: string): Promise<void> {
  await ensureBridge(r.ctx.runner, r.ctx.config.cluster.bridge, c.subnet);
  await allowBridge(r.ctx.runner, r.ctx.env, r.ctx.config.cluster.bridge);
  const image = await s.repo.image(c.host, c.image);
  if (!image) throw new NotFoundError(`image ${c.image} is gone from ${c.host}`);
  const cgroup2 = await unifiedCgroups();
  let next = 0;
  let done = 0;
  let failed = false;
  const worker = async () => {
    // One worker's failure stops the others before their next node: undo must not race a worker still making nodes.
    while (next < nodes.length && !failed) {
      const node = nodes[next++]!;
      try {
        await r.checkpoint();
        await ensureNode(r, s, c, node, image, cgroup2);
      } catch (e) {
        failed = true;
        throw e;
      }
      await r.progress(++done, nodes.length, `${verb} ${node.hostname} (${node.container}): running`);
    }
  };
  const ended = await Promise.allSettled(Array.from({ length: Math.min(START_PARALLEL, nodes.length) }, worker));
  const failure = ended.find((e): e is PromiseRejectedResult => e.status === 'rejected');
  if (failure) throw failure.reason;
}

/** cluster.create: id, record, subnet and bridge, addresses and hosts file, then each node; undone as a whole. */
export const clusterCreate: OpHandler = {
  async run(r) {
    const s = await setting(r);
    const { args } = s;
    // A resumed run finds its id in the record it made; a run cut short before that takes a new one.
    if (s.existing && s.existing.op !== r.op.id) throw new ConflictError(`user ${args.user} already has a cluster ${args.name}`);
    let c = s.existing;
    if (!c) {
      const id = await r.store.increment(s.keys.counter('cluster'));
      const now = new Date().toISOString();
      const names = Array.from({ length: args.size! }, (_, i) => containerName(args.user, id, i));
      for (let attempt = 1; !c; attempt++) {
        const subnet = await ensureSubnet(r.store, s.keys, r.ctx.config.cluster.network, args.user);
        const draft: ClusterRecord = { id, name: args.name, user: args.user, status: 'creating', image: args.image!, pool: s.pool.name, host: args.host!, subnet, memory: args.memory ?? 0, cpu: args.cpu ?? 0, nodes: [], op: r.op.id, createdAt: now, updatedAt: now };
        const nodesWith = (ips: Map<string, string>) => names.map((container, i) => ({ index: i, container, hostname: nodeHostname(i), ip: ips.get(container)!, host: draft.host, volume: nodeVolume(container) }));
        try {
          // The record and its addresses in one transaction: nothing is made before the record that undo finds things by.
          const ips = await ensureAddresses(r.store, s.keys, subnet, args.user, names, (planned) => ({ key: s.keys.cluster(args.user, args.name), value: JSON.stringify({ ...draft, nodes: nodesWith(planned) }) }));
          c = { ...draft, nodes: nodesWith(ips) };
        } catch (e) {
          // Given back meanwhile: the addresses taken in it go, and the user gets a subnet again.
          if (!(e instanceof SubnetReleased) || attempt >= 3) throw e;
          for (const kv of await r.store.list(s.keys.userAddresses(args.user))) if (names.includes(kv.value)) await r.store.delete(kv.key);
        }
      }
    }
    const user = userDir(s.pool, args.user);
    await mkdir(`${user}/data`, { recursive: true });
    await mkdir(`${user}/ssh`, { recursive: true, mode: 0o700 });
    if (args.authorizedKeys) await writeFile(`${user}/ssh/authorized_keys`, args.authorizedKeys, { mode: 0o600 });
    await writeHosts(s, c);
    await startNodes(r, s, c, c.nodes, 'starting');
    await s.repo.put({ ...c, status: 'running' });
    return { cluster: args.name, user: args.user, id: c.id, nodes: c.nodes.length };
  },
  async undo(r) {
    const s = await setting(r);
    // Nothing is made before the record: no record of this operation, nothing to undo but a subnet it may have taken.
    const c = s.existing?.op === r.op.id ? s.existing : null;
    if (!c) return releaseSubnetIfUnused(r, s, s.args.user);
    await removeClusterParts(r, s, c.user, c.id);
    await s.repo.remove(c.user, c.name);
    await releaseSubnetIfUnused(r, s, c.user);
  },
};

async function requireCluster(s: Setting): Promise<ClusterRecord> {
  const c = await s.repo.get(s.args.user, s.args.name);
  if (!c) throw new NotFoundError(`user ${s.args.user} has no cluster ${s.args.name}`);
  return c;
}

const forwardOnly = async () => undefined;

/** cluster.start: the bridge and every node up again (their volumes kept). */
export const clusterStart: OpHandler = {
  async run(r) {
    const s = await setting(r);
    const c = await requireCluster(s);
    await startNodes(r, s, c, c.nodes, 'starting');
    await s.repo.put({ ...c, status: 'running', op: r.op.id });
    return { cluster: c.name, nodes: c.nodes.length };
  },
  async plan(r) {
    const s = await setting(r);
    const c = await requireCluster(s);
    await ensureBridge(r.ctx.runner, r.ctx.config.cluster.bridge, c.subnet);
    for (const node of c.nodes) {
      if (!(await s.lxc.defined(node.container))) r.ctx.runner.note(`define node ${node.hostname} (${node.container}) again: its volume and config`);
      await s.lxc.start(node.container);
    }
    r.ctx.runner.note(`set cluster ${c.name}'s status to running in etcd`);
  },
  undo: forwardOnly,
  undoes: false,
};

/** cluster.stop: every node stopped; volumes, addresses and record kept. */
export const clusterStop: OpHandler = {
  async run(r) {
    const s = await setting(r);
    const c = await requireCluster(s);
    for (const [k, node] of c.nodes.entries()) {
      await r.checkpoint();
      await r.progress(k, c.nodes.length, `stopping ${node.hostname}`);
      await s.lxc.stop(node.container);
    }
    await s.repo.put({ ...c, status: 'stopped', op: r.op.id });
    return { cluster: c.name, nodes: c.nodes.length };
  },
  async plan(r) {
    const s = await setting(r);
    const c = await requireCluster(s);
    for (const node of c.nodes) await s.lxc.stop(node.container);
    r.ctx.runner.note(`set cluster ${c.name}'s status to stopped in etcd`);
  },
  undo: forwardOnly,
  undoes: false,
};

/** cluster.delete: every node, volume, address and the record; the user's data at /nfs stays. */
export const clusterDelete: OpHandler = {
  async run(r) {
    const s = await setting(r);
    const c = s.existing;
    if (!c) {
      // A run cut short after the record went: what is left is the subnet.
      if (r.op.attempts > 1) {
        await releaseSubnetIfUnused(r, s, s.args.user);
        return { cluster: s.args.name, deleted: true };
      }
      throw new NotFoundError(`user ${s.args.user} has no cluster ${s.args.name}`);
    }
    await r.checkpoint();
    await s.repo.put({ ...c, status: 'deleting', op: r.op.id });
    await r.progress(0, 1, `removing ${c.nodes.length} node(s)`);
    await removeClusterParts(r, s, c.user, c.id);
    await s.repo.remove(c.user, c.name);
    await releaseSubnetIfUnused(r, s, c.user);
    await dropBridgeIfUnused(r, s, c.host);
    return { cluster: c.name, deleted: true };
  },
  async plan(r) {
    const s = await setting(r);
    const c = await requireCluster(s);
    for (const node of c.nodes) {
      await s.lxc.remove(node.container);
      await s.driver.removeVolume(s.pool, node.volume, r.ctx.runner);
    }
    r.ctx.runner.plan(['rm', '-f', hostsPath(s.pool, c.user, c.id)]);
    r.ctx.runner.note(`remove cluster ${c.name}'s record and its nodes' addresses from etcd (and the user's subnet, if it was the last cluster)`);
  },
  undo: forwardOnly,
  undoes: false,
};

/** cluster.scale: out adds nodes (undone if it fails), in removes the highest ones; the others keep running with their data. */
export const clusterScale: OpHandler = {
  async run(r) {
    const s = await setting(r);
    const c = await requireCluster(s);
    const from = (r.op.state.from as number | undefined) ?? c.nodes.length;
    // The status before scaling, kept across a resumed run (the record then says scaling).
    const before = (r.op.state.before as ClusterRecord['status'] | undefined) ?? (c.status === 'scaling' ? 'running' : c.status);
    // The nodes as they were: what an undo puts back when a scale in had removed none yet.
    const original = (r.op.state.original as ClusterNode[] | undefined) ?? c.nodes;
    await r.save({ from, before, original });
    const to = s.args.size!;
    if (to > from) {
      const added = await planNodes(r, s, c, from, to);
      const next = { ...c, status: 'scaling' as const, op: r.op.id, nodes: [...c.nodes.filter((n) => n.index < from), ...added] };
      await writeHosts(s, next);
      await s.repo.put(next);
      await startNodes(r, s, next, added, 'adding');
      // A stopped cluster grows stopped: its new nodes are made, then stopped like the others.
      if (before === 'stopped') for (const n of added) await s.lxc.stop(n.container);
      await s.repo.put({ ...next, status: before === 'stopped' ? 'stopped' : 'running' });
    } else if (to < from) {
      const kept = c.nodes.filter((n) => n.index < to);
      const next = { ...c, status: 'scaling' as const, op: r.op.id, nodes: kept };
      await s.repo.put(next);
      // From here nodes go: an undo finishes taking them out rather than leave some outside the record.
      await r.save({ shrunk: true });
      await writeHosts(s, next);
      for (const i of Array.from({ length: from - to }, (_, k) => from - 1 - k)) {
        await r.checkpoint();
        await r.progress(from - 1 - i, from - to, `removing ${nodeHostname(i)}`);
        await removeNode(r, s, c.user, containerName(c.user, c.id, i));
      }
      await s.repo.put({ ...next, status: before === 'stopped' ? 'stopped' : 'running' });
    }
    return { cluster: c.name, from, to };
  },
  async undo(r) {
    const s = await setting(r);
    const c = await s.repo.get(s.args.user, s.args.name);
    const from = r.op.state.from as number | undefined;
    const saved = r.op.state.before as ClusterRecord['status'] | undefined;
    const before = saved === undefined || saved === 'scaling' ? 'running' : saved;
    const to = s.args.size ?? 0;
    if (!c || from === undefined || to === from) return;
    if (to > from) {
      // Out: the nodes it added go.
      for (let i = from; i < to; i++) await removeNode(r, s, c.user, containerName(c.user, c.id, i));
      const back = { ...c, status: before, nodes: c.nodes.filter((n) => n.index < from) };
      await writeHosts(s, back);
      await s.repo.put(back);
      return;
    }
    if (!r.op.state.shrunk) {
      // In, before any node went: the cluster as it was.
      const back = { ...c, status: before, nodes: (r.op.state.original as ClusterNode[] | undefined) ?? c.nodes };
      await writeHosts(s, back);
      await s.repo.put(back);
      return;
    }
    // In: removed nodes cannot come back; the ones still there go, so none is left outside the record.
    for (let i = from - 1; i >= to; i--) await removeNode(r, s, c.user, containerName(c.user, c.id, i));
    await s.repo.put({ ...c, status: before, nodes: c.nodes.filter((n) => n.index < to) });
  },
};

/** image.save: a node's filesystem as it is now (its layer over the base, deletions included) as a new image. */
export const imageSave: OpHandler = {
  async run(r) {
    const s = await setting(r);
    const c = await requireCluster(s);
    const node = c.nodes.find((n) => n.index === s.args.node);
    if (!node) throw new NotFoundError(`cluster ${c.name} has no node ${s.args.node}`);
    const base = await s.repo.image(c.host, c.image);
    if (!base) throw new NotFoundError(`image ${c.image} is gone from ${c.host}`);
    const name = s.args.image!;
    const source = `${c.user}/${c.name}/${node.hostname}`;
    const saved = await s.repo.image(c.host, name);
    // A run cut short after its record was written: done already.
    if (r.op.attempts > 1 && saved?.source === source) return { image: name, from: `${c.name}/${node.hostname}` };
    if (saved) throw new ConflictError(`image ${name} already exists on ${c.host}`);
    const vol = await s.driver.ensureVolume(s.pool, imageVolume(name), r.ctx.runner);
    // A run cut short after its rename: only the record is missing.
    if (r.op.attempts > 1 && (await readdir(`${vol.path}/rootfs`).then(() => true, () => false))) {
      await s.repo.putImage({ name, host: c.host, pool: s.pool.name, rootfs: `${vol.path}/rootfs`, source, createdAt: new Date().toISOString() });
      return { image: name, from: `${c.name}/${node.hostname}` };
    }
    const layer = (await s.driver.ensureVolume(s.pool, node.volume, r.ctx.runner)).path;
    const view = `${vol.path}/view`;
    const partial = `${vol.path}/rootfs.partial`;
    await rm(partial, { recursive: true, force: true });
    await mkdir(view, { recursive: true });
    await mkdir(partial, { recursive: true });
    // A run cut short while copying left the view mounted.
    if (await mountAt(view)) await r.ctx.runner.run(['umount', view]);
    // Both layers read-only, the node's on top: overlayfs applies its deletions (whiteouts) to the base.
    await r.ctx.runner.run(['mount', '-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${layer}/delta:${base.rootfs}`, view]);
    try {
      await r.progress(0, 1, `copying ${node.hostname}'s filesystem`);
      await r.ctx.runner.run(['cp', '-a', `${view}/.`, partial]);
    } finally {
      await r.ctx.runner.run(['umount', view]);
    }
    await rm(view, { recursive: true, force: true });
    await rename(partial, `${vol.path}/rootfs`);
    await s.repo.putImage({ name, host: c.host, pool: s.pool.name, rootfs: `${vol.path}/rootfs`, source: `${c.user}/${c.name}/${node.hostname}`, createdAt: new Date().toISOString() });
    return { image: name, from: `${c.name}/${node.hostname}` };
  },
  async undo(r) {
    const s = await setting(r);
    const name = s.args.image;
    if (!name || (await s.repo.image(s.args.host ?? '', name))) return;
    await s.driver.removeVolume(s.pool, imageVolume(name), r.ctx.runner);
  },
};


/**
 * host.init: a joining host prepares for the fleet's start mode, one child operation per cluster of
 * its: recovery starts those that were running, new deletes them all. The clusters are chosen once,
 * so a resumed run carries on with the same ones.
 */
export const hostInit: OpHandler = {
  async run(r) {
    const mode = r.op.args.mode === 'new' ? 'new' : 'recovery';
    let targets = r.op.state.targets as { user: string; name: string }[] | undefined;
    if (!targets) {
      const all = (await r.store.list(fleetKeys(r.ctx.config.fleet).clusters)).map((kv) => JSON.parse(kv.value) as ClusterRecord);
      targets = clustersToInit(all, r.op.host, mode).map((c) => ({ user: c.user, name: c.name }));
      await r.save({ targets });
    }
    const failed: string[] = [];
    for (const [i, t] of targets.entries()) {
      await r.checkpoint();
      await r.progress(i, targets.length, `${mode === 'new' ? 'deleting' : 'starting'} ${t.user}/${t.name}`);
      const child = await r.child(`${t.user}/${t.name}`, mode === 'new' ? 'cluster.delete' : 'cluster.start', t);
      // A shutdown cuts the child short: the parent stops too, and both are resumed.
      if (child.status === 'running' && r.ctx.signal.aborted) throw new InterruptedError();
      if (child.status !== 'done') failed.push(`${child.id} (${t.user}/${t.name}): ${child.error ?? child.status}`);
    }
    await r.progress(targets.length, targets.length, 'done');
    if (failed.length > 0) throw new OperationFailedError(`${failed.length} of ${targets.length} cluster(s) did not ${mode === 'new' ? 'go' : 'start'}: ${failed.join('; ')}`);
    return { mode, clusters: targets.length };
  },
  undo: forwardOnly,
  undoes: false,
};
