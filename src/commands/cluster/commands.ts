import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  nodeLimits,
  parseCpus,
  shownStatus,
  validateAuthorizedKeys,
  validateClusterName,
  validateClusterSize,
  validateNodeIndex,
  type ClusterRecord,
} from '../../core/cluster.js';
import { formatSize } from '../../core/size.js';
import { describeOp, isTerminal, type OpRecord } from '../../core/ops.js';
import { OpRepo } from '../../state/ops.js';
import { requireRunning, targetNodes } from './ops/shared.js';
import { ConflictError, FailureError, NotFoundError, PrerequisiteError, ValidationError } from '../../core/errors.js';
import { validateName } from '../../core/names.js';
import { shellCommand } from '../../core/shell.js';
import { parseSize } from '../../core/size.js';
import { thisHost } from '../../daemon/pidfile.js';
import { opRun, runOperation } from '../op.js';
import { HostRepo } from '../../state/hosts.js';
import type { Store } from '../../state/store.js';
import { timeCell, type CommandResult, type Context, type View } from '../types.js';
import { withStore } from '../with-store.js';
import { ClusterRepo } from '../../state/clusters.js';
import { clusterPool, lxcFor, requireCluster, userOf } from './common.js';
import { placementOf } from './plan.js';

const cpuOf = (v: string | undefined): number => (v === undefined ? 0 : parseCpus('--cpus', v));

/** `knarr cluster create NAME --size N [--image IMG] [--user U] [--memory M] [--cpus C]`: every input checked before the operation is written. */
export interface ClusterCreateOptions {
  size?: string;
  image?: string;
  user?: string;
  memory?: string;
  cpus?: string;
  pool?: string;
  authorizedKeys?: string;
  spread?: boolean;
  pack?: boolean;
  host?: string;
  tags?: string[];
  detach: boolean;
}

export async function clusterCreate(nameArg: string, opts: ClusterCreateOptions, ctx: Context): Promise<CommandResult> {
  const name = validateClusterName('NAME', nameArg);
  const size = validateClusterSize('--size', opts.size);
  const user = userOf(ctx, opts.user);
  const image = validateName('--image', opts.image ?? 'base', 64);
  const memory = opts.memory === undefined ? 0 : parseSize('--memory', opts.memory);
  const cpu = cpuOf(opts.cpus);
  const keysFile = opts.authorizedKeys;
  let authorizedKeys = '';
  if (keysFile) {
    const text = await readFile(resolve(ctx.cwd, keysFile), 'utf8').catch(() => {
      throw new ValidationError('--authorized-keys', `cannot read ${keysFile}`);
    });
    authorizedKeys = validateAuthorizedKeys('--authorized-keys', text);
  }
  const where = placementOf(opts);
  const pin = where.host;
  const tags = where.tags;
  // No placement flag: every node on this host, as before fleets; any flag: the scheduler places them.
  const placed = opts.spread || opts.pack || pin !== undefined || tags.length > 0;
  const placement = placed ? { strategy: where.strategy, ...(pin ? { pin } : {}), ...(tags.length ? { tags: tags.join(',') } : {}) } : {};
  const pool = await clusterPool(ctx, opts.pool);
  const host = await thisHost(ctx.config.stateDir);
  return withStore(ctx, async (store) => {
    const repo = new ClusterRepo(store, ctx.config.fleet);
    if (pin !== undefined && pin !== host && !(await new HostRepo(store, ctx.config.fleet).get(pin)))
      throw new NotFoundError(`fleet ${ctx.config.fleet} has no host ${pin}`, { hint: 'see the hosts with: knarr host list' });
    const imageHost = pin ?? host;
    if (!(await repo.image(imageHost, image)))
      throw new NotFoundError(`no image ${image} on ${imageHost}`, { hint: `import one there: knarr image import ${image} ROOTFS.tar (or --busybox)` });
    if (await repo.get(user, name))
      throw new ConflictError(`user ${user} already has a cluster ${name}`, { hint: `see it with: knarr cluster show ${name} --user ${user}` });
    const args = { user, name, size, image, memory, cpu, pool: pool.name, host, authorizedKeys, ...placement };
    return runOperation(ctx, store, 'cluster.create', args, host, { detach: opts.detach });
  });
}

/** start, stop, delete: one operation on an existing cluster. */
export async function clusterLifecycle(
  verb: 'start' | 'stop' | 'delete',
  nameArg: string,
  opts: { user?: string; detach: boolean },
  ctx: Context,
): Promise<CommandResult> {
  const name = validateClusterName('NAME', nameArg);
  const user = userOf(ctx, opts.user);
  return withStore(ctx, async (store) => {
    const c = await requireCluster(new ClusterRepo(store, ctx.config.fleet), user, name);
    return runOperation(ctx, store, `cluster.${verb}`, { user, name }, c.host, { detach: opts.detach });
  });
}

