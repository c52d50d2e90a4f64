import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { validateAuthorizedKeys, validateClusterName, validateClusterSize, validateNodeIndex, type ClusterRecord } from '../../core/cluster.js';
import { ConflictError, NotFoundError, UserError, ValidationError } from '../../core/errors.js';
import { validateName } from '../../core/names.js';
import { parseSize } from '../../core/size.js';
import { thisHost } from '../../daemon/pidfile.js';
import { runOperation } from '../op.js';
import { timeCell, type CommandResult, type Context, type View } from '../types.js';
import { withStore } from '../with-store.js';
import { ClusterRepo } from '../../state/clusters.js';
import { clusterPool, lxcFor, requireCluster, userOf } from './common.js';

function cpuOf(v: string | undefined): number {
  if (v === undefined) return 0;
  const m = /^(\d+)m$/.exec(v);
  const n = m ? Number(m[1]) : /^\d+(\.\d+)?$/.test(v) ? Math.round(Number(v) * 1000) : NaN;
  if (!(n > 0)) throw new ValidationError('--cpus', `${JSON.stringify(v)} is not a cpu amount; write 0.5, 2 or 500m`);
  return n;
}

/** `knarr cluster create NAME --size N [--image IMG] [--user U] [--memory M] [--cpus C]`: every input checked before the operation is written. */
export interface ClusterCreateOptions {
  size?: string;
  image?: string;
  user?: string;
  memory?: string;
  cpus?: string;
  pool?: string;
  authorizedKeys?: string;
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
  const pool = await clusterPool(ctx, opts.pool);
  const host = await thisHost(ctx.config.stateDir);
  return withStore(ctx, async (store) => {
    const repo = new ClusterRepo(store, ctx.config.fleet);
    if (!(await repo.image(host, image)))
      throw new NotFoundError(`no image ${image} on ${host}`, { hint: `import one: knarr image import ${image} ROOTFS.tar (or --busybox)` });
    if (await repo.get(user, name))
      throw new ConflictError(`user ${user} already has a cluster ${name}`, { hint: `see it with: knarr cluster show ${name} --user ${user}` });
    return runOperation(ctx, store, 'cluster.create', { user, name, size, image, memory, cpu, pool: pool.name, host, authorizedKeys }, host, {
      detach: opts.detach,
    });
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
      data: clusters.map((c) => ({ ...c, size: c.nodes.length })),
      view: {
        kind: 'table',
        columns: ['USER', 'CLUSTER', 'ID', 'STATUS', 'NODES', 'IMAGE', 'SUBNET', 'HOST', 'NODE IPS', 'OP', 'CREATED'],
        wide: ['NODE IPS', 'OP', 'CREATED'],
        keep: ['USER', 'CLUSTER'],
        rows: clusters.map((c) => [
          c.user,
          c.name,
          String(c.id),
          c.status,
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
    const nodes = await Promise.all(c.nodes.map(async (n) => ({ ...n, state: c.host === here ? ((await lxc.state(n.container)) ?? 'MISSING') : 'unknown' })));
    // The record as cluster list gives it, each node with its container's state.
    const data = { ...c, size: c.nodes.length, nodes };
    return { data, view: clusterView(nodes) };
  });

/** What `cluster show` prints: a row per node. */
function clusterView(nodes: (ClusterRecord['nodes'][number] & { state: string })[]): View {
  return {
    kind: 'table',
    columns: ['NODE', 'CONTAINER', 'HOSTNAME', 'IP', 'HOST', 'STATE'],
    rows: nodes.map((n) => [String(n.index), n.container, n.hostname, n.ip, n.host, n.state]),
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
  if (c.host !== (await thisHost(ctx.config.stateDir))) throw new UserError(`cluster ${name} runs on ${c.host}; run cluster exec there`);
  const argv = lxcFor(ctx).attachArgv(node.container, command);
  if (ctx.runner.plan(argv)) return { data: { cluster: name, node: index, container: node.container } };
  // Output streams as the command makes it; -i feeds it knarr's stdin.
  const stdin = opts.interactive ? ctx.stdin : undefined;
  return { data: { cluster: name, node: index, container: node.container }, stream: (stdout, stderr) => ctx.runner.attached(argv, { stdin, stdout, stderr }) };
}
