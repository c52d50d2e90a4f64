import { FailureError, PrerequisiteError } from '../../core/errors.js';
import { nodeCluster, type EnvMember, type EnvRecord, type HookSpec, type HookStep } from '../../core/env.js';
import type { OpRun } from '../../ops/runner.js';
import { ClusterRepo } from '../../state/clusters.js';
import type { Store } from '../../state/store.js';
import { clusterPool, lxcFor } from '../cluster/common.js';
import type { Context } from '../types.js';

/** Node members: each a one-node LXC cluster of the environments' cluster user, made and taken away by cluster operations. */

/**
 * Makes a node member (or finds it made by an earlier run): a one-node LXC cluster of the environments' cluster user,
 * named after the member, made on this host (the environment's home) by a child cluster.create. Its address is the
 * node's IP on the cluster bridge, with its role's port when it has one.
 */
export async function makeNodeMember(r: OpRun, env: EnvRecord, m: EnvMember): Promise<{ host: string; address: string | null }> {
  const role = env.roles[m.role]!;
  const spec = role.node!;
  const { user, name } = nodeCluster(m.name);
  const repo = new ClusterRepo(r.store, r.ctx.config.fleet);
  if (!r.op.state.checked) {
    // Checked as cluster create checks them, so a missing pool or image is said plainly before anything is made.
    const pool = await clusterPool(r.ctx, undefined);
    if (!(await repo.image(r.op.host, spec.image)))
      throw new PrerequisiteError(`member ${m.name} runs image ${spec.image}, which ${r.op.host} does not have`, {
        hint: `import it there: knarr image import ${spec.image} ROOTFS.tar (or --busybox)`,
      });
    await r.save({ checked: true, pool: pool.name });
  }
  const args = {
    user,
    name,
    size: 1,
    image: spec.image,
    memory: spec.memory,
    cpu: spec.cpu,
    pool: r.op.state.pool as string,
    host: r.op.host,
    authorizedKeys: '',
  };
  const child = await r.child(`node:${m.name}`, 'cluster.create', args);
  if (child.status !== 'done') throw new FailureError(`node ${m.name} was not made: ${child.error ?? child.status}`);
  const node = (await repo.get(user, name))?.nodes[0];
  if (!node) throw new FailureError(`node ${m.name} was made, but its cluster record is gone`);
  return { host: node.host, address: role.port === null ? node.ip : `${node.ip}:${role.port}` };
}

/** Takes a node member away by a child cluster.delete of r; nothing to do when its cluster is gone already. */
export async function dropNodeMember(ctx: Context, store: Store, env: EnvRecord, m: EnvMember, r?: OpRun): Promise<string> {
  const { user, name } = nodeCluster(m.name);
  // No record: never made, or taken away already (the cluster's own undo took what a cut-short create made).
  if (!(await new ClusterRepo(store, ctx.config.fleet).get(user, name))) return '';
  if (!r) throw new FailureError(`node member ${m.name} is taken away by an operation (knarr env remove ${env.name} ${m.name})`);
  const child = await r.child(`drop:${m.name}`, 'cluster.delete', { user, name });
  if (child.status !== 'done') throw new FailureError(`node ${m.name} was not removed: ${child.error ?? child.status}`);
  return '';
}

/** lxc-attach into a node member of this host, the hook's variables set inside. */
export async function nodeHookArgv(ctx: Context, store: Store, host: string, step: HookStep, hook: HookSpec, vars: Record<string, string>): Promise<string[]> {
  const { user, name } = nodeCluster(step.member.name);
  const node = (await new ClusterRepo(store, ctx.config.fleet).get(user, name))?.nodes[0];
  if (!node || node.host !== host) throw new FailureError(`member ${step.member.name} has no node on ${host} to run its ${step.event} hook in`);
  // lxc-attach into a frozen node waits in the freezer for ever.
  if (node.frozen) throw new FailureError(`member ${step.member.name} is suspended: its ${step.event} hook cannot run in it until it is resumed`);
  return lxcFor(ctx).attachArgv(node.container, hook.run, vars);
}
