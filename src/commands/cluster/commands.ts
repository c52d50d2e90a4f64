import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { validateAuthorizedKeys, validateClusterName, validateClusterSize, validateNodeIndex, validateUser, type ClusterRecord } from '../../core/cluster.js';
import { ConflictError, NotFoundError, UserError, ValidationError } from '../../core/errors.js';
import { validateName } from '../../core/names.js';
import { parseSize } from '../../core/size.js';
import { thisHost } from '../../daemon/pidfile.js';
import { runOperation } from '../op.js';
import { optBool, optString, type CommandResult, type Context, type Handler } from '../types.js';
import { withStore } from '../with-store.js';
import { ClusterRepo } from '../../state/clusters.js';
import { clusterPool, lxcFor } from './common.js';

/** The cluster's owner: --user, else KNARR_USER, else the caller's login name. */
function userOf(ctx: Context, opts: Record<string, unknown>): string {
  return validateUser('--user', optString(opts, 'user') ?? ctx.config.cluster.user ?? userInfo().username);
}

function cpuOf(v: string | undefined): number {
  if (v === undefined) return 0;
  const m = /^(\d+)m$/.exec(v);
  const n = m ? Number(m[1]) : /^\d+(\.\d+)?$/.test(v) ? Math.round(Number(v) * 1000) : NaN;
  if (!(n > 0)) throw new ValidationError('--cpus', `${JSON.stringify(v)} is not a cpu amount; write 0.5, 2 or 500m`);
  return n;
}

async function requireCluster(repo: ClusterRepo, user: string, name: string): Promise<ClusterRecord> {
  const c = await repo.get(user, name);
  if (!c) throw new NotFoundError(`user ${user} has no cluster ${name}`, { hint: 'list them with: knarr cluster list' });
  return c;
}

/** `knarr cluster create NAME --size N [--image IMG] [--user U] [--memory M] [--cpus C]`: every input checked before the operation is written. */
export const clusterCreate: Handler = async ({ args, opts }, ctx) => {
  const name = validateClusterName('NAME', args[0] as string);
  const size = validateClusterSize('--size', optString(opts, 'size'));
  const user = userOf(ctx, opts);
  const image = validateName('--image', optString(opts, 'image') ?? 'base', 64);
  const memoryText = optString(opts, 'memory');
  const memory = memoryText === undefined ? 0 : parseSize('--memory', memoryText);
  const cpu = cpuOf(optString(opts, 'cpus'));
  const keysFile = optString(opts, 'authorizedKeys');
  let authorizedKeys = '';
  if (keysFile) {
    const text = await readFile(resolve(ctx.cwd, keysFile), 'utf8').catch(() => {
      throw new ValidationError('--authorized-keys', `cannot read ${keysFile}`);
    });
    authorizedKeys = validateAuthorizedKeys('--authorized-keys', text);
  }
  const pool = await clusterPool(ctx, optString(opts, 'pool'));
  const host = await thisHost(ctx.config.stateDir);
  return withStore(ctx, async (store) => {
    const repo = new ClusterRepo(store, ctx.config.fleet);
    if (!(await repo.image(host, image)))
      throw new NotFoundError(`no image ${image} on ${host}`, { hint: `import one: knarr image import ${image} ROOTFS.tar (or --busybox)` });
    if (await repo.get(user, name))
      throw new ConflictError(`user ${user} already has a cluster ${name}`, { hint: `see it with: knarr cluster show ${name} --user ${user}` });
    return runOperation(ctx, store, 'cluster.create', { user, name, size, image, memory, cpu, pool: pool.name, host, authorizedKeys }, host, {
      detach: optBool(opts, 'detach'),
    });
  });
};

/** start, stop, delete: one operation on an existing cluster. */
function lifecycle(kind: 'cluster.start' | 'cluster.stop' | 'cluster.delete'): Handler {
  return async ({ args, opts }, ctx) => {
    const name = validateClusterName('NAME', args[0] as string);
    const user = userOf(ctx, opts);
    return withStore(ctx, async (store) => {
      const c = await requireCluster(new ClusterRepo(store, ctx.config.fleet), user, name);
      return runOperation(ctx, store, kind, { user, name }, c.host, { detach: optBool(opts, 'detach') });
    });
  };
}
export const clusterStart = lifecycle('cluster.start');
export const clusterStop = lifecycle('cluster.stop');
export const clusterDelete = lifecycle('cluster.delete');

/** `knarr cluster scale NAME --size N`: out or in; the remaining nodes keep their data. */
export const clusterScale: Handler = async ({ args, opts }, ctx) => {
  const name = validateClusterName('NAME', args[0] as string);
  const size = validateClusterSize('--size', optString(opts, 'size'));
  const user = userOf(ctx, opts);
  return withStore(ctx, async (store) => {
    const c = await requireCluster(new ClusterRepo(store, ctx.config.fleet), user, name);
    if (c.status === 'creating' || c.status === 'deleting')
      throw new ConflictError(`cluster ${name} is ${c.status}`, { hint: `wait for ${c.op}: knarr op wait ${c.op}` });
    return runOperation(ctx, store, 'cluster.scale', { user, name, size }, c.host, { detach: optBool(opts, 'detach') });
  });
};

