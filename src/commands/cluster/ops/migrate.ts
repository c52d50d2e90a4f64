import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { nodeLimits, type ClusterNode, type ClusterRecord } from '../../../core/cluster.js';
import { placeNodes } from '../../../core/cluster-placement.js';
import { ConflictError, FailureError, InternalError, NotFoundError, PrerequisiteError } from '../../../core/errors.js';
import { OpArgs } from '../../../core/op-args.js';
import { opId, type OpRecord } from '../../../core/ops.js';
import { allowBridge } from '../../../host/firewall.js';
import { unifiedCgroups } from '../../../host/lxc.js';
import { ensureBridge } from '../../../host/net.js';
import { volumeReceiveArgv, withoutTrailer } from '../../../host/volume-stream.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import type { ClusterRepo } from '../../../state/clusters.js';
import { HostRepo } from '../../../state/hosts.js';
import { OpRepo } from '../../../state/ops.js';
import { PlaceholderRepo } from '../../../state/placeholders.js';
import { AgentClient } from '../../job/agent-client.js';
import { volumeQuery } from '../volume-route.js';
import { defineNode, filesDir, requireCluster, requireImage, setting, startNodes, undoRun, writeHosts, type ClusterRef, type Setting } from './shared.js';

/** What `cluster.migrate` is given: a node of a cluster and the host it goes to (submitted on the node's host). */
export interface MigrateArgs extends ClusterRef {
  node: number;
  to: string;
}

export function migrateArgs(op: OpRecord): MigrateArgs {
  const a = new OpArgs(op);
  return { user: a.string('user'), name: a.string('name'), node: a.integer('node'), to: a.string('to') };
}

/** What the target's child (`cluster.migrate-in`) is given: the node, the host it comes from, and whether it runs there. */
interface MigrateInArgs extends ClusterRef {
  node: number;
  from: string;
  start: boolean;
  authorizedKeys?: string;
}

function migrateInArgs(op: OpRecord): MigrateInArgs {
  const a = new OpArgs(op);
  return {
    user: a.string('user'),
    name: a.string('name'),
    node: a.integer('node'),
    from: a.string('from'),
    start: a.optionalString('start') !== 'no',
    authorizedKeys: a.optionalString('authorizedKeys'),
  };
}

function requireNode(c: ClusterRecord, index: number): ClusterNode {
  const node = c.nodes.find((n) => n.index === index);
  if (!node) throw new NotFoundError(`cluster ${c.name} has no node ${index}`, { hint: `see its nodes: knarr cluster show ${c.name} --user ${c.user}` });
  return node;
}

/**
 * Whether the node can go from its host to `to` now: the cluster settled, `to` another host that is up, with the
 * cluster's image. Checked by the command before it submits, and by the operation before it stops anything.
 */
export async function checkMigration(r: Pick<OpRun, 'store' | 'ctx'>, repo: ClusterRepo, args: MigrateArgs, c: ClusterRecord): Promise<ClusterNode> {
  const node = requireNode(c, args.node);
  const { to } = args;
  if (c.status !== 'running' && c.status !== 'stopped')
    throw new ConflictError(`cannot migrate a node of cluster ${c.name}: it is ${c.status}`, { hint: `wait for ${c.op}: knarr op wait ${c.op}` });
  if (node.host === to) throw new ConflictError(`${node.hostname} of cluster ${c.name} is on ${to} already`);
  const target = await new HostRepo(r.store, r.ctx.config.fleet).get(to);
  if (!target) throw new NotFoundError(`there is no host ${to} in fleet ${r.ctx.config.fleet}`, { hint: 'see the hosts: knarr host list' });
  if (!target.up)
    throw new PrerequisiteError(`host ${to} is down: its agent holds no lease`, {
      hint: `start its agent (knarr daemon) and try again; see: knarr host show ${to}`,
    });
  if (target.host.state !== 'ok')
    throw new ConflictError(`host ${to} is ${target.host.state}: it takes no new work`, {
      hint: target.host.state === 'draining' ? `serve again first: knarr host drain ${to} --undo` : 'pick another host: knarr host list',
    });
  if (target.host.join !== undefined && target.host.join !== 'ok')
    throw new PrerequisiteError(`host ${to} has not finished joining the fleet (${target.host.join})`, { hint: `see: knarr host show ${to}` });
  const hosts = new Set(c.nodes.map((n) => (n.index === node.index ? to : n.host)));
  if (c.files !== 'share' && hosts.size > 1)
    throw new ConflictError(
      `cluster ${c.name} would run on ${[...hosts].sort().join(', ')} with /nfs on each host's pool: its nodes would see different files; ` +
        "a cluster over several hosts keeps /nfs on the fleet's shared data directory",
      { hint: 'start every agent with --share DIR (the directory every host mounts) and create the cluster there' },
    );
  if (c.files === 'share' && !target.host.share)
    throw new PrerequisiteError(`cluster ${c.name} keeps /nfs on the fleet's shared data directory, and host ${to}'s agent has none`, {
      hint: `start the agent of ${to} with --share DIR`,
    });
  if (!(await repo.image(to, c.image)))
    throw new NotFoundError(`host ${to} has no image ${c.image}, which cluster ${c.name} runs on`, {
      hint: `import it on ${to}: knarr image import ${c.image} ROOTFS.tar (or --busybox)`,
    });
  return node;
}

