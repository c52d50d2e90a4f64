import { NotFoundError } from '../core/errors.js';
import { fleetViews, jobRequest, restartGraceMs, type HostRecord } from '../core/hosts.js';
import type { Strategy } from '../core/scheduler.js';
import type { JobSpec } from '../core/job-spec.js';
import { Scheduler } from '../core/scheduler.js';
import type { ContainerSummary, DockerEngine } from '../host/docker.js';
import {
  daemonContainer,
  daemonContainerName,
  LABEL_FLEET,
  LABEL_GENERATION,
  LABEL_JOB,
  LABEL_MODE,
  publishedPorts,
  startDaemon,
} from '../host/job-containers.js';
import type { HostRepo } from '../state/hosts.js';
import { desiredState, generationOf, type JobActual, type JobIntent, type JobRepo } from '../state/jobs.js';
import { directLinkEnv, linkEnv, type Ambassador } from './ambassador.js';

/** How a linked service is reached from jobs on this host: the agent's ambassador, or (no agent) its address now. */
export type LinkResolver = { ambassador: Ambassador } | { direct: true };

export interface ReconcilerOptions {
  host: string;
  fleet: string;
  /** Where this host's services are reached from other hosts. */
  serviceAddress: string;
  /** Remove containers knarr does not know, instead of only reporting them. */
  prune: boolean;
  /** The binds for a job's dot volumes on this host. */
  dotBinds: (spec: JobSpec) => Promise<string[]>;
  /** How the scheduler ranks hosts when it moves a job. */
  strategy?: Strategy;
  /** This machine's name: a job run here with no agent, on this engine, is taken over by this agent (an agent's own name may differ). */
  machine?: string;
  /** The names of the hosts that have every dot the job uses: a job moves only to one of them. */
  hostsWithDots?: (spec: JobSpec, hosts: HostRecord[]) => Promise<string[]>;
}

/** The job publishes a port on a host port the engine picks (host port 0). */
const picksPort = (spec: JobSpec) => spec.ports.some((p) => p.host === 0);

/** Jobs placed in one pass at most, each with its own event in the fleet's log; more make one event together. */
const PLACED_EVENTS_MAX = 10;
/** Placements whose compare-and-swaps are in flight at once, in one pass. */
const PLACING_AT_ONCE = 64;

/** After a pass in which some step failed (the store or the engine away for a moment), another pass this much later. */
const RETRY_PASS_MS = 2000;

/**
 * Brings this host's engine in line with the store: starts the jobs placed here, restarts a
 * container removed or left at an old generation, stops what should be stopped, removes what moved
 * away or was removed, and places jobs whose host went down (unless they are fixed there).
 * One pass at a time; each pass reads everything afresh, so a missed event costs nothing.
 */
export class Reconciler {
  /** The hosts the fleet had at the last pass (0 before one): how often the agent sweeps and renews depends on it. */
  fleetSize = 0;
  /** At the last pass, a job had no host, or its host was down: a host coming up may be where it goes. */
  waitingForHost = false;
  /** The hosts that had managed jobs placed on them at the last pass: only such a host going down asks for a pass. */
  hostsWithJobs = new Set<string>();
  /** Containers on this engine that are no knarr job, from the last pass. */
  unknown: { id: string; name: string; image: string }[] = [];
  private running: Promise<void> | null = null;
  private stopped = false;
  /** Jobs whose start failed: not tried again before `until`, so a start that keeps failing does not spin on its own docker events. */
  private readonly backoff = new Map<string, { failures: number; until: number; attempt: string; timer: NodeJS.Timeout }>();
  private dirty = false;
  /** Jobs a docker event named since the last pass. */
  private readonly touched = new Set<string>();
  private strays = false;
  private retry: NodeJS.Timeout | null = null;
  private waiters: (() => void)[] = [];
  /** When this agent first saw each host down: its jobs stay put until the host's restart grace has passed since then. */
  private readonly downSince = new Map<string, number>();
  private graceTimer: NodeJS.Timeout | null = null;
  /** Jobs placed here whose start failed in this pass, with why: each goes back to a host where it ran, if one can take it. */
  private readonly notStarted = new Map<string, string>();

