import { nodeLimits } from '../../core/cluster.js';
import { ConflictError, FailureError, NotFoundError, PrerequisiteError } from '../../core/errors.js';
import { planEvacuation, unplacedText, type EvacuationJob, type EvacuationNode, type EvacuationPlan } from '../../core/evacuation.js';
import { clusterViews, nodeUses } from '../../core/cluster-placement.js';
import { jobRequest } from '../../core/hosts.js';
import { validateName } from '../../core/names.js';
import { OpArgs } from '../../core/op-args.js';
import { describeOp, isTerminal, opId, type OpRecord } from '../../core/ops.js';
import { Wakeup } from '../../core/streams.js';
import { thisHost } from '../../daemon/pidfile.js';
import type { OpHandler, OpRun } from '../../ops/runner.js';
import { ClusterRepo } from '../../state/clusters.js';
import { recordEvent } from '../../state/events.js';
import { HostRepo } from '../../state/hosts.js';
import { desiredState, generationOf, JobRepo } from '../../state/jobs.js';
import { fleetKeys } from '../../state/keys.js';
import { OpRepo } from '../../state/ops.js';
import { PlaceholderRepo } from '../../state/placeholders.js';
import type { Store } from '../../state/store.js';
import { runOperation } from '../op.js';
import type { CommandResult, Context } from '../types.js';
import { withStore } from '../with-store.js';
import { hostsWithDots } from '../job/volumes.js';

/** A job the evacuation moved, and how it stands on its new host. */
export interface MovedJob {
  job: string;
  from: string;
  to: string;
  /** Its state on the new host once it got there (running, exited, stopped). */
  state?: string;
}

/** A node the evacuation migrated, with the child operation that did it. */
export interface MigratedNode {
  user: string;
  cluster: string;
  node: number;
  container: string;
  to: string;
  op: string;
}

export interface EvacuationResult {
  host: string;
  state: 'evacuated';
  moved: MovedJob[];
  staying: { job: string; why: string }[];
  migrated: MigratedNode[];
  /** Clusters whose home was the host and whose nodes all left it: their home is now their first node's host. */
  rehomed: { user: string; cluster: string; host: string }[];
}

/** How long the evacuation waits for the moved jobs to start on their new hosts. */
const START_WAIT_MS = 120_000;
/** Rounds of planning and moving before jobs still being placed on the host (a race with job run) are given up on. */
const MOVE_ROUNDS = 5;