/** The operation's own account under its status line: what each node did (frozen already, limits live or at the next start). */
function withSteps(res: CommandResult, lines: (result: Record<string, unknown>) => string[]): CommandResult {
  const op = res.data as OpRecord;
  if (op?.status !== 'done' || !op.result || typeof op.result !== 'object') return res;
  return { ...res, view: { kind: 'lines', lines: [describeOp(op), ...lines(op.result as Record<string, unknown>)] } };
}

/**
 * Runs the operation, unless the same one was cut short (its command killed) and no runner holds it now:
 * then this run finishes that one, as knarr op run would, rather than be refused for it.
 */
async function runOrFinish(ctx: Context, store: Store, kind: string, args: Record<string, unknown>, host: string, detach: boolean): Promise<CommandResult> {
  const here = await thisHost(ctx.config.stateDir);
  if (!ctx.runner.dryRun && host === here) {
    const repo = new OpRepo(store, ctx.config.fleet);
    const same = (await repo.pendingTopLevel()).find((o) => o.kind === kind && o.host === host && JSON.stringify(o.args) === JSON.stringify(args));
    // An agent up resumes it itself; a runner that holds it is still at work.
    if (same?.status === 'running' && !(await repo.claimed(same.id)) && !(await new HostRepo(store, ctx.config.fleet).get(host))?.up) {
      ctx.events.warn(`${same.id} (${kind}) was cut short (attempt ${same.attempts}); finishing it`);
      return opRun(same.id, ctx);
    }
  }
  return runOperation(ctx, store, kind, args, host, { detach });
}

const nodeOf = (v: string | undefined) => (v === undefined ? undefined : validateNodeIndex('NODE', v));

/** suspend, resume, reboot: one operation on a running cluster's nodes (the one named, else all). */
export async function clusterNodeLifecycle(
  verb: 'suspend' | 'resume' | 'reboot',
  nameArg: string,
  nodeArg: string | undefined,
  opts: { user?: string; detach: boolean },
  ctx: Context,
): Promise<CommandResult> {
  const name = validateClusterName('NAME', nameArg);
  const node = nodeOf(nodeArg);
  const user = userOf(ctx, opts.user);
  return withStore(ctx, async (store) => {
    const c = await requireCluster(new ClusterRepo(store, ctx.config.fleet), user, name);
    const [first] = targetNodes(c, node);
    requireRunning(c, verb);
    const host = node === undefined ? c.host : first!.host;
    const res = await runOrFinish(ctx, store, `cluster.${verb}`, { user, name, ...(node === undefined ? {} : { node }) }, host, opts.detach);
    return withSteps(res, (r) => {
      if (verb === 'reboot') return [`rebooted ${(r.rebooted as string[]).join(', ')}`];
      const steps = (r[verb === 'suspend' ? 'suspended' : 'resumed'] ?? []) as { hostname: string; changed: boolean }[];
      const [now, already] = verb === 'suspend' ? ['frozen', 'was frozen already'] : ['running again', 'was running already'];
      return steps.map((st) => `${st.hostname} ${st.changed ? now : already}`);
    });
  });
}

const limitCell = (v: number, unit: (n: number) => string) => (v > 0 ? unit(v) : 'none');
const cpuCell = (m: number) => (m % 1000 === 0 ? String(m / 1000) : `${m}m`);