/**
 * The node's room on `to`, under the fleet's placement lock (a placeholder, Cloud48's dummy VM, until the record
 * puts the node there): a host without room for its limits refuses it, as a create would. preview: looked at only.
 */
export async function holdTarget(
  r: Pick<OpRun, 'store' | 'ctx'> & { op: Pick<OpRecord, 'id'> },
  c: ClusterRecord,
  node: ClusterNode,
  to: string,
  preview = false,
): Promise<void> {
  const repo = new PlaceholderRepo(r.store, r.ctx.config.fleet);
  const cluster = `${c.user}/${c.name}`;
  const limits = nodeLimits(c, node);
  const req = { cluster, containers: [node.container], ...limits };
  const choose = (views: Parameters<typeof placeNodes>[0]) =>
    placeNodes(views, { cluster, size: 1, ...limits, strategy: 'spread', host: to, tags: [], firstIndex: node.index });
  await (preview ? repo.preview(r.op.id, req, choose) : repo.hold(r.op.id, req, choose));
}

const RUNNING = new Set(['RUNNING', 'FROZEN', 'THAWED']);

/**
 * cluster.migrate, on the node's host A: the node stopped, its volume taken by the agent of `to` (B) in a child
 * there (`cluster.migrate-in`: streamed from this agent, size and sha256 checked, the node made and started on B),
 * then the record says B (compare-and-swap), and only then A's copy goes. A failure or cancel before the record
 * says B starts the node on A again, B's copy removed.
 */