/** `knarr cluster list [--user U]`. */
export const clusterList: Handler = async ({ opts }, ctx) =>
  withStore(ctx, async (store) => {
    const only = optString(opts, 'user');
    const clusters = (await new ClusterRepo(store, ctx.config.fleet).list())
      .filter((c) => !only || c.user === only)
      .sort((a, b) => a.user.localeCompare(b.user) || a.name.localeCompare(b.name));
    return {
      data: clusters,
      view: {
        kind: 'table',
        columns: ['USER', 'CLUSTER', 'ID', 'STATUS', 'NODES', 'IMAGE', 'SUBNET', 'HOST'],
        rows: clusters.map((c) => [c.user, c.name, String(c.id), c.status, String(c.nodes.length), c.image, c.subnet || '-', c.host]),
      },
    };
  });

/** `knarr cluster show NAME [--user U]`: id, status, size and each node's name, hostname, ip and host. */
export const clusterShow: Handler = async ({ args, opts }, ctx) =>
  withStore(ctx, async (store): Promise<CommandResult> => {
    const c = await requireCluster(new ClusterRepo(store, ctx.config.fleet), userOf(ctx, opts), validateClusterName('NAME', args[0] as string));
    const lxc = lxcFor(ctx);
    const here = await thisHost(ctx.config.stateDir);
    const nodes = await Promise.all(c.nodes.map(async (n) => ({ ...n, state: c.host === here ? ((await lxc.state(n.container)) ?? 'MISSING') : 'unknown' })));
    const data = {
      id: c.id,
      name: c.name,
      user: c.user,
      status: c.status,
      size: c.nodes.length,
      image: c.image,
      subnet: c.subnet,
      host: c.host,
      pool: c.pool,
      memory: c.memory,
      cpu: c.cpu,
      op: c.op,
      createdAt: c.createdAt,
      containers: nodes,
    };
    return {
      data,
      view: {
        kind: 'table',
        columns: ['NODE', 'CONTAINER', 'HOSTNAME', 'IP', 'HOST', 'STATE'],
        rows: nodes.map((n) => [String(n.index), n.container, n.hostname, n.ip, n.host, n.state]),
      },
    };
  });

/** `knarr cluster exec NAME NODE -- CMD...`: runs CMD in the node; exits with its status. */
export const clusterExec: Handler = async ({ args, opts }, ctx) => {
  const name = validateClusterName('NAME', args[0] as string);
  const index = validateNodeIndex('NODE', args[1] as string);
  const command = (args[2] as string[] | undefined) ?? [];
  if (command.length === 0) throw new ValidationError('CMD', 'give the command to run after --, e.g. -- hostname');
  const user = userOf(ctx, opts);
  const c = await withStore(ctx, (store) => requireCluster(new ClusterRepo(store, ctx.config.fleet), user, name));
  const node = c.nodes.find((n) => n.index === index);
  if (!node) throw new NotFoundError(`cluster ${name} has no node ${index} (it has ${c.nodes.length})`);
  if (c.host !== (await thisHost(ctx.config.stateDir))) throw new UserError(`cluster ${name} runs on ${c.host}; run cluster exec there`);
  const argv = lxcFor(ctx).attachArgv(node.container, command);
  if (ctx.runner.plan(argv)) return { data: { cluster: name, node: index, container: node.container } };
  // Output streams as the command makes it; -i feeds it knarr's stdin.
  const stdin = optBool(opts, 'interactive') ? ctx.stdin : undefined;
  return { data: { cluster: name, node: index, container: node.container }, stream: (stdout, stderr) => ctx.runner.attached(argv, { stdin, stdout, stderr }) };
};

/** `knarr image save CLUSTER NODE NAME`: a node's changes over its base, as a new image. */
export const imageSave: Handler = async ({ args, opts }, ctx) => {
  const name = validateClusterName('CLUSTER', args[0] as string);
  const node = validateNodeIndex('NODE', args[1] as string);
  const image = validateName('NAME', args[2] as string, 64);
  const user = userOf(ctx, opts);
  return withStore(ctx, async (store) => {
    const repo = new ClusterRepo(store, ctx.config.fleet);
    const c = await requireCluster(repo, user, name);
    if (!c.nodes.some((n) => n.index === node)) throw new NotFoundError(`cluster ${name} has no node ${node}`);
    if (await repo.image(c.host, image)) throw new ConflictError(`image ${image} already exists on ${c.host}`);
    return runOperation(ctx, store, 'image.save', { user, name, node, image, host: c.host }, c.host, { detach: optBool(opts, 'detach') });
  });
};