/** The evacuation of host as the fleet stands now: where each job and node on it would go. */
export async function evacuationPlan(ctx: Context, store: Store, host: string): Promise<EvacuationPlan> {
  const fleet = ctx.config.fleet;
  const jobs = new JobRepo(store, fleet);
  const [hosts, intents, clusters] = await Promise.all([new HostRepo(store, fleet).list(), jobs.intents(), new ClusterRepo(store, fleet).list()]);
  const others = hosts.filter((h) => h.host.name !== host).map((h) => h.host);
  const items: EvacuationJob[] = [];
  for (const i of intents.filter((x) => x.host === host).sort((a, b) => (a.spec.name < b.spec.name ? -1 : 1))) {
    const stays = !i.managed
      ? `run with no agent, on ${host}'s engine: no agent moves it`
      : i.spec.fixed
        ? `fixed: its data is on ${host}`
        : i.spec.host === host
          ? `pinned to ${host} (--host)`
          : null;
    const usesDots = i.spec.volumes.some((v) => v.kind === 'dot');
    // A stopped job holds its ports, not its cpu or memory (as the scheduler counts it).
    const spec = desiredState(i) === 'stopped' ? { ...i.spec, cpu: 0, memory: 0 } : i.spec;
    items.push({
      name: i.spec.name,
      request: jobRequest(spec, stays === null ? await jobs.pastHosts(i.spec.name) : []),
      allowed: stays === null && usesDots ? await hostsWithDots(store, fleet, i.spec, others) : null,
      stays,
    });
  }
  const repo = new ClusterRepo(store, fleet);
  const busy = clusters.some((c) => c.nodes.some((n) => n.host === host)) ? await new OpRepo(store, fleet).pendingTopLevel() : [];
  const nodes: EvacuationNode[] = [];
  for (const c of clusters) {
    const here = c.nodes.filter((n) => n.host === host);
    if (here.length === 0) continue;
    const withImage = (await Promise.all(others.map(async (h) => ((await repo.image(h.name, c.image)) ? [h.name] : [])))).flat();
    const op = busy.find((o) => o.args.user === c.user && o.args.name === c.name);
    // Busy or unsettled clusters wait; with /nfs on this pool, the first node moved would see other files (migrate refuses it).
    const blocked = op
      ? `cluster ${c.user}/${c.name} has ${op.id} (${op.kind}) ${op.status}`
      : c.status !== 'running' && c.status !== 'stopped'
        ? `cluster ${c.user}/${c.name} is ${c.status} (${c.op})`
        : c.files !== 'share' && c.nodes.length > 1
          ? `cluster ${c.user}/${c.name} keeps /nfs on ${host}'s pool (made without the fleet's share): its ${c.nodes.length} nodes cannot move one at a time`
          : null;
    const peers = c.nodes.filter((n) => n.host !== host).map((n) => n.host);
    for (const n of here)
      nodes.push({
        user: c.user,
        cluster: c.name,
        node: n.index,
        container: n.container,
        ...nodeLimits(c, n),
        allowed: withImage,
        peers,
        blocked,
      });
  }
  // Jobs, cluster nodes and the room placeholders hold for creates and migrations under way, as cluster placement sees the fleet.
  const views = clusterViews(hosts, intents, nodeUses(clusters, await new PlaceholderRepo(store, fleet).list()));
  return planEvacuation(host, views, items, nodes, ctx.config.scheduler.strategy);
}

/** Nothing may be left behind unplaced: the refusal names each thing and every host's reason. */
function refuseUnplaced(plan: EvacuationPlan, changed: boolean): void {
  if (plan.unplaced.length === 0) return;
  const what = changed
    ? `host ${plan.host} stays evacuated and what moved stays where it went, but there is nowhere to move ${unplacedText(plan)}`
    : `cannot evacuate host ${plan.host}: nothing was changed; nowhere to move ${unplacedText(plan)}`;
  throw new ConflictError(what, {
    hint:
      'make room (knarr host drain --undo, a new host, knarr image import), wait for the operations named, or remove what cannot move; then ' +
      'run knarr host evacuate again',
    detail: { unplaced: plan.unplaced },
  });
}

/**
 * host.evacuate: marks the host evacuated (no new work lands there), moves each job that may move with a
 * compare-and-swap on its intent (the new host's agent starts it, then the old host's agent removes its copy),
 * waits for them to start, then migrates each cluster node with a cluster.migrate child operation. Forward
 * only: a failure leaves what moved where it went; running it again goes on from there.
 */
