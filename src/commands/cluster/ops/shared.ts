import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  containerName,
  hostsFile,
  nodeHostname,
  nodeLimits,
  nodeMac,
  subnetBroadcast,
  subnetGateway,
  type ClusterNode,
  type ClusterRecord,
} from '../../../core/cluster.js';
import { ConflictError, NotFoundError, PrerequisiteError } from '../../../core/errors.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpRecord } from '../../../core/ops.js';
import type { PoolRecord } from '../../../core/pool.js';
import { allowBridge } from '../../../host/firewall.js';
import { lxcConfig, unifiedCgroups, type Lxc } from '../../../host/lxc.js';
import { dropBridgeIfIdle, ensureBridge } from '../../../host/net.js';
import type { StorageDriver } from '../../../host/storage/driver.js';
import type { OpRun } from '../../../ops/runner.js';
import { ClusterRepo, SubnetReleased, type ImageRecord } from '../../../state/clusters.js';
import { HostRepo } from '../../../state/hosts.js';
import { clusterPool, hostsPath, lxcFor, nodeVolume, userDir } from '../common.js';

/** The cluster an operation acts on, as every cluster operation's arguments name it. */
export interface ClusterRef {
  user: string;
  name: string;
  /** The pool a new cluster goes on; an existing cluster's own pool wins. */
  pool?: string;
}

/** The arguments of start, stop and delete: the cluster alone. */
export function clusterRefArgs(op: OpRecord): ClusterRef {
  const a = new OpArgs(op);
  return { user: a.string('user'), name: a.string('name'), pool: a.optionalString('pool') };
}

/** What every cluster step needs, built from the operation's context and its parsed arguments. */
export interface Setting<A extends ClusterRef = ClusterRef> {
  args: A;
  repo: ClusterRepo;
  pool: PoolRecord;
  lxc: Lxc;
  driver: StorageDriver;
  existing: ClusterRecord | null;
  /** This host's mount of the fleet's shared data directory, as its agent published it; null for none. */
  share: string | null;
}

export async function setting<A extends ClusterRef>(r: OpRun, args: A): Promise<Setting<A>> {
  const repo = new ClusterRepo(r.store, r.ctx.config.fleet);
  const existing = await repo.get(args.user, args.name);
  const pool = await clusterPool(r.ctx, existing?.pool ?? args.pool);
  const share = (await new HostRepo(r.store, r.ctx.config.fleet).get(r.op.host))?.host.share ?? null;
  return { args, repo, pool, lxc: lxcFor(r.ctx), driver: r.ctx.drivers[pool.driver], existing, share };
}

/** Where the user's /nfs data and ssh keys are for this cluster on this host: the fleet's share, or the pool. */
export function filesDir(s: Setting, c: Pick<ClusterRecord, 'user' | 'name' | 'files'>): string {
  if (c.files !== 'share') return userDir(s.pool, c.user);
  if (s.share === null)
    throw new PrerequisiteError(`cluster ${c.name} keeps /nfs on the fleet's shared data directory, and this host's agent has none`, {
      hint: 'start the agent with --share DIR (the directory every host of the fleet mounts)',
    });
  return `${s.share}/knarr-users/${c.user}`;
}

export async function requireCluster(s: Setting): Promise<ClusterRecord> {
  const c = await s.repo.get(s.args.user, s.args.name);
  if (!c) throw new NotFoundError(`user ${s.args.user} has no cluster ${s.args.name}`);
  return c;
}

export const forwardOnly = async () => undefined;

/** The run as an undo uses it: the cancel it may be undoing is no reason to stop at a checkpoint. */
export const undoRun = (r: OpRun): OpRun => Object.create(r, { checkpoint: { value: async () => undefined } }) as OpRun;

/** A cluster and, for a node's own lifecycle (suspend, resume, reboot, update), one of its nodes; none means every node. */
export interface NodeRef extends ClusterRef {
  node?: number;
}

export function nodeRefArgs(op: OpRecord): NodeRef {
  const a = new OpArgs(op);
  return { ...clusterRefArgs(op), node: a.optionalInteger('node') };
}

/** The nodes an operation acts on: the one named, else all of them. */
export function targetNodes(c: ClusterRecord, node: number | undefined): ClusterNode[] {
  if (node === undefined) return c.nodes;
  const n = c.nodes.find((x) => x.index === node);
  if (!n) {
    const has = c.nodes.length ? `host-0..host-${c.nodes.length - 1}` : 'none';
    throw new NotFoundError(`cluster ${c.name} has no node ${node} (its nodes: ${has})`, { hint: `see them with: knarr cluster show ${c.name}` });
  }
  return [n];
}