export const clusterMigrate: OpHandler = {
  async run(r) {
    const s = await setting(r, migrateArgs(r.op));
    let c = await requireCluster(s);
    const here = r.op.host;
    let node = requireNode(c, s.args.node);
    // Already there, and not by this operation's hand: nothing may be removed here.
    if (node.host === s.args.to && r.op.state.stopAt === undefined) throw new ConflictError(`${node.hostname} of cluster ${c.name} is on ${s.args.to} already`);
    if (!r.op.state.moved && node.host !== s.args.to) {
      if (node.host !== here)
        throw new ConflictError(`${node.hostname} of cluster ${c.name} is on ${node.host}, not ${here}`, {
          hint: `the migration runs on the node's host: knarr cluster migrate ${c.name} ${node.index} --to ${s.args.to} there`,
        });
      // Written down before the node stops: an undo, or a resumed run, knows whether to start it again.
      if (r.op.state.running === undefined) {
        node = await checkMigration(r, s.repo, s.args, c);
        await holdTarget(r, c, node, s.args.to);
        await r.checkpoint();
        await r.save({ running: RUNNING.has((await s.lxc.state(node.container)) ?? 'STOPPED'), stopAt: Date.now() });
      }
      const running = r.op.state.running === true;
      await r.progress(1, 3, `${node.hostname}: stopping on ${here}, its volume to ${s.args.to}, starting there`);
      const downFrom = Date.now();
      await s.lxc.stop(node.container);
      const stopped = Date.now();
      // Keys on the pool are this host's copy; on the share, the target reads the same file.
      const keys = c.files === 'share' ? undefined : await readFile(`${filesDir(s, c)}/ssh/authorized_keys`, 'utf8').catch(() => undefined);
      const child = await r.child(
        'in',
        'cluster.migrate-in',
        { user: c.user, name: c.name, node: node.index, from: here, start: running ? 'yes' : 'no', ...(keys ? { authorizedKeys: keys } : {}) },
        s.args.to,
      );
      if (child.status !== 'done') {
        // Cancelled with this operation: this one is cancelled too, not failed.
        await r.checkpoint();
        throw new FailureError(`on ${s.args.to}: ${child.error ?? child.status} (${child.id})`);
      }
      await r.checkpoint();
      // The point of no return: once the record says B, B's node is the node.
      const moved = await s.repo.update(c.user, c.name, (now) => {
        const n = now.nodes.find((x) => x.index === node.index);
        if (!n || n.host !== here) throw new ConflictError(`${node.hostname} of cluster ${c.name} was moved meanwhile (now on ${n?.host ?? 'no host'})`);
        return { ...now, nodes: now.nodes.map((x) => (x.index === node.index ? { ...withoutFrozen(x), host: s.args.to } : x)) };
      });
      if (!moved) throw new NotFoundError(`cluster ${c.name} is gone`);
      c = moved;
      // The node counts on B from its record now.
      await new PlaceholderRepo(r.store, r.ctx.config.fleet).release(r.op.id);
      await r.save({ moved: true, arrived: { ...(child.result as object), downFrom, stopped, recorded: Date.now() } });
    }
    await r.progress(2, 3, `removing ${node.hostname}'s copy on ${here}`);
    await s.lxc.remove(node.container);
    await s.driver.removeVolume(s.pool, node.volume, r.ctx.runner);
    const arrived = (r.op.state.arrived ?? {}) as Partial<
      Record<'bytes' | 'downFrom' | 'stopped' | 'began' | 'received' | 'runningAt' | 'recorded', number>
    > & {
      sha256?: string;
    };
    const span = (from: number | undefined, to: number | undefined) => (from && to ? to - from : null);
    return {
      cluster: c.name,
      user: c.user,
      node: node.index,
      hostname: node.hostname,
      ip: node.ip,
      from: here,
      to: s.args.to,
      bytes: arrived.bytes ?? 0,
      sha256: arrived.sha256 ?? '',
      running: r.op.state.running === true,
      // Stop on A to running on B: what the node's peers see of it; and its parts.
      downtimeMs: span(arrived.downFrom, arrived.runningAt),
      phasesMs: {
        stop: span(arrived.downFrom, arrived.stopped),
        handoff: span(arrived.stopped, arrived.began),
        transfer: span(arrived.began, arrived.received),
        start: span(arrived.received, arrived.runningAt),
        record: span(arrived.runningAt, arrived.recorded),
      },
    };
  },
  async undo(r) {
    await new PlaceholderRepo(r.store, r.ctx.config.fleet).release(r.op.id);
    // Past the record's change the node is B's: nothing here goes back.
    if (r.op.state.moved || r.op.state.running === undefined) return;
    const s = await setting(r, migrateArgs(r.op));
    const c = s.existing;
    const node = c?.nodes.find((n) => n.index === s.args.node);
    if (!c || !node || node.host !== r.op.host) return;
    // The node first: B being away must not keep it down.
    if (r.op.state.running === true) await startNodes(undoRun(r), s, c, [node], 'starting');
    const made = ((r.op.state.children ?? {}) as Record<string, number>).in;
    const child = made === undefined ? null : await new OpRepo(r.store, r.ctx.config.fleet).get(opId(made));
    // A child that ran to its end left B's copy: a second child there removes it. One that failed or was cancelled undid itself.
    if (child?.status === 'done') {
      const drop = await undoRun(r).child('drop', 'cluster.migrate-drop', { user: c.user, name: c.name, node: node.index }, s.args.to);
      if (drop.status !== 'done') throw new FailureError(`removing the copy on ${s.args.to} failed: ${drop.error ?? drop.status} (${drop.id})`);
    }
  },
  async plan(r) {
    const s = await setting(r, migrateArgs(r.op));
    const c = await requireCluster(s);
    const node = await checkMigration(r, s.repo, s.args, c);
    await holdTarget(r, c, node, s.args.to, true);
    r.ctx.runner.note(`hold ${node.hostname}'s room on ${s.args.to} (a placeholder in etcd, under the placement lock)`);
    await s.lxc.stop(node.container);
    const note = (line: string) => r.ctx.runner.note(line);
    note(`on ${s.args.to} (child operation cluster.migrate-in, run by its agent): stream ${node.volume} from this host's agent (tar, size and sha256 checked)`);
    note(`on ${s.args.to}: define ${node.container} (${node.hostname}, ${node.ip}) and start it`);
    note(`record ${node.hostname} of cluster ${c.name} on ${s.args.to} in etcd (compare-and-swap)`);
    await s.lxc.remove(node.container);
    await s.driver.removeVolume(s.pool, node.volume, r.ctx.runner);
  },
};

const withoutFrozen = ({ frozen: _, ...n }: ClusterNode): ClusterNode => n;

/** Takes what the target holds of a node: its container and volume, never those of a node the record puts here. */
async function dropCopy(r: OpRun, s: Setting<ClusterRef & { node: number }>): Promise<void> {
  const c = s.existing;
  const node = c?.nodes.find((n) => n.index === s.args.node);
  if (!c || !node || node.host === r.op.host) return;
  await s.lxc.remove(node.container);
  await s.driver.removeVolume(s.pool, node.volume, r.ctx.runner);
}