export const hostEvacuateOp: OpHandler = {
  undoes: false,
  async run(r: OpRun): Promise<EvacuationResult> {
    const host = new OpArgs(r.op).string('host');
    const fleet = r.ctx.config.fleet;
    const jobs = new JobRepo(r.store, fleet);
    const state = r.op.state as { marked?: boolean; moved?: MovedJob[]; migrated?: MigratedNode[] };
    if (!state.marked) {
      refuseUnplaced(await evacuationPlan(r.ctx, r.store, host), false);
      const marked = await new HostRepo(r.store, fleet).update(host, (cur) => cur && { ...cur, state: 'evacuated', updatedAt: new Date().toISOString() });
      if (!marked) throw new NotFoundError(`no host named ${host} in fleet`);
      await r.save({ marked: true });
    }
    const moved = new Map((state.moved ?? []).map((m) => [m.job, m]));
    const saveMoved = () => r.save({ moved: [...moved.values()] });
    // Each round plans afresh: a job placed here just before the mark, or changed under a move, is moved in the next.
    let plan = await evacuationPlan(r.ctx, r.store, host);
    for (let round = 1; plan.moves.length > 0; round++) {
      refuseUnplaced(plan, true);
      if (round > MOVE_ROUNDS)
        throw new ConflictError(`jobs kept changing on host ${host} while it was evacuated: ${plan.moves.map((m) => m.job).join(', ')}`, {
          hint: `run knarr host evacuate ${host} again`,
        });
      for (const [k, m] of plan.moves.entries()) {
        await r.checkpoint();
        // Written down before the move: a resumed run checks it against the intent at the end.
        moved.set(m.job, { job: m.job, from: host, to: m.to });
        await saveMoved();
        const next = await jobs.updateIntent(m.job, (cur) =>
          cur.host === host && cur.managed && !cur.spec.fixed && cur.spec.host !== host ? { ...cur, host: m.to } : null,
        );
        if (next) await jobs.addEvent(m.job, { host: m.to, event: 'moved', detail: `from ${host}, evacuated by ${r.op.id}` });
        await r.progress(k + 1, plan.moves.length, `job ${m.job} to ${m.to}`);
      }
      plan = await evacuationPlan(r.ctx, r.store, host);
    }
    refuseUnplaced(plan, true);
    const notStarted = await waitForStarts(r, jobs, moved);
    await saveMoved();
    const migrated = await migratedBefore(r, state.migrated ?? []);
    for (const [k, n] of plan.migrations.entries()) {
      await r.checkpoint();
      await r.progress(k, plan.migrations.length, `node ${n.container} to ${n.to}`);
      const args = { user: n.user, name: n.cluster, node: n.node, to: n.to };
      // On the node's host, where its container and volume are (this operation's own host: it runs inline).
      const child = await r.child(`migrate:${n.user}/${n.cluster}/${n.node}`, 'cluster.migrate', args, host);
      if (child.status !== 'done')
        throw new FailureError(
          `node ${n.node} of cluster ${n.user}/${n.cluster} (${n.container}) was not migrated to ${n.to}: ${child.error ?? child.status}`,
          {
            hint: `see it with: knarr op show ${child.id}; run knarr host evacuate ${host} again to go on`,
          },
        );
      migrated.push({ ...n, op: child.id });
      await r.save({ migrated });
    }
    const rehomed = await rehome(r, host);
    if (notStarted.length > 0)
      throw new FailureError(`moved off ${host}, but not started on the new host: ${notStarted.join('; ')}`, {
        hint: `their copies on ${host} run on; see each with knarr job show, then run knarr host evacuate ${host} again or knarr host restore ${host}`,
      });
    const result: EvacuationResult = { host, state: 'evacuated', moved: [...moved.values()], staying: plan.staying, migrated, rehomed };
    await recordEvent(r.store, fleet, {
      kind: 'host',
      object: host,
      host,
      event: 'evacuated',
      message: `${result.moved.length} job(s) moved, ${migrated.length} node(s) migrated, ${result.staying.length} job(s) stay (${r.op.id})`,
    });
    return result;
  },
  async undo() {
    // Forward only: what moved stays where it went, and the host stays evacuated until host restore.
  },
};

/** The nodes this operation migrated before it was interrupted, the last one's child possibly ended but not yet recorded here. */
async function migratedBefore(r: OpRun, recorded: MigratedNode[]): Promise<MigratedNode[]> {
  const migrated = [...recorded];
  const children = (r.op.state.children ?? {}) as Record<string, number>;
  const ops = new OpRepo(r.store, r.ctx.config.fleet);
  const clusters = new ClusterRepo(r.store, r.ctx.config.fleet);
  for (const [key, n] of Object.entries(children)) {
    if (!key.startsWith('migrate:') || migrated.some((m) => m.op === opId(n))) continue;
    const child = await ops.get(opId(n));
    if (child?.status !== 'done') continue;
    const a = child.args as { user: string; name: string; node: number; to: string };
    const node = (await clusters.get(a.user, a.name))?.nodes.find((x) => x.index === a.node);
    migrated.push({ user: a.user, cluster: a.name, node: a.node, container: node?.container ?? '', to: a.to, op: child.id });
  }
  return migrated;
}