  /** Turns pruning on or off (the agent's SIGHUP); the next pass follows it. */
  setPrune(prune: boolean): void {
    this.opts = { ...this.opts, prune };
    this.kick();
  }

  constructor(
    private opts: ReconcilerOptions,
    private readonly engine: DockerEngine,
    private readonly jobs: JobRepo,
    private readonly hosts: HostRepo,
    private readonly links: LinkResolver,
    private readonly log: (line: string) => void,
  ) {}

  /** No pass after this one (the agent stops): the waits of failed starts end with it. */
  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    for (const b of this.backoff.values()) clearTimeout(b.timer);
    this.backoff.clear();
  }

  /** Asks for a pass; passes asked for while one runs fold into one more. */
  kick(): void {
    if (this.stopped) return;
    this.dirty = true;
    if (!this.running) this.running = this.loop();
  }

  /** Resolves after a pass that started after this call. */
  converge(): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.kick();
    });
  }

  /** A docker event named this job: only it is brought in line (its intent, state and container), not the whole host. */
  touch(job: string): void {
    if (this.stopped) return;
    this.touched.add(job);
    if (!this.running) this.running = this.loop();
  }

  /** A container event without a job: the list of unknown containers is taken from the engine again, and pruned; the store is not read. */
  strayEvent(): void {
    if (this.stopped) return;
    this.strays = true;
    if (!this.running) this.running = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.dirty || this.touched.size > 0 || this.strays) {
      // A full pass covers every job and container: what was touched meanwhile needs nothing more.
      if (!this.dirty) {
        const jobs = [...this.touched];
        const strays = this.strays;
        this.touched.clear();
        this.strays = false;
        try {
          for (const job of jobs) await this.passJob(job);
          if (strays) await this.findStrays(await this.engine.list(true));
        } catch (e) {
          this.log(`reconcile: ${(e as Error).message}`);
          this.kick();
        }
        continue;
      }
      this.dirty = false;
      this.touched.clear();
      this.strays = false;
      const waiting = this.waiters.splice(0);
      try {
        await this.pass();
      } catch (e) {
        this.log(`reconcile: ${(e as Error).message}`);
      }
      for (const w of waiting) w();
    }
    this.running = null;
  }

  /** One job's part of a pass: its container kept as its intent says when it is placed here; anything else is left to a full pass. */
  private async passJob(job: string): Promise<void> {
    const name = daemonContainerName(job);
    const container = (await this.engine.list(true)).find((c) => (c.Names[0] ?? '').replace(/^\//, '') === name);
    const [intent, actual] = await Promise.all([this.jobs.intent(job), this.jobs.actual(job)]);
    if (intent?.managed && intent.host === this.opts.host) await this.ensure(intent, container, actual);
    // Its container left here for a job gone or moved: a full pass removes it.
    else if (container) this.kick();
  }

  async pass(): Promise<void> {
    const me = this.opts.host;
    // Containers before intents: a container seen here was made after its intent was written.
    const containers = await this.engine.list(true);
    // Actual states and services before intents: one written after its intent is seen with it.
    const [actuals, services] = await Promise.all([this.jobs.actuals(), this.jobs.services()]);
    const [intents, hosts] = await Promise.all([this.jobs.intents(), this.hosts.list()]);
    const byName = new Map(intents.map((i) => [i.spec.name, i]));
    // A job removed takes its failed starts' wait with it: a new job of that name starts afresh.
    for (const [name, b] of this.backoff) {
      if (byName.has(name)) continue;
      clearTimeout(b.timer);
      this.backoff.delete(name);
    }
    // What a pass wrote for a job removed meanwhile (job rm during the pass) goes here, on this host.
    for (const [name, a] of actuals) if (a.host === this.opts.host && !byName.has(name)) await this.jobs.removeRecords(name);
    // An environment's service (job '') is its balancer's, which this host's Balancers keep and drop: never a job's leftover.
    for (const svc of services) if (svc.host === this.opts.host && svc.job !== '' && !byName.has(svc.job)) await this.jobs.removeRecords(svc.job);
    const containerOf = new Map(containers.map((c) => [(c.Names[0] ?? '').replace(/^\//, ''), c]));

    // One job's failure (a store blip, a container going away under the engine) does not end the pass for the others; a pass runs again soon.
    let failed = false;
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (e) {
        failed = true;
        this.log(`reconcile: ${what}: ${(e as Error).message}`);
      }
    };
    for (const [n, i] of intents.entries()) {
      if (i.managed || !this.opts.machine || i.host !== this.opts.machine || (i.engine !== undefined && i.engine !== this.engine.socketPath)) continue;
      await step(`taking over job ${i.spec.name}`, async () => {
        const taken = await this.takeOver(i);
        if (!taken) return;
        intents[n] = taken;
        byName.set(taken.spec.name, taken);
      });
    }
    const linked = new Set<string>();
    this.notStarted.clear();
    for (const i of intents) {
      if (!i.managed || i.host !== me) continue;
      for (const l of i.spec.links) linked.add(l);
      await step(`job ${i.spec.name}`, () => this.ensure(i, containerOf.get(daemonContainerName(i.spec.name)), actuals.get(i.spec.name) ?? null));
    }
    for (const [n, i] of intents.entries()) {
      const error = this.notStarted.get(i.spec.name);
      if (error === undefined || !i.managed || i.host !== me) continue;
      await step(`giving back job ${i.spec.name}`, async () => {
        const moved = await this.giveBack(i, error, hosts, intents);
        if (moved) intents[n] = moved;
      });
    }
    const links = this.links;
    if ('ambassador' in links) await step('ambassador', () => links.ambassador.retain(linked));

    const up = new Set(hosts.filter((h) => h.up).map((h) => h.host.name));
    const graceLeft = this.graces(hosts);
    let nextGraceEnd = Infinity;
    const toPlace: number[] = [];
    for (const [n, i] of intents.entries()) {
      if (!i.managed || (i.host !== null && up.has(i.host))) continue;
      // A fixed job's data is on its host: it waits there.
      if (i.host !== null && i.spec.fixed) continue;
      // Its host may be restarting its agent: the job stays (running there still) until the grace is over.
      const wait = i.host === null ? 0 : (graceLeft.get(i.host) ?? 0);
      if (wait > 0) {
        nextGraceEnd = Math.min(nextGraceEnd, wait);
        continue;
      }
      toPlace.push(n);
    }
    await this.placeAll(toPlace, hosts, intents, step);

    if (nextGraceEnd < Infinity) this.passAfter(nextGraceEnd);
    this.fleetSize = hosts.length;
    this.waitingForHost = intents.some((i) => i.managed && (i.host === null || !up.has(i.host)));
    this.hostsWithJobs = new Set(intents.flatMap((i) => (i.managed && i.host !== null ? [i.host] : [])));

    for (const c of containers) {
      const job = c.Labels?.[LABEL_JOB];
      if (job === undefined) continue;
      // Foreground jobs belong to the CLI running them; other fleets' jobs are not ours to judge.
      if (c.Labels[LABEL_FLEET] !== this.opts.fleet || c.Labels[LABEL_MODE] !== 'daemon') continue;
      const intent = byName.get(job);
      if (intent && (!intent.managed || intent.host === me)) continue;
      // A copy here of a job that moved stays until the new placement runs: never a running copy traded for one that fails.
      if (intent?.host) {
        const kept = await this.keepUntilMoved(intent, c, actuals.get(job) ?? null, hosts).catch((e: Error) => {
          failed = true;
          this.log(`reconcile: job ${job}: ${e.message}`);
          return true;
        });
        if (kept) continue;
      }
      this.log(`removing container ${c.Names[0]} of job ${job}: ${intent ? `it moved to ${intent.host}` : 'the job was removed'}`);
      await this.engine.remove(c.Id).catch((e: Error) => {
        failed = true;
        this.log(`cannot remove ${c.Id.slice(0, 12)}: ${e.message}`);
      });
    }
    await this.findStrays(containers);
    if (failed && !this.retry) {
      this.retry = setTimeout(() => {
        this.retry = null;
        this.kick();
      }, RETRY_PASS_MS).unref();
    }
  }

  /** The containers on this engine that are no knarr job: reported, or removed with prune. */
  private async findStrays(containers: ContainerSummary[]): Promise<void> {
    const unknown = containers.filter((c) => c.Labels?.[LABEL_JOB] === undefined);
    this.unknown = unknown.map((c) => ({ id: c.Id.slice(0, 12), name: (c.Names[0] ?? '').replace(/^\//, ''), image: c.Image }));
    if (!this.opts.prune) return;
    for (const c of unknown) {
      this.log(`pruning container ${c.Names[0]} (${c.Image}): knarr has no job for it`);
      await this.engine.remove(c.Id).catch((e: Error) => this.log(`cannot prune ${c.Id.slice(0, 12)}: ${e.message}`));
    }
    this.unknown = [];
  }

  /**
   * Each down host's time left in its restart grace (ms), counted from when this agent first saw it
   * down; an agent that starts counts from its start. Hosts up again, or gone, are forgotten.
   */
  private graces(hosts: { host: HostRecord; up: boolean }[]): Map<string, number> {
    // A monotonic clock: a wall-clock step (NTP) neither ends a grace early nor stretches it.
    const now = performance.now();
    const left = new Map<string, number>();
    const known = new Set(hosts.map((h) => h.host.name));
    for (const name of this.downSince.keys()) if (!known.has(name)) this.downSince.delete(name);
    for (const { host, up } of hosts) {
      if (up) {
        this.downSince.delete(host.name);
        continue;
      }
      const since = this.downSince.get(host.name) ?? now;
      this.downSince.set(host.name, since);
      const wait = since + restartGraceMs(host) - now;
      if (wait > 0) left.set(host.name, wait);
    }
    return left;
  }

  /** A pass ms from now, when the soonest grace ends (each pass sets it anew). */
  private passAfter(ms: number): void {
    if (this.stopped) return;
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => {
      this.graceTimer = null;
      this.kick();
    }, ms + 50).unref();
  }

  /**
   * Whether this host keeps its copy of a job placed on another host: yes until that placement reports
   * it started. When the placement failed to start and the copy here runs, the job comes back here
   * (one agent's compare-and-swap on the intent wins), so the running copy serves on.
   */
  private async keepUntilMoved(
    intent: JobIntent,
    container: ContainerSummary,
    actual: JobActual | null,
    hosts: { host: HostRecord; up: boolean }[],
  ): Promise<boolean> {
    const name = intent.spec.name;
    const there = intent.host!;
    const current = actual?.host === there && (actual.generation ?? 0) === generationOf(intent);
    if (current && actual.state !== 'failed') return false;
    if (!current || container.State !== 'running' || desiredState(intent) === 'stopped') return true;
    const me = this.opts.host;
    const mine = hosts.find((h) => h.host.name === me);
    // Only where the job may run: not pinned elsewhere, this host serving and not draining.
    if ((intent.spec.host !== null && intent.spec.host !== me) || !mine?.up || mine.host.state !== 'ok') return true;
    const back = await this.jobs.updateIntent(name, (cur) =>
      cur.host === there && generationOf(cur) === generationOf(intent) && cur.managed ? { ...cur, host: me } : null,
    );
    if (back) {
      await this.jobs.addEvent(name, { host: me, event: 'moved', detail: `back from ${there}, where it did not start (${actual.error ?? 'failed'})` });
      this.log(`job ${name}: back from ${there}, where it did not start; its copy here runs on`);
      this.kick();
    }
    return true;
  }

  private async ensure(i: JobIntent, container: ContainerSummary | undefined, actual: JobActual | null): Promise<void> {
    const name = i.spec.name;
    const me = this.opts.host;
    if (desiredState(i) === 'stopped') {
      if (container && container.State !== 'exited' && container.State !== 'created') await this.engine.stop(container.Id);
      if (actual?.state !== 'stopped' || actual.host !== me) {
        const reported = await this.report(i, {
          host: me,
          container: container?.Id ?? '',
          state: 'stopped',
          startedAt: actual?.startedAt ?? '',
          generation: generationOf(i),
        });
        if (reported) await this.jobs.addEvent(name, { host: me, event: 'stopped' });
      }
      return;
    }
    if (container && Number(container.Labels[LABEL_GENERATION] ?? 0) !== generationOf(i)) {
      await this.engine.remove(container.Id);
      await this.jobs.addEvent(name, { host: me, event: 'restarted', detail: `generation ${generationOf(i)}` });
      container = undefined;
    }
    if (!container || container.State === 'created') {
      if (container) await this.engine.remove(container.Id).catch(() => undefined);
      await this.start(i, actual);
      return;
    }
    const info = await this.engine.inspect(container.Id);
    const state: JobActual['state'] = info.State.Running ? 'running' : info.State.Restarting ? 'restarting' : 'exited';
    const next: JobActual = {
      host: me,
      container: container.Id,
      state,
      startedAt: info.State.StartedAt,
      exitCode: info.State.ExitCode,
      restarts: info.RestartCount,
      generation: generationOf(i),
    };
    // A container started again (docker restart) may have been given another port where the engine picks it: its service is written again.
    const samePorts = !picksPort(i.spec) || actual?.startedAt === next.startedAt;
    if (actual && actual.host === me && actual.container === next.container && actual.state === next.state && actual.restarts === next.restarts && samePorts)
      return;
    if (!(await this.report(i, next))) return;
    if (state === 'running') await this.jobs.putServices(i.spec, me, this.opts.serviceAddress, publishedPorts(info));
    if (state === 'exited' && actual?.state !== 'exited')
      await this.jobs.addEvent(name, { host: me, event: 'exited', detail: `exit code ${info.State.ExitCode}` });
  }

  /** This host's report of a job it runs (an agent's, or the CLI's with no agent), written only while the job is still placed here as this pass saw it. */
  private report(i: JobIntent, a: JobActual): Promise<boolean> {
    const me = this.opts.host;
    return this.jobs.putActualWhile(
      i.spec.name,
      a,
      (cur) =>
        (cur.managed ?? false) === (i.managed ?? false) && cur.host === me && generationOf(cur) === generationOf(i) && desiredState(cur) === desiredState(i),
    );
  }

  private async start(i: JobIntent, previous: JobActual | null): Promise<void> {
    const name = i.spec.name;
    const me = this.opts.host;
    // A new generation (job restart), or a new job of that name, is tried at once.
    const attempt = `${generationOf(i)}@${i.createdAt}`;
    const waiting = this.backoff.get(name);
    if (waiting && waiting.attempt === attempt && Date.now() < waiting.until) return;
    try {
      const env: Record<string, string> = { KNARR_HOST: me, KNARR_JOB: name };
      const gateway = i.spec.links.length > 0 ? await this.engine.gateway(i.spec.network) : null;
      for (const service of i.spec.links) Object.assign(env, await this.linkEnv(service, gateway));
      const binds = await this.opts.dotBinds(i.spec);
      const id = await startDaemon(this.engine, i.spec, daemonContainer(i.spec, this.opts.fleet, generationOf(i), { env, binds }));
      // A port the engine picked is known once the container runs.
      const info = picksPort(i.spec) ? await this.engine.inspect(id) : null;
      const reported = await this.report(i, {
        host: me,
        container: id,
        state: 'running',
        startedAt: info?.State.StartedAt ?? new Date().toISOString(),
        restarts: 0,
        generation: generationOf(i),
      });
      if (!reported) {
        // Moved or changed while it started: the next pass (the intent's watch asks for one) judges this copy.
        this.log(`started job ${name} (${id.slice(0, 12)}), but it no longer runs here as started`);
        return;
      }
      await this.jobs.putServices(i.spec, me, this.opts.serviceAddress, info ? publishedPorts(info) : undefined);
      await this.jobs.addEvent(name, { host: me, event: 'started', detail: id.slice(0, 12) });
      this.log(`started job ${name} (${id.slice(0, 12)})`);
      if (waiting) clearTimeout(waiting.timer);
      this.backoff.delete(name);
    } catch (e) {
      const error = (e as Error).message;
      // 1 s, 2 s, 4 s ... up to a minute between tries; a pass is asked for when the wait is over.
      const failures = waiting?.attempt === attempt ? waiting.failures + 1 : 1;
      const delay = Math.min(60_000, 1000 * 2 ** (failures - 1));
      if (waiting) clearTimeout(waiting.timer);
      this.backoff.set(name, { failures, until: Date.now() + delay, attempt, timer: setTimeout(() => this.kick(), delay).unref() });
      this.log(`job ${name} did not start: ${error} (next try in ${delay / 1000}s)`);
      this.notStarted.set(name, error);
      if (previous?.state === 'failed' && previous.error === error && previous.host === me) return;
      if (!(await this.report(i, { host: me, container: '', state: 'failed', startedAt: '', error, generation: generationOf(i) }))) return;
      await this.jobs.addEvent(name, { host: me, event: 'failed', detail: error });
    }
  }

  /** A linked service's variables for a job on this host; gateway is the host's address on the job's network (null: the host's own network). */
  private async linkEnv(service: string, gateway: string | null): Promise<Record<string, string>> {
    if ('ambassador' in this.links) return linkEnv(service, await this.links.ambassador.ensure(service, gateway ?? undefined), gateway ?? undefined);
    const s = await this.jobs.service(service);
    if (!s) throw new NotFoundError(`linked service ${service} does not exist`, { hint: 'see knarr service list' });
    return directLinkEnv(service, s, gateway);
  }

  /**
   * Converges one job on this host now, whoever placed it: the CLI's inline path when no agent
   * serves the host. A job that is gone has its container removed.
   */
  async one(name: string): Promise<JobActual | null> {
    const container = (await this.engine.list(true)).find((c) => (c.Names[0] ?? '') === `/${daemonContainerName(name)}` && c.Labels?.[LABEL_MODE] === 'daemon');
    const intent = await this.jobs.intent(name);
    if (!intent) {
      if (container) await this.engine.remove(container.Id);
      return null;
    }
    await this.ensure(intent, container, await this.jobs.actual(name));
    return this.jobs.actual(name);
  }

  /**
   * A job run on this machine's engine with no agent becomes one this agent keeps running, like any
   * other: a container removed behind knarr's back is made again. The intent as taken over, or null.
   */
  private async takeOver(i: JobIntent): Promise<JobIntent | null> {
    const me = this.opts.host;
    const taken = await this.jobs.updateIntent(i.spec.name, (cur) =>
      cur.managed || cur.host !== i.host ? null : { ...cur, engine: undefined, managed: true, host: me },
    );
    if (!taken) return null;
    await this.jobs.addEvent(i.spec.name, { host: me, event: 'placed', detail: `taken over by the agent of ${me}` });
    this.log(`job ${i.spec.name}: run here with no agent, now kept by this agent`);
    return taken;
  }

  /**
   * A job placed here that did not start goes back to a host it ran on before (newest first) that is up
   * and can take it; a pinned or fixed job, or one with no such host, stays and is tried again here.
   */
  private async giveBack(i: JobIntent, error: string, hosts: { host: HostRecord; up: boolean }[], intents: JobIntent[]): Promise<JobIntent | null> {
    const me = this.opts.host;
    if (i.spec.host !== null || i.spec.fixed) return null;
    const history = (await this.jobs.pastHosts(i.spec.name)).filter((h) => h !== me);
    const candidates = hosts.filter((h) => h.up && history.includes(h.host.name));
    if (candidates.length === 0) return null;
    const others = intents.filter((x) => x.spec.name !== i.spec.name);
    const p = new Scheduler(fleetViews(candidates, others), { strategy: this.opts.strategy }).place(jobRequest(i.spec, history));
    if (!p.host) return null;
    const to = p.host;
    const moved = await this.jobs.updateIntent(i.spec.name, (cur) =>
      cur.host === me && generationOf(cur) === generationOf(i) && cur.managed ? { ...cur, host: to } : null,
    );
    if (!moved) return null;
    await this.jobs.addEvent(i.spec.name, { host: to, event: 'moved', detail: `from ${me}, where it did not start (${error})` });
    this.log(`job ${i.spec.name}: did not start here; back to ${to}, where it ran before`);
    return moved;
  }

  /**
   * Places the jobs at these indexes of intents (each rewritten there once placed). A job that uses dots is placed alone,
   * among the hosts that have them; the others share one scheduler (each placement books its host, so later ones see
   * it: two jobs do not both take the last room on a host), and several of their compare-and-swaps are in flight at once.
   * Many jobs placed together make one event in the fleet's log (each job's own history has its line).
   */
  private async placeAll(
    indexes: number[],
    hosts: Awaited<ReturnType<HostRepo['list']>>,
    intents: JobIntent[],
    step: (what: string, fn: () => Promise<unknown>) => Promise<void>,
  ): Promise<void> {
    const usesDots = (i: JobIntent) => i.spec.volumes.some((v) => v.kind === 'dot');
    for (const n of indexes.filter((x) => usesDots(intents[x]!)))
      await step(`placing job ${intents[n]!.spec.name}`, async () => {
        const moved = await this.place(intents[n]!, hosts, intents);
        if (moved) intents[n] = moved;
      });
    const rest = indexes.filter((x) => !usesDots(intents[x]!));
    if (rest.length === 0) return;
    const scheduler = new Scheduler(fleetViews(hosts, intents), { strategy: this.opts.strategy });
    const quiet = rest.length > PLACED_EVENTS_MAX;
    let next = 0;
    let placed = 0;
    await Promise.all(
      Array.from({ length: Math.min(PLACING_AT_ONCE, rest.length) }, async () => {
        while (next < rest.length) {
          const n = rest[next++]!;
          await step(`placing job ${intents[n]!.spec.name}`, async () => {
            const i = intents[n]!;
            const p = scheduler.place(jobRequest(i.spec, await this.jobs.pastHosts(i.spec.name)));
            if (!p.host) return;
            // One transaction guarded by the intent as listed; one changed meanwhile is read again and judged afresh.
            const from = i.host;
            const e = { host: p.host, event: from ? ('moved' as const) : ('placed' as const), detail: from ? `from ${from}, which is down` : undefined };
            const listed = await this.jobs.placeListed(i, p.host, e, from ? [from] : []);
            if (listed && !quiet) await this.jobs.fleetEvent(p.host, e.event, i.spec.name, e.detail ?? '');
            const moved = listed ?? (await this.record(i, p.host, quiet));
            if (!moved) return;
            intents[n] = moved;
            placed++;
          });
        }
      }),
    );
    if (quiet && placed > 0) {
      this.log(`placed ${placed} jobs (of ${rest.length} without a running host)`);
      await this.jobs.fleetEvent(this.opts.host, 'placed', `${placed} jobs`, `placed or moved by the agent of ${this.opts.host}; see each with knarr job show`);
    }
  }

  /**
   * Places a job whose host is down (or that has none), on a host that has its dots; one agent's move
   * wins, the others' lose the race, and none moves it off a host that came back meanwhile. The intent as moved, or null.
   */
  private async place(i: JobIntent, hosts: Awaited<ReturnType<HostRepo['list']>>, intents: JobIntent[]): Promise<JobIntent | null> {
    const history = await this.jobs.pastHosts(i.spec.name);
    const others = intents.filter((x) => x.spec.name !== i.spec.name);
    const withDots = this.opts.hostsWithDots
      ? new Set(
          await this.opts.hostsWithDots(
            i.spec,
            hosts.map((h) => h.host),
          ),
        )
      : null;
    const candidates = withDots ? hosts.filter((h) => withDots.has(h.host.name)) : hosts;
    const p = new Scheduler(fleetViews(candidates, others), { strategy: this.opts.strategy }).place(jobRequest({ ...i.spec, host: i.spec.host }, history));
    return p.host ? this.record(i, p.host, false) : null;
  }

  /** Records a placement with a compare-and-swap on the intent (and, for a move, its old host still down); null when another won. */
  private async record(i: JobIntent, to: string, quiet: boolean): Promise<JobIntent | null> {
    const from = i.host;
    const moved = await this.jobs.updateIntent(i.spec.name, (cur) => (cur.host === from ? { ...cur, host: to } : null), from ? [from] : []);
    if (!moved) return null;
    const e = { host: to, event: from ? ('moved' as const) : ('placed' as const), detail: from ? `from ${from}, which is down` : undefined };
    if (quiet) await this.jobs.addHistory(i.spec.name, e);
    else {
      await this.jobs.addEvent(i.spec.name, e);
      this.log(`job ${i.spec.name}: ${from ? `moved from ${from} (down)` : 'placed'} to ${to}`);
    }
    return moved;
  }
}