/** `knarr cluster update NAME [NODE] --memory M --cpus C`: new limits, recorded, applied live where the kernel lets. */
export async function clusterUpdate(
  nameArg: string,
  nodeArg: string | undefined,
  opts: { memory?: string; cpus?: string; user?: string; detach: boolean },
  ctx: Context,
): Promise<CommandResult> {
  const name = validateClusterName('NAME', nameArg);
  const node = nodeOf(nodeArg);
  if (opts.memory === undefined && opts.cpus === undefined)
    throw new ValidationError('--memory', 'give the new limit: --memory 512M, --cpus 2, or both (none takes a limit away)');
  const memory = opts.memory === undefined ? undefined : opts.memory === 'none' ? 0 : parseSize('--memory', opts.memory);
  const cpu = opts.cpus === undefined ? undefined : opts.cpus === 'none' ? 0 : parseCpus('--cpus', opts.cpus);
  const user = userOf(ctx, opts.user);
  return withStore(ctx, async (store) => {
    const c = await requireCluster(new ClusterRepo(store, ctx.config.fleet), user, name);
    const [first] = targetNodes(c, node);
    if (c.status !== 'running' && c.status !== 'stopped')
      throw new ConflictError(`cannot update cluster ${name}: it is ${c.status}`, { hint: `wait for ${c.op}: knarr op wait ${c.op}` });
    // One node's operation runs where that node is; a whole cluster's where the cluster is.
    const host = node === undefined ? c.host : first!.host;
    const args = { user, name, ...(node === undefined ? {} : { node }), ...(memory === undefined ? {} : { memory }), ...(cpu === undefined ? {} : { cpu }) };
    const res = await runOrFinish(ctx, store, 'cluster.update', args, host, opts.detach);
    return withSteps(res, (r) =>
      (r.nodes as { hostname: string; memory: number; cpu: number; applied: string; reason?: string }[]).map(
        (n) =>
          `${n.hostname}: memory ${limitCell(n.memory, formatSize)}, cpus ${limitCell(n.cpu, cpuCell)}: ` +
          (n.applied === 'live' ? 'applied live' : `at its next start (${n.reason})`),
      ),
    );
  });
}

/** `knarr cluster clone NAME NEW`: a copy of a cluster under a new name, its nodes started. */
export async function clusterClone(nameArg: string, newArg: string, opts: { user?: string; detach: boolean }, ctx: Context): Promise<CommandResult> {
  const name = validateClusterName('NAME', nameArg);
  const clone = validateClusterName('NEW', newArg);
  const user = userOf(ctx, opts.user);
  if (clone === name) throw new ValidationError('NEW', `the clone needs a name of its own, not ${name}`);
  return withStore(ctx, async (store) => {
    const repo = new ClusterRepo(store, ctx.config.fleet);
    const c = await requireCluster(repo, user, name);
    if (c.status !== 'running' && c.status !== 'stopped')
      throw new ConflictError(`cannot clone cluster ${name}: it is ${c.status}`, { hint: `wait for ${c.op}: knarr op wait ${c.op}` });
    const args = { user, name, clone, pool: c.pool };
    const ops = new OpRepo(store, ctx.config.fleet);
    const made = await repo.get(user, clone);
    const maker = made ? await ops.get(made.op) : null;
    // A clone of this very command, cut short, has made its record already: the re-run finishes it.
    const mine = maker !== null && !isTerminal(maker.status) && JSON.stringify(maker.args) === JSON.stringify(args);
    if (made && !mine)
      throw new ConflictError(`user ${user} already has a cluster ${clone}`, {
        hint: `pick another name, or see it: knarr cluster show ${clone} --user ${user}`,
      });
    // A create or clone of the same name still under way would take it meanwhile.
    const taking = (await ops.pendingTopLevel()).find(
      (o) => o.args.user === user && (o.args.name === clone || o.args.clone === clone) && JSON.stringify(o.args) !== JSON.stringify(args),
    );
    if (taking)
      throw new ConflictError(`cluster ${clone} of user ${user} is being made by ${taking.id} (${taking.kind})`, {
        hint: `wait for it: knarr op wait ${taking.id}`,
      });
    const res = await runOrFinish(ctx, store, 'cluster.clone', args, c.host, opts.detach);
    return withSteps(res, (r) => [
      `${String(r.cluster)} (id ${String(r.id)}): ${String(r.nodes)} node(s) from ${String(r.from)}, volumes ` +
        `by ${r.volumes === 'snapshot' ? 'snapshot' : 'copy'}`,
    ]);
  });
}

/** `knarr cluster migrate NAME NODE --to HOST`: checked here (target up, with the image) before the operation goes to the node's host. */
export async function clusterMigrate(
  nameArg: string,
  nodeArg: string,
  opts: { to?: string; user?: string; detach: boolean },
  ctx: Context,
): Promise<CommandResult> {
  const name = validateClusterName('NAME', nameArg);
  const node = validateNodeIndex('NODE', nodeArg);
  if (!opts.to) throw new ValidationError('--to', 'name the host the node goes to: --to HOST (see knarr host list)');
  const to = opts.to;
  const user = userOf(ctx, opts.user);
  return withStore(ctx, async (store) => {
    const repo = new ClusterRepo(store, ctx.config.fleet);
    const c = await requireCluster(repo, user, name);
    const { checkMigration, holdTarget } = await import('./ops/migrate.js');
    const n = await checkMigration({ store, ctx }, repo, { user, name, node, to }, c);
    // Room on the target, as it is now: the operation holds it under the placement lock before it stops anything.
    await holdTarget({ store, ctx, op: { id: 'op-planned' } }, c, n, to, true);
    const from = n.host;
    const res = await runOrFinish(ctx, store, 'cluster.migrate', { user, name, node, to }, from, opts.detach);
    return withSteps(res, (r) => [
      `${String(r.hostname)} (${String(r.ip)}) moved from ${String(r.from)} to ${String(r.to)}: ${formatSize(Number(r.bytes))} sent` +
        (typeof r.downtimeMs === 'number' ? `, down ${(r.downtimeMs / 1000).toFixed(1)}s` : ''),
    ]);
  });
}