/** A cluster whose home is the host and whose nodes are all elsewhere now gets its first node's host as home, where its whole-cluster operations go. */
async function rehome(r: OpRun, host: string): Promise<EvacuationResult['rehomed']> {
  const repo = new ClusterRepo(r.store, r.ctx.config.fleet);
  const rehomed: EvacuationResult['rehomed'] = [];
  for (const c of await repo.list()) {
    if (c.host !== host) continue;
    const next = await repo.update(c.user, c.name, (cur) =>
      cur.host === host && cur.nodes.length > 0 && cur.nodes.every((n) => n.host !== host) ? { ...cur, host: cur.nodes[0]!.host } : null,
    );
    if (next && next.host !== host) rehomed.push({ user: c.user, cluster: c.name, host: next.host });
  }
  return rehomed;
}

/**
 * Waits until each moved job runs (or is stopped, as asked) on its new host, then rewrites its intent unchanged so
 * every agent takes a pass at once: the old copy goes without waiting for a sweep. Drops a move that did not
 * happen or was undone by someone else; returns the jobs that did not start, with why.
 */
async function waitForStarts(r: OpRun, jobs: JobRepo, moved: Map<string, MovedJob>): Promise<string[]> {
  const wakeup = new Wakeup();
  const ac = new AbortController();
  const waiting = new Set(moved.keys());
  const notStarted: string[] = [];
  const deadline = Date.now() + START_WAIT_MS;
  await r.store.watch(fleetKeys(r.ctx.config.fleet).ps, () => wakeup.wake(), ac.signal);
  try {
    while (waiting.size > 0) {
      await r.checkpoint();
      for (const name of [...waiting]) {
        const m = moved.get(name)!;
        const [i, a] = await Promise.all([jobs.intent(name), jobs.actual(name)]);
        if (!i || i.host !== m.to) {
          waiting.delete(name);
          moved.delete(name);
          continue;
        }
        if (!a || a.host !== m.to || (a.generation ?? 0) !== generationOf(i)) continue;
        waiting.delete(name);
        if (a.state === 'failed') notStarted.push(`job ${name} on ${m.to} (${a.error ?? 'failed'})`);
        else {
          m.state = a.state;
          await jobs.updateIntent(name, (cur) => (cur.host === m.to ? cur : null));
        }
      }
      await r.progress(moved.size - waiting.size, moved.size, `jobs started on their new hosts`);
      if (waiting.size === 0) break;
      if (Date.now() > deadline) {
        for (const name of waiting) notStarted.push(`job ${name} on ${moved.get(name)!.to} (not started within ${START_WAIT_MS / 1000} s)`);
        break;
      }
      await wakeup.sleep(2000);
    }
  } finally {
    ac.abort();
  }
  return notStarted;
}

/** The evacuation's account, a line each. */
function resultLines(
  res: Pick<EvacuationResult, 'moved' | 'staying'> & {
    migrated: { user: string; cluster: string; node: number; container: string; to: string }[];
    rehomed?: EvacuationResult['rehomed'];
  },
) {
  return [
    ...res.moved.map((m) => `job ${m.job}: moved ${m.from} -> ${m.to}${m.state ? ` (${m.state})` : ''}`),
    ...res.staying.map((s) => `job ${s.job}: stays (${s.why})`),
    ...res.migrated.map((n) => `node ${n.node} of cluster ${n.user}/${n.cluster} (${n.container}): migrated -> ${n.to}`),
    ...(res.rehomed ?? []).map((c) => `cluster ${c.user}/${c.cluster}: home host now ${c.host}`),
  ];
}