/** Suspend, resume and reboot act on running nodes only: a stopped or changing cluster is refused with what to do. */
export function requireRunning(c: ClusterRecord, verb: string): void {
  if (c.status === 'running') return;
  throw new ConflictError(`cannot ${verb} cluster ${c.name}: it is ${c.status}, not running`, {
    hint: c.status === 'stopped' ? `start it first: knarr cluster start ${c.name} --user ${c.user}` : `wait for ${c.op}: knarr op wait ${c.op}`,
  });
}

/** The nodes without their frozen mark. */
export const thawed = (nodes: readonly ClusterNode[]): ClusterNode[] => nodes.map(({ frozen: _, ...n }) => n);

/** The cluster with the given nodes changed. */
export function patchNodes(c: ClusterRecord, containers: readonly string[], patch: (n: ClusterNode) => ClusterNode): ClusterRecord {
  return { ...c, nodes: c.nodes.map((n) => (containers.includes(n.container) ? patch(n) : n)) };
}

/** The host's last cluster is gone: its bridge goes, with the bridge's firewall rules; a bridge something else is attached to stays. */
export async function dropBridgeIfUnused(r: OpRun, s: Setting, host: string, going?: ClusterRecord): Promise<void> {
  const others = (await s.repo.list()).filter((c) => !going || c.id !== going.id);
  if (others.some((c) => c.host === host || c.nodes.some((n) => n.host === host))) return;
  await dropBridgeIfIdle(r.ctx.runner, r.ctx.env, r.ctx.config.cluster.bridge);
}

/** Writes the cluster's hosts file in place: nodes bind-mount this very inode, so they see the change. */
export async function writeHosts(s: Setting, c: ClusterRecord): Promise<void> {
  const path = hostsPath(s.pool, c.user, c.id);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, hostsFile(c.name, c.nodes));
}

/**
 * A new cluster's id, the user's subnet and an address per node, with its record (status creating) written in
 * the same transaction: nothing is made before the record that undo finds things by. each gives a node more fields.
 */
export async function allocateCluster(
  s: Setting,
  network: string,
  size: number,
  draft: Omit<ClusterRecord, 'id' | 'subnet' | 'nodes'>,
  each: (index: number) => Partial<ClusterNode> = () => ({}),
  given?: number,
): Promise<ClusterRecord> {
  const id = given ?? (await s.repo.nextId());
  const names = Array.from({ length: size }, (_, i) => containerName(draft.user, id, i));
  for (let attempt = 1; ; attempt++) {
    const subnet = await s.repo.ensureSubnet(network, draft.user);
    const nodesWith = (ips: Map<string, string>): ClusterNode[] =>
      names.map((container, i) => ({
        index: i,
        container,
        hostname: nodeHostname(i),
        ip: ips.get(container)!,
        host: draft.host,
        volume: nodeVolume(container),
        ...each(i),
      }));
    try {
      const ips = await s.repo.ensureAddresses(subnet, draft.user, names, (planned) => ({ ...draft, id, subnet, nodes: nodesWith(planned) }));
      return { ...draft, id, subnet, nodes: nodesWith(ips) };
    } catch (e) {
      // Given back meanwhile: the addresses taken in it go, and the user gets a subnet again.
      if (!(e instanceof SubnetReleased) || attempt >= 3) throw e;
      await s.repo.releaseAddresses(draft.user, (holder) => names.includes(holder));
    }
  }
}

/** Plans nodes from..to-1: addresses taken, names given; nothing made on the host yet. */
export async function planNodes(s: Setting, c: ClusterRecord, from: number, to: number, hosts?: readonly string[]): Promise<ClusterNode[]> {
  const names = Array.from({ length: to - from }, (_, k) => containerName(c.user, c.id, from + k));
  const ips = await s.repo.ensureAddresses(c.subnet, c.user, names);
  return names.map((container, k) => ({
    index: from + k,
    container,
    hostname: nodeHostname(from + k),
    ip: ips.get(container)!,
    host: hosts?.[k] ?? c.host,
    volume: nodeVolume(container),
  }));
}

/** Makes and starts one node: its volume, its config, then lxc-start once the network is up; each part is skipped when already there. */
async function ensureNode(
  r: OpRun,
  s: Setting,
  c: ClusterRecord,
  node: ClusterNode,
  image: ImageRecord,
  cgroup2: boolean,
  network: Promise<void>,
): Promise<void> {
  const config = await defineNode(r, s, c, node, image, cgroup2);
  if ((await s.lxc.config(node.container)) !== config) await s.lxc.define(node.container, config);
  await network;
  await s.lxc.start(node.container);
}

