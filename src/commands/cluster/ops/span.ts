import type { ClusterNode, ClusterRecord } from '../../../core/cluster.js';
import { ConflictError, NotFoundError, OperationFailedError } from '../../../core/errors.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpRecord } from '../../../core/ops.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { ClusterRepo } from '../../../state/clusters.js';
import { HostRepo } from '../../../state/hosts.js';
import { OpRepo } from '../../../state/ops.js';

/**
 * Clusters over several hosts: a whole-cluster operation runs on the cluster's home host and hands each other
 * host with nodes its part, the same kind of operation marked `part`, which that host's agent runs on its own nodes.
 */

/** This operation is one host's part of a whole-cluster operation: it acts on that host's nodes only, and leaves the cluster's status alone. */
export const isPart = (r: OpRun): boolean => r.op.args.part === true;

/** The nodes of those given that run on the operation's host. */
export const hereOnly = (r: OpRun, nodes: readonly ClusterNode[]): ClusterNode[] => nodes.filter((n) => n.host === r.op.host);

/** The hosts other than the operation's that hold any of the nodes, sorted. */
export const otherHosts = (r: OpRun, nodes: readonly ClusterNode[]): string[] => [...new Set(nodes.map((n) => n.host))].filter((h) => h !== r.op.host).sort();

/** The hosts of the nodes whose agent is down: a part sent there would wait until it comes back. */
export async function downHosts(r: OpRun, hosts: readonly string[]): Promise<string[]> {
  const repo = new HostRepo(r.store, r.ctx.config.fleet);
  const down: string[] = [];
  for (const h of hosts) if (!(await repo.get(h))?.up) down.push(h);
  return down;
}

/** Sends each host its part and waits for all of them (one host after another when sequential); the first failure is thrown once every part has ended. */
export async function runParts(r: OpRun, hosts: readonly string[], opts: { args?: Record<string, unknown>; sequential?: boolean } = {}): Promise<OpRecord[]> {
  const one = async (h: string) => {
    const child = await r.child(`part-${h}`, r.op.kind, { ...(opts.args ?? r.op.args), part: true }, h);
    if (child.status !== 'done') throw new OperationFailedError(`the part on ${h} (${child.id}) ${child.status}${child.error ? `: ${child.error}` : ''}`);
    return child;
  };
  if (opts.sequential) {
    const done: OpRecord[] = [];
    for (const h of hosts) done.push(await one(h));
    return done;
  }
  const ended = await Promise.allSettled(hosts.map(one));
  const failure = ended.find((e): e is PromiseRejectedResult => e.status === 'rejected');
  if (failure) throw failure.reason;
  return ended.map((e) => (e as PromiseFulfilledResult<OpRecord>).value);
}

/** Undoes the parts that ended done (a failed or cancelled part undid itself), each by its own host's runner. */
export async function undoParts(r: OpRun): Promise<void> {
  const ops = new OpRepo(r.store, r.ctx.config.fleet);
  const keys = (r.op.state.children ?? {}) as Record<string, number>;
  const failures: string[] = [];
  for (const key of Object.keys(keys).filter((k) => k.startsWith('part-'))) {
    const part = await ops.get(r.op.children.find((id) => Number(id.slice(3)) === keys[key]) ?? '');
    if (part?.status !== 'done') continue;
    // A host that is down is not waited for: what its part made is no record's any more (or is rewritten from the record
    // when its nodes next start), so its collector and its recovery put it right when it is back.
    if ((await downHosts(r, [part.host])).length > 0) {
      await r.progress(0, 0, `${part.host} is down: its part is left to its collector and recovery`);
      continue;
    }
    const undo = await r.child(`undo-${part.host}`, 'cluster.undo-part', { of: part.id }, part.host);
    if (undo.status !== 'done') failures.push(`${part.host}: ${undo.error ?? undo.status}`);
  }
  if (failures.length > 0) throw new OperationFailedError(`undoing the other hosts' parts failed: ${failures.join('; ')}`);
}

/** The other hosts its target nodes run on, checked up; with skipDown, a down host is left out (its collector cleans up when it is back). */
export async function partHosts(r: OpRun, targets: readonly ClusterNode[], verb: string, skipDown = false): Promise<string[]> {
  const hosts = otherHosts(r, targets);
  const down = await downHosts(r, hosts);
  if (skipDown) return hosts.filter((h) => !down.includes(h));
  if (down.length > 0)
    throw new ConflictError(`cannot ${verb}: host(s) ${down.join(', ')} with nodes of this cluster are down`, {
      hint: `start their agents (knarr daemon), or move the nodes off them first: knarr cluster migrate ... --to HOST`,
    });
  return hosts;
}

/**
 * A whole-cluster operation over every host with target nodes: the other hosts' parts first (all at once),
 * then this host's own run, which alone writes the cluster's status. Undo takes back the parts that ended
 * done, then this host's. The parts' results' lists are joined into this one's.
 */
export function acrossHosts(
  h: OpHandler,
  targets: (c: ClusterRecord, r: OpRun) => readonly ClusterNode[],
  verb: string,
  opts: { skipDown?: boolean; sequential?: boolean } = {},
): OpHandler {
  return {
    ...h,
    async run(r) {
      if (isPart(r)) return h.run(r);
      const c = await new ClusterRepo(r.store, r.ctx.config.fleet).get(String(r.op.args.user), String(r.op.args.name));
      const hosts = c ? await partHosts(r, targets(c, r), verb, opts.skipDown) : [];
      const parts = await runParts(r, hosts, { sequential: opts.sequential });
      const own = await h.run(r);
      return joinResults(own, parts);
    },
    async undo(r) {
      // A forward-only kind leaves what its parts did, as it leaves its own.
      if (!isPart(r) && h.undoes !== false) await undoParts(r);
      await h.undo(r);
    },
    async plan(r) {
      await h.plan?.(r);
      const c = await new ClusterRepo(r.store, r.ctx.config.fleet).get(String(r.op.args.user), String(r.op.args.name));
      if (!c || isPart(r)) return;
      for (const host of otherHosts(r, targets(c, r)))
        r.ctx.runner.note(`and on host ${host}, by its agent, the same for its ${c.nodes.filter((n) => n.host === host).length} node(s)`);
    },
  };
}

/** Lists in the parts' results are added to the same lists in this host's result. */
function joinResults(own: unknown, parts: readonly OpRecord[]): unknown {
  if (!own || typeof own !== 'object' || Array.isArray(own)) return own;
  const joined = { ...(own as Record<string, unknown>) };
  for (const p of parts) {
    if (!p.result || typeof p.result !== 'object') continue;
    for (const [k, v] of Object.entries(p.result as Record<string, unknown>))
      if (Array.isArray(v) && Array.isArray(joined[k])) joined[k] = [...v, ...(joined[k] as unknown[])];
  }
  return joined;
}

/** cluster.undo-part: another host's part of an operation, undone on this host by the handler of its kind. */
export const undoPart: OpHandler = {
  async run(r) {
    const of = new OpArgs(r.op).string('of');
    const part = await new OpRepo(r.store, r.ctx.config.fleet).get(of);
    if (!part) throw new NotFoundError(`operation ${of} is gone`);
    const load = r.ctx.opHandlers[part.kind];
    if (!load) throw new NotFoundError(`no handler for ${part.kind} on this host`);
    // The part's own record, as its undo reads it (its arguments and what it settled).
    await (await load()).undo(Object.create(r, { op: { value: part } }) as OpRun);
    return { undone: of };
  },
  undo: async () => undefined,
  undoes: false,
};