/** `knarr cluster scale NAME --size N`: out or in; the remaining nodes keep their data. */
export async function clusterScale(nameArg: string, opts: { size?: string; user?: string; detach: boolean }, ctx: Context): Promise<CommandResult> {
  const name = validateClusterName('NAME', nameArg);
  const size = validateClusterSize('--size', opts.size);
  const user = userOf(ctx, opts.user);
  return withStore(ctx, async (store) => {
    const c = await requireCluster(new ClusterRepo(store, ctx.config.fleet), user, name);
    if (c.status === 'creating' || c.status === 'deleting')
      throw new ConflictError(`cluster ${name} is ${c.status}`, { hint: `wait for ${c.op}: knarr op wait ${c.op}` });
    return runOperation(ctx, store, 'cluster.scale', { user, name, size }, c.host, { detach: opts.detach });
  });
}

/** `knarr cluster list [--user U]`. */
export const clusterList = async (only: string | undefined, ctx: Context): Promise<CommandResult> =>
  withStore(ctx, async (store) => {
    const clusters = (await new ClusterRepo(store, ctx.config.fleet).list())
      .filter((c) => !only || c.user === only)
      .sort((a, b) => a.user.localeCompare(b.user) || a.name.localeCompare(b.name));
    return {
      data: clusters.map((c) => ({ ...c, size: c.nodes.length, frozen: c.nodes.filter((n) => n.frozen).length })),
      view: {
        kind: 'table',
        columns: ['USER', 'CLUSTER', 'ID', 'STATUS', 'NODES', 'IMAGE', 'SUBNET', 'HOST', 'NODE IPS', 'OP', 'CREATED'],
        wide: ['NODE IPS', 'OP', 'CREATED'],
        keep: ['USER', 'CLUSTER'],
        rows: clusters.map((c) => [
          c.user,
          c.name,
          String(c.id),
          shownStatus(c),
          String(c.nodes.length),
          c.image,
          c.subnet || '-',
          c.host,
          c.nodes.map((n) => n.ip).join(',') || '-',
          c.op || '-',
          timeCell(c.createdAt),
        ]),
      },
    };
  });

/** `knarr cluster show NAME [--user U]`: id, status, size and each node's name, hostname, ip and host. */
export const clusterShow = async (name: string, opts: { user?: string }, ctx: Context): Promise<CommandResult> =>
  withStore(ctx, async (store): Promise<CommandResult> => {
    const c = await requireCluster(new ClusterRepo(store, ctx.config.fleet), userOf(ctx, opts.user), validateClusterName('NAME', name));
    const lxc = lxcFor(ctx);
    const here = await thisHost(ctx.config.stateDir);
    const nodes = await Promise.all(
      // A node on another host is as its record says: its container is that host's to look at.
      c.nodes.map(async (n) => ({ ...n, ...nodeLimits(c, n), state: n.host === here ? ((await lxc.state(n.container)) ?? 'MISSING') : recordedState(c, n) })),
    );
    // The record as cluster list gives it, each node with its container's state.
    const data = { ...c, size: c.nodes.length, frozen: c.nodes.filter((n) => n.frozen).length, nodes };
    return { data, view: clusterView(nodes) };
  });

/** A node on another host, as the record has it: the cluster's status, frozen or not. */
function recordedState(c: ClusterRecord, n: ClusterRecord['nodes'][number]): string {
  if (c.status !== 'running') return c.status.toUpperCase();
  return n.frozen ? 'FROZEN' : 'RUNNING';
}

/** What `cluster show` prints: a row per node. */
function clusterView(nodes: (ClusterRecord['nodes'][number] & { state: string; memory: number; cpu: number })[]): View {
  return {
    kind: 'table',
    columns: ['NODE', 'CONTAINER', 'HOSTNAME', 'IP', 'HOST', 'STATE', 'MEMORY', 'CPUS'],
    wide: ['MEMORY', 'CPUS'],
    rows: nodes.map((n) => [String(n.index), n.container, n.hostname, n.ip, n.host, n.state, limitCell(n.memory, formatSize), limitCell(n.cpu, cpuCell)]),
  };
}