/** `knarr host evacuate HOST [--detach]`: refused before anything changes when something cannot go elsewhere. */
export async function hostEvacuate(name: string, opts: { detach: boolean }, ctx: Context): Promise<CommandResult> {
  return withStore(ctx, async (store) => {
    const found = await new HostRepo(store, ctx.config.fleet).get(validateName('HOST', name));
    if (!found) throw new NotFoundError(`no host named ${name} in fleet`, { hint: 'list hosts with: knarr host list' });
    const here = await thisHost(ctx.config.stateDir);
    if (!found.up && name !== here && !opts.detach)
      throw new PrerequisiteError(`host ${name} is down: its agent runs the evacuation (its nodes are sent from there); nothing was changed`, {
        hint: `start its agent, or add --detach to queue it for when it is back (its non-fixed jobs move by themselves once its restart grace is over)`,
      });
    const plan = await evacuationPlan(ctx, store, name);
    refuseUnplaced(plan, false);
    if (ctx.runner.dryRun) {
      ctx.runner.note(`set host ${name}'s state to evacuated in etcd: no new work lands there`);
      for (const m of plan.moves) ctx.runner.note(`move job ${m.job} from ${name} to ${m.to} (its intent, compare-and-swap): ${m.to}'s agent starts it`);
      for (const s of plan.staying) ctx.runner.note(`job ${s.job} stays on ${name}: ${s.why}`);
      for (const n of plan.migrations)
        ctx.runner.note(`migrate node ${n.node} of cluster ${n.user}/${n.cluster} (${n.container}) to ${n.to}: a cluster.migrate operation on ${name}`);
      ctx.runner.note(
        `queue operation host.evacuate (host=${name}) for ` +
          `host ${name}; ${found.up ? 'its agent runs it' : name === here ? 'this command runs it' : 'it waits for its agent'}`,
      );
      const planned = { host: name, planned: true, moves: plan.moves, staying: plan.staying, migrations: plan.migrations };
      const lines = resultLines({ moved: plan.moves.map((m) => ({ ...m, from: name })), staying: plan.staying, migrated: plan.migrations });
      return { data: planned, view: { kind: 'lines', lines: [`host ${name} would be evacuated`, ...lines] } };
    }
    const res = await runOperation(ctx, store, 'host.evacuate', { host: name }, name, { detach: opts.detach });
    const op = res.data as OpRecord;
    if (op?.status !== 'done' || !op.result) return res;
    return { ...res, view: { kind: 'lines', lines: [describeOp(op), ...resultLines(op.result as EvacuationResult)] } };
  });
}

/** `knarr host restore HOST`: the host takes new work again; nothing moves back by itself. */
export async function hostRestore(name: string, ctx: Context): Promise<CommandResult> {
  return withStore(ctx, async (store) => {
    const hosts = new HostRepo(store, ctx.config.fleet);
    const found = await hosts.get(validateName('HOST', name));
    if (!found) throw new NotFoundError(`no host named ${name} in fleet`, { hint: 'list hosts with: knarr host list' });
    const ops = new OpRepo(store, ctx.config.fleet);
    for (const { id } of await ops.pending(name)) {
      const op = await ops.get(id);
      if (op?.kind === 'host.evacuate' && !isTerminal(op.status))
        throw new ConflictError(`host ${name} is being evacuated by ${op.id} (${op.status})`, {
          hint: `let it end (knarr op wait ${op.id}) or stop it (knarr op cancel ${op.id}), then restore`,
        });
    }
    const previous = found.host.state;
    if (ctx.runner.dryRun) ctx.runner.note(`set host ${name}'s state to ok in etcd: new work may land there; nothing moves back by itself`);
    else await hosts.update(name, (cur) => cur && { ...cur, state: 'ok', updatedAt: new Date().toISOString() });
    return {
      data: { host: name, state: 'ok', previous },
      view: { kind: 'lines', lines: [`host ${name} takes new work again (was ${previous}); nothing moves back by itself`] },
    };
  });
}