/** The node's volume (made when missing) and the config it runs with, from the record as it is. */
export async function defineNode(r: OpRun, s: Setting, c: ClusterRecord, node: ClusterNode, image: ImageRecord, cgroup2: boolean): Promise<string> {
  const vol = await s.driver.ensureVolume(s.pool, node.volume, r.ctx.runner);
  await mkdir(`${vol.path}/delta`, { recursive: true });
  const user = filesDir(s, c);
  const limits = nodeLimits(c, node);
  return lxcConfig({
    name: node.container,
    hostname: node.hostname,
    image: image.rootfs,
    upper: `${vol.path}/delta`,
    bridge: r.ctx.config.cluster.bridge,
    address: `${node.ip}/24`,
    hwaddr: nodeMac(node.ip),
    broadcast: subnetBroadcast(c.subnet),
    gateway: subnetGateway(c.subnet),
    mounts: [
      { source: hostsPath(s.pool, c.user, c.id), target: 'etc/hosts', readOnly: true, kind: 'file' },
      { source: `${user}/data`, target: 'nfs', readOnly: false, kind: 'dir' },
      { source: `${user}/ssh`, target: 'root/.ssh', readOnly: true, kind: 'dir' },
    ],
    memoryBytes: limits.memory,
    cpuMillis: limits.cpu,
    cgroup2,
  });
}

/** The cluster's base image on a host: the cluster's own, or the one a node runs on. */
export async function requireImage(s: Setting, c: ClusterRecord, host = c.host): Promise<ImageRecord> {
  const image = await s.repo.image(host, c.image);
  if (!image) throw new NotFoundError(`image ${c.image} is gone from ${host}`, { hint: `import it there: knarr image import ${c.image} ... on ${host}` });
  return image;
}

/** Removes one node: its container, its volume, its address. */
export async function removeNode(r: OpRun, s: Setting, user: string, container: string, address = true): Promise<void> {
  await s.lxc.remove(container);
  await s.driver.removeVolume(s.pool, nodeVolume(container), r.ctx.runner);
  if (address) await s.repo.releaseAddresses(user, (holder) => holder === container);
}

/** Everything of cluster id that exists on the host or in the store, found by its names: what a crash may have left is found too. */
export async function removeClusterParts(r: OpRun, s: Setting, user: string, id: number, addresses = true): Promise<void> {
  const prefix = `${user}-${id}-`;
  const containers = new Set((await s.lxc.list()).filter((n) => n.startsWith(prefix)));
  for (const entry of await readdir(`${s.pool.mountpoint}/knarr-clusters`).catch(() => [] as string[])) if (entry.startsWith(prefix)) containers.add(entry);
  if (addresses) for (const holder of await s.repo.addressHolders(user)) if (holder.startsWith(prefix)) containers.add(holder);
  for (const name of containers) await removeNode(r, s, user, name, addresses);
  await rm(hostsPath(s.pool, user, id), { force: true });
}

/** Nodes started at once: lxc-start is mostly CPU, so two at a time is all two cores gain from. */
const START_PARALLEL = 2;

export async function startNodes(r: OpRun, s: Setting, c: ClusterRecord, nodes: ClusterNode[], verb: string): Promise<void> {
  // Only lxc-start needs the bridge and its firewall rules: the nodes' volumes and configs are made meanwhile.
  const network = ensureBridge(r.ctx.runner, r.ctx.config.cluster.bridge, c.subnet).then(() =>
    allowBridge(r.ctx.runner, r.ctx.env, r.ctx.config.cluster.bridge),
  );
  const ended = await Promise.allSettled([network, makeAndStart(r, s, c, nodes, verb, network)]);
  const failure = ended.find((e): e is PromiseRejectedResult => e.status === 'rejected');
  if (failure) throw failure.reason;
}

async function makeAndStart(r: OpRun, s: Setting, c: ClusterRecord, nodes: ClusterNode[], verb: string, network: Promise<void>): Promise<void> {
  const [image, cgroup2] = await Promise.all([requireImage(s, c, r.op.host), unifiedCgroups()]);
  let next = 0;
  let done = 0;
  let failed = false;
  const worker = async () => {
    // One worker's failure stops the others before their next node: undo must not race a worker still making nodes.
    while (next < nodes.length && !failed) {
      const node = nodes[next++]!;
      try {
        await r.checkpoint();
        await ensureNode(r, s, c, node, image, cgroup2, network);
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