/** Reads the node's volume from the agent of `from` into a new volume here, checked against the sender's size and sha256. */
async function receiveVolume(r: OpRun, s: Setting<MigrateInArgs>, c: ClusterRecord, node: ClusterNode): Promise<{ bytes: number; sha256: string }> {
  const source = await new HostRepo(r.store, r.ctx.config.fleet).get(s.args.from);
  if (!source) throw new NotFoundError(`there is no host ${s.args.from} to take ${node.hostname}'s volume from`);
  // A copy cut short is begun again from empty.
  await s.driver.removeVolume(s.pool, node.volume, r.ctx.runner);
  const vol = await s.driver.ensureVolume(s.pool, node.volume, r.ctx.runner);
  const socket = await (await AgentClient.connect(r.ctx, source.host)).upgrade(volumeQuery(c.user, c.name, node.index));
  const input = withoutTrailer();
  // A connection that fails mid-way fails the receive; one that just ends leaves the trailer missing, checked below.
  socket.once('error', (e) => input.destroy(e));
  socket.pipe(input);
  try {
    await r.ctx.runner.pipe(volumeReceiveArgv(vol.path), { stdin: input, redirect: `< ${s.args.from}:${node.volume}` });
    // tar stops at its end-of-archive blocks: the rest of the stream, and its trailer, are read to the end.
    input.resume();
    await finished(input);
  } finally {
    socket.destroy();
  }
  const { tally } = input;
  if (!tally.sent || tally.sent.bytes !== tally.bytes || tally.sent.sha256 !== tally.sha256)
    throw new FailureError(
      `${node.hostname}'s volume from ${s.args.from} arrived as ${tally.bytes} bytes, sha256 ${tally.sha256}; ` +
        `${s.args.from} sent ${tally.sent ? `${tally.sent.bytes} bytes, sha256 ${tally.sent.sha256}` : 'no end (its stream broke off)'}`,
    );
  return { bytes: tally.bytes, sha256: tally.sha256 };
}

/**
 * cluster.migrate-in, on the target host (a child of cluster.migrate): the node's volume received, the user's
 * files and the cluster's hosts file here, the node defined on this host's bridge with its name, hostname,
 * address and MAC, and started when it ran on the source. Undone: the container and volume made here go.
 */
export const clusterMigrateIn: OpHandler = {
  async run(r) {
    const s = await setting(r, migrateInArgs(r.op));
    if (s.args.from === r.op.host) throw new InternalError(`cluster.migrate-in ran on ${r.op.host}, the host the node leaves: it belongs to the target`);
    const c = await requireCluster(s);
    const node = { ...withoutFrozen(requireNode(c, s.args.node)), host: r.op.host };
    if (c.nodes.some((n) => n.index === node.index && n.host === r.op.host))
      throw new ConflictError(`${node.hostname} of cluster ${c.name} is on ${r.op.host} already`);
    const image = await requireImage(s, c, r.op.host);
    const began = Date.now();
    // The node is defined only once its volume is whole: a run resumed after that keeps it (it may be running);
    // one resumed before receives it again, from empty.
    const got = (await s.lxc.defined(node.container)) ? null : await receiveVolume(r, s, c, node);
    const received = Date.now();
    await r.checkpoint();
    const user = filesDir(s, c);
    await mkdir(`${user}/data`, { recursive: true });
    await mkdir(`${user}/ssh`, { recursive: true, mode: 0o700 });
    if (s.args.authorizedKeys) await writeFile(`${user}/ssh/authorized_keys`, s.args.authorizedKeys, { mode: 0o600 });
    await writeHosts(s, c);
    if (s.args.start) await startNodes(r, s, c, [node], 'starting');
    else {
      await ensureBridge(r.ctx.runner, r.ctx.config.cluster.bridge, c.subnet);
      await allowBridge(r.ctx.runner, r.ctx.env, r.ctx.config.cluster.bridge);
      await s.lxc.define(node.container, await defineNode(r, s, c, node, image, await unifiedCgroups()));
    }
    return { bytes: got?.bytes ?? 0, sha256: got?.sha256 ?? '', began, received, runningAt: Date.now(), host: r.op.host };
  },
  async undo(r) {
    await dropCopy(r, await setting(r, migrateInArgs(r.op)));
  },
};

/** cluster.migrate-drop, on the target host: what a migration that was undone after its child ended made there. */
export const clusterMigrateDrop: OpHandler = {
  async run(r) {
    const a = new OpArgs(r.op);
    await dropCopy(r, await setting(r, { user: a.string('user'), name: a.string('name'), node: a.integer('node') }));
    return { dropped: true };
  },
  undo: async () => undefined,
  undoes: false,
};