/** `knarr cluster exec NAME NODE -- CMD...`: runs CMD in the node; exits with its status. */
export async function clusterExec(
  nameArg: string,
  nodeArg: string,
  command: string[],
  opts: { interactive: boolean; user?: string },
  ctx: Context,
): Promise<CommandResult> {
  const name = validateClusterName('NAME', nameArg);
  const index = validateNodeIndex('NODE', nodeArg);
  if (command.length === 0) throw new ValidationError('CMD', 'give the command to run after --, e.g. -- hostname');
  const user = userOf(ctx, opts.user);
  const c = await withStore(ctx, (store) => requireCluster(new ClusterRepo(store, ctx.config.fleet), user, name));
  const node = c.nodes.find((n) => n.index === index);
  if (!node) throw new NotFoundError(`cluster ${name} has no node ${index} (it has ${c.nodes.length})`);
  // lxc-attach into a frozen node waits in the freezer for ever.
  if (node.frozen)
    throw new ConflictError(`node ${node.hostname} of cluster ${name} is suspended: a command in it would not run until it is resumed`, {
      hint: `resume it first: knarr cluster resume ${name} ${index}${opts.user ? ` --user ${user}` : ''}`,
    });
  if (node.host !== (await thisHost(ctx.config.stateDir))) return execThroughAgent(ctx, c, node, command, opts.interactive);
  const argv = lxcFor(ctx).attachArgv(node.container, command);
  if (ctx.runner.plan(argv)) return { data: { cluster: name, node: index, container: node.container } };
  // Output streams as the command makes it; -i feeds it knarr's stdin.
  const stdin = opts.interactive ? ctx.stdin : undefined;
  return { data: { cluster: name, node: index, container: node.container }, stream: (stdout, stderr) => ctx.runner.attached(argv, { stdin, stdout, stderr }) };
}

/** A node on another host: its agent runs the command there and relays its output and exit status. */
async function execThroughAgent(
  ctx: Context,
  c: ClusterRecord,
  node: ClusterRecord['nodes'][number],
  command: string[],
  interactive: boolean,
): Promise<CommandResult> {
  const data = { cluster: c.name, node: node.index, container: node.container, host: node.host };
  const there = await withStore(ctx, (store) => new HostRepo(store, ctx.config.fleet).get(node.host));
  if (!there?.up)
    throw new PrerequisiteError(`node ${node.hostname} of cluster ${c.name} runs on ${node.host}, whose agent is down`, {
      hint:
        `start it there (knarr daemon), or run ` +
        `on ${node.host}: ${shellCommand(['knarr', 'cluster', 'exec', c.name, String(node.index), '--user', c.user, '--', ...command])}`,
    });
  if (ctx.runner.dryRun) {
    ctx.runner.note(`ask the agent of ${node.host} to run ${shellCommand(command)} in ${node.container}`);
    return { data };
  }
  const { AgentClient, relayAgentStream } = await import('../job/agent-client.js');
  const client = await AgentClient.connect(ctx, there.host);
  const sock = await client.exec({ user: c.user, name: c.name, node: node.index, command, interactive });
  return {
    data,
    stream: async (stdout, stderr) => {
      const status = await relayAgentStream(ctx, sock, interactive, stdout, stderr);
      if (!status) throw new FailureError(`the connection to ${node.host}'s agent ended before the command in ${node.hostname} did`);
      if (status.error !== undefined) throw new FailureError(`${node.hostname} on ${node.host}: ${status.error}`);
      return status.exitCode ?? 0;
    },
  };
}

/** The agent's side of a cluster exec from another host: the lxc-attach argv for a node of this host. */
export async function nodeAttachArgv(
  ctx: Context,
  store: Store,
  here: string,
  req: { user: string; name: string; node: number; command: string[] },
): Promise<string[]> {
  const c = await new ClusterRepo(store, ctx.config.fleet).get(String(req.user), String(req.name));
  const node = c?.nodes.find((n) => n.index === req.node);
  if (!c || !node) throw new NotFoundError(`user ${String(req.user)} has no cluster ${String(req.name)} with a node ${String(req.node)}`);
  if (node.host !== here) throw new ConflictError(`node ${node.hostname} of cluster ${c.name} runs on ${node.host}, not ${here}`);
  return lxcFor(ctx).attachArgv(node.container, req.command);
}
