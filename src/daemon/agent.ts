import { logOptionsFromQuery } from '../core/logs.js';
import { randomBytes } from 'node:crypto';
import { cpus, freemem, totalmem } from 'node:os';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { IncomingMessage, Server } from 'node:http';
import { PassThrough, Writable, type Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HostRecord, JoinState, StartMode } from '../core/hosts.js';
import { EngineError, PrerequisiteError, ValidationError } from '../core/errors.js';
import { JOB_NAME_RE, MAX_JOB_REQUEST_BYTES, parseJobSpec, type JobSpec } from '../core/job-spec.js';
import { CONTROL_FRAME, DockerEngine, frame } from '../host/docker.js';
import { daemonContainerName, foregroundContainer, LABEL_FLEET, LABEL_JOB, LABEL_MODE, startAttached, type AttachedRun } from '../host/job-containers.js';
import type { HostRepo } from '../state/hosts.js';
import { EVENT_WRITE_TIMEOUT_MS } from '../core/events.js';
import { bounded, EventLog, recordEvent } from '../state/events.js';
import { collectGarbage } from '../state/gc.js';
import { JobRepo } from '../state/jobs.js';
import { fleetKeys, SCHEMA_VERSION } from '../state/keys.js';
import { migrateFleet } from '../state/migrate.js';
import type { Store } from '../state/store.js';
import { hostId } from '../host/identity.js';
import { leaseTtl, renewEveryMs, sweepEveryMs } from '../core/fleet-pace.js';
import { Ambassador, linkEnv } from './ambassador.js';
import { Balancers } from './balancer.js';
import { Overlay, vtepOf } from './overlay.js';
import type { Runner } from '../host/runner.js';
import { ApiError, startApi, upgradeBody, type Route, type UpgradeRoute } from './api.js';
import type { AgentPidFile } from './pidfile.js';
import { Reconciler } from './reconcile.js';
import { admitJoins, join } from './join.js';

/** How often, at most, the agent removes ended operations and old job history past their retention. */
const GC_MAX_EVERY_MS = 3_600_000;
/** How often a cluster exec whose stdin ended checks that its CLI is still there. */
const EXEC_PROBE_MS = 1000;

export interface AgentOptions {
  name: string;
  tags: string[];
  listen: { host: string; port: number };
  ttlSeconds: number;
  tokenFile: string;
  dockerSocket: string;
  /** PEM certificate and key: the API speaks https. */
  tls?: { cert: Buffer; key: Buffer };
  fleet: string;
  /** The address other hosts reach this host's services at. */
  advertise: string;
  /** Remove containers knarr has no job for (else they are only reported). */
  prune: boolean;
  /** Where the agent notes its pid and address, so the CLI on this host knows an agent serves it. */
  pidFile: string;
  /** The binds for a job's dot volumes on this host. */
  dotBinds: (spec: JobSpec) => Promise<string[]>;
  /** The hosts that have every dot a job uses: where a job of a host that went down may move. */
  hostsWithDots?: (spec: JobSpec, hosts: import('../core/hosts.js').HostRecord[]) => Promise<string[]>;
  /** The fleet's start mode this agent joins with: recovery starts its clusters again, new deletes them. */
  mode: StartMode;
  /** The fleet's shared data directory, whose token proves this host sees it; null for none. */
  share: string | null;
  /** How the scheduler ranks hosts when this agent moves a job off a host that is down. */
  strategy?: 'spread' | 'binpack';
  /** Runs this host's pending operations (cluster commands); made with the agent's lease. */
  ops?: (lease: () => string) => {
    drain(): Promise<void>;
    close(): Promise<void>;
    watchPending(onChange: () => void, signal: AbortSignal): Promise<void>;
    /** An operation is being claimed or run (under the lease it was claimed with). */
    readonly busy: boolean;
  };
  /** Removes this host's cluster parts that no cluster owns, every everySeconds (0: never); returns what it removed. */
  collect?: { everySeconds: number; run: () => Promise<string[]> };
  /** A command in a cluster node on this host (cluster exec from another host): the argv that runs it, and the runner to run it with. */
  nodeExec?: { argv(req: { user: string; name: string; node: number; command: string[] }): Promise<string[]>; runner: Runner };
  /** The clusters' network across hosts: this host's bridge and its address between hosts (null: none). */
  overlay?: { bridge: string; vtep: string | null; runner: Runner };
  /** Ended operations and job history older than this are removed now and then (0: kept for ever). */
  opRetentionMs?: number;
  /** Open API connections at most. */
  maxConnections?: number;
  /** More API upgrades, from the composition root (a node volume's stream for a migration). */
  upgrades?: Record<string, UpgradeRoute>;
  /** Routes that check their own credentials instead of the agent's token: the dots hub under /hub/v1/. */
  openRoutes?: Record<string, Route>;
  /** On SIGTERM, how long to wait for running foreground jobs and the operation in progress. */
  drainSeconds?: number;
  /** Called when the drain's time is up: the commands still running are stopped. */
  onDrainTimeout?: () => void;
  /** How long the fleet waits, once this host is down, for its agent to start again before moving its jobs. */
  restartGraceSeconds?: number;
  /** SIGTERM gives the lease back and marks the host left, so its jobs move at once. */
  leaveOnStop?: boolean;
  /**
   * The environments' reactions, from the composition root: hostsChanged on every change of the hosts up and at each
   * sweep (members of a host down get isDown, those back isUp); afterStart once joined, beforeStop on SIGTERM before the drain.
   */
  envs?: { hostsChanged(): Promise<void>; afterStart(): Promise<void>; beforeStop(): Promise<void>; close(): void };
}

/** The API token in the file the operator controls; made (random, 0600) when the file is missing, unless create is false (a reload changes nothing on disk). */
export async function agentToken(file: string, create = true): Promise<string> {
  try {
    // As ssh does with a private key: a token others can read is everyone's, so it is refused, not used.
    const mode = (await stat(file)).mode & 0o777;
    if ((mode & 0o077) !== 0)
      throw new PrerequisiteError(
        `the token file ${file} is open to group or others (mode ${mode.toString(8).padStart(4, '0')}); the token lets its holder run anything on this host`,
        {
          hint: `chmod 600 ${file}`,
        },
      );
    const token = (await readFile(file, 'utf8')).trim();
    // An empty token would let every request in.
    if (token.length < 16)
      throw new PrerequisiteError(`the token in ${file} is empty or shorter than 16 characters`, {
        hint: 'put a long random token there (or delete the file and the agent makes one)',
      });
    return token;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    if (!create) throw new PrerequisiteError(`the token file ${file} does not exist`, { hint: 'put a long random token there, or name the file in use' });
  }
  const token = randomBytes(32).toString('hex');
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return token;
}

/** A join handshake a peer moves on (waiting, work); anything else, or what does not parse, needs no peer. */
function awaitsPeer(value: string): boolean {
  try {
    const state = (JSON.parse(value) as { state?: string }).state;
    return state === 'waiting' || state === 'work';
  } catch {
    return false;
  }
}

async function runningJobs(engine: DockerEngine): Promise<number> {
  try {
    const list = await engine.call<unknown[]>(
      'GET',
      `/containers/json?filters=${encodeURIComponent(JSON.stringify({ label: ['knarr.job'] }))}`,
      undefined,
      3000,
    );
    return list.length;
  } catch {
    return 0;
  }
}

/**
 * The agent: registers its host under a lease (a host whose lease lapses is down), keeps the lease
 * and its load fresh, and serves the token-protected API. Returns once stop() was called.
 */
export class Agent {
  private server: Server | null = null;
  private lease: string | null = null;
  /** The TTL of the lease held: the operator's, or longer in a fleet too big to renew every host's that often. */
  private leaseTtl: number;
  /** When this agent's host came up: its liveness key says so, also after it moved to a longer lease. */
  private aliveSince = '';
  /** The hosts up, as the liveness watch tells them: the fleet's size, for the lease's TTL. */
  private readonly upHosts = new Set<string>();
  private stopped = false;
  private tags: string[];
  private readonly engine: DockerEngine;
  private readonly jobs: JobRepo;
  private readonly ambassador: Ambassador;
  /** The environments' balancers this host serves (balancers/<host>/ in the store). */
  private readonly balancers: Balancers;
  readonly reconciler: Reconciler;
  private readonly watching = new AbortController();
  private joinState: JoinState = 'waiting';
  /** Set once SIGTERM came: new foreground jobs are refused while the running ones finish. */
  private closing = false;
  private readonly foreground = new Set<Promise<void>>();
  /** The CLIs' connections of running foreground jobs: closing one removes its job. */
  private readonly runSockets = new Set<Duplex>();
  private opRunner: { close(): Promise<void>; drain(): Promise<void>; readonly busy: boolean } | null = null;
  private readonly eventLog: EventLog;
  private readonly overlay: Overlay | null;
  /** The collector's last pass that removed something, as the host record shows it. */
  private collected: HostRecord['collected'];
  private collecting = false;
  /** The afterCcStart hooks under way: beforeCcStop waits for them. */
  private ccStarting: Promise<void> | null = null;
  /** What the host record says, as last written: it is rewritten only when this changes. */
  private published: { load: HostRecord['load']; unknown: string; join: JoinState } | null = null;

  constructor(
    private readonly opts: AgentOptions,
    private readonly store: Store,
    private readonly hosts: HostRepo,
    private readonly log: (line: string) => void,
  ) {
    this.tags = opts.tags;
    this.leaseTtl = opts.ttlSeconds;
    // The agent never runs under --dry-run (knarr daemon refuses it).
    this.engine = new DockerEngine(opts.dockerSocket, false);
    this.jobs = new JobRepo(store, opts.fleet);
    this.eventLog = new EventLog(store, opts.fleet);
    this.overlay = opts.overlay
      ? new Overlay({ host: opts.name, bridge: opts.overlay.bridge, vtep: opts.overlay.vtep }, hosts, opts.overlay.runner, log)
      : null;
    this.ambassador = new Ambassador(opts.name, opts.fleet, store, this.jobs, log);
    this.balancers = new Balancers({ host: opts.name, fleet: opts.fleet, advertise: opts.advertise }, store, log);
    this.reconciler = new Reconciler(
      {
        host: opts.name,
        machine: hostId(),
        fleet: opts.fleet,
        serviceAddress: opts.advertise,
        prune: opts.prune,
        dotBinds: opts.dotBinds,
        hostsWithDots: opts.hostsWithDots,
        strategy: opts.strategy,
      },
      this.engine,
      this.jobs,
      hosts,
      { ambassador: this.ambassador },
      log,
    );
  }

  /**
   * The agent's own tags changed (SIGHUP): those it had set go, the new ones come, and tags the
   * operator set with `knarr host tag` stay.
   */
  async setTags(tags: string[]): Promise<void> {
    const dropped = this.tags;
    this.tags = tags;
    try {
      await this.writeRecord((previous) => [...new Set([...(previous?.tags ?? []).filter((t) => !dropped.includes(t)), ...tags])].sort());
    } catch (e) {
      // Not written: the agent's tags stay what the record says.
      this.tags = dropped;
      throw e;
    }
  }

  setPrune(prune: boolean): void {
    this.reconciler.setPrune(prune);
  }

  /** What SIGTERM does (SIGHUP): keep the host's jobs for the grace, or leave at once; the record's next refresh says the new grace. */
  setStopPolicy(restartGraceSeconds: number, leaveOnStop: boolean): void {
    this.opts.restartGraceSeconds = restartGraceSeconds;
    this.opts.leaveOnStop = leaveOnStop;
  }

  /** A renewed certificate and key (SIGHUP): new connections get them, open ones keep theirs. */
  setTls(tls: { cert: Buffer; key: Buffer }): void {
    (this.server as import('node:https').Server | null)?.setSecureContext({ cert: tls.cert, key: tls.key });
  }

  /** Where other hosts reach the API: the listen address, or the advertised one when it listens on all. */
  get address(): string {
    const wildcard = this.opts.listen.host === '0.0.0.0' || this.opts.listen.host === '::';
    const host = wildcard ? this.opts.advertise : this.opts.listen.host;
    return `${this.opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${this.opts.listen.port}`;
  }

  /**
   * Writes this host's record with a fresh load, keeping what the operator set (drain, tags) even when
   * it changes meanwhile: the load is read first, then the record is rewritten from the stored one.
   * tagsOf gives the tags from the stored record; by default they stay as they are.
   */
  private async writeRecord(
    tagsOf: (previous: HostRecord | null) => string[] = (previous) => previous?.tags ?? this.tags,
    measured?: HostRecord['load'],
  ): Promise<void> {
    const load = measured ?? (await this.measureLoad());
    const unknownContainers = this.reconciler.unknown;
    const joinState = this.joinState;
    const now = new Date().toISOString();
    await this.hosts.update(this.opts.name, (previous) => ({
      name: this.opts.name,
      address: this.address,
      dockerEndpoint: `unix://${this.opts.dockerSocket}`,
      // Dots are recorded under the hostname; the scheduler looks for them there.
      ...(this.opts.name !== hostId() ? { dotHost: hostId() } : {}),
      tags: tagsOf(previous),
      capacity: { cpu: cpus().length * 1000, memory: totalmem() },
      load,
      // A drained or evacuated host stays so across agent restarts; a host that left and comes back is ok again.
      state: previous?.state === 'draining' || previous?.state === 'evacuated' ? previous.state : 'ok',
      unknownContainers,
      join: joinState,
      joinedAt: previous?.joinedAt ?? now,
      updatedAt: now,
      restartGraceSeconds: this.opts.restartGraceSeconds ?? 0,
      ...(this.opts.overlay ? { vtep: vtepOf({ host: this.opts.name, ...this.opts.overlay }) } : {}),
      ...(this.opts.share ? { share: this.opts.share } : {}),
      ...(this.collected ? { collected: this.collected } : {}),
    }));
    this.published = { load, unknown: JSON.stringify(unknownContainers), join: joinState };
  }

  private async measureLoad(): Promise<HostRecord['load']> {
    return { runningJobs: await runningJobs(this.engine), freeMemory: freemem() };
  }

  /**
   * Rewrites the host record only when what it says has changed enough to matter: a job count,
   * free memory moved by more than a tenth of the host's memory, the unknown containers, the join
   * state. An idle agent then writes nothing but its lease's keepalives.
   */
  private async refreshRecord(): Promise<void> {
    const load = await this.measureLoad();
    const p = this.published;
    const changed =
      p === null ||
      p.load.runningJobs !== load.runningJobs ||
      Math.abs(p.load.freeMemory - load.freeMemory) > totalmem() / 10 ||
      p.unknown !== JSON.stringify(this.reconciler.unknown) ||
      p.join !== this.joinState;
    if (changed) await this.writeRecord(undefined, load);
  }

  private async register(starting = false): Promise<void> {
    // The hosts up now (and this one) set how long the lease must live for the fleet's renewals to stay within their budget.
    const alive = fleetKeys(this.opts.fleet).alive;
    for (const kv of await this.store.list(alive)) this.upHosts.add(kv.key.slice(alive.length));
    this.upHosts.add(this.opts.name);
    const hosts = Math.max(this.reconciler.fleetSize, this.upHosts.size);
    this.leaseTtl = leaseTtl(this.opts.ttlSeconds, hosts);
    this.lease = await this.store.grantLease(this.leaseTtl);
    // Tags belong to the operator once set (knarr host tag): the agent adds its own at registration.
    await this.writeRecord((previous) => [...new Set([...(previous?.tags ?? []), ...this.tags])].sort());
    this.aliveSince = new Date().toISOString();
    await this.hosts.markAlive(this.opts.name, this.lease, this.aliveInfo());
    // A starting agent says it is up once it has joined.
    if (!starting) await this.hostUp('its agent registered again (its lease had lapsed)');
  }

  private aliveInfo() {
    return { pid: process.pid, address: this.address, since: this.aliveSince };
  }

  /**
   * The fleet grew past what this lease's TTL suits (its renewals would exceed the fleet's budget): a longer lease takes
   * over the host's liveness key, and the old one is revoked. Not while an operation runs: its claim is under the old lease.
   */
  private async relet(): Promise<void> {
    const ttl = leaseTtl(this.opts.ttlSeconds, Math.max(this.reconciler.fleetSize, this.upHosts.size));
    if (ttl < this.leaseTtl * 1.2 || this.opRunner?.busy || !this.lease) return;
    const next = await this.store.grantLease(ttl);
    const [old, oldTtl] = [this.lease, this.leaseTtl];
    if (this.opRunner?.busy || this.stopped) return void (await this.store.revokeLease(next));
    [this.lease, this.leaseTtl] = [next, ttl];
    try {
      await this.hosts.markAlive(this.opts.name, next, this.aliveInfo());
    } catch (e) {
      [this.lease, this.leaseTtl] = [old, oldTtl];
      await this.store.revokeLease(next);
      throw e;
    }
    await this.store.revokeLease(old);
    this.log(`agent: the fleet has ${this.upHosts.size} hosts up: lease ${ttl}s now, renewed every ${renewEveryMs(ttl) / 1000}s`);
  }

  private hostUp(message: string): Promise<void> {
    return bounded(this.eventLog.hostChanged(this.opts.name, 'up', message), EVENT_WRITE_TIMEOUT_MS);
  }

  /** The environments look at the hosts up (their members' isDown and isUp); a failure waits for the next change or sweep. */
  private envsChanged(): void {
    if (this.stopped) return;
    void this.opts.envs?.hostsChanged().catch((e: Error) => this.log(`environments: ${e.message}`));
  }

  /** Hosts whose lease lapsed get their down event, written once in the fleet whichever agent sees it first. */
  private noticeDownHosts(): void {
    void bounded(this.eventLog.noticeDownHosts(`its agent's lease lapsed (seen by ${this.opts.name})`), EVENT_WRITE_TIMEOUT_MS * 5);
  }

  async start(token: () => string, signal?: AbortSignal): Promise<void> {
    // SIGTERM while joining ends the handshake too.
    signal?.addEventListener('abort', () => this.watching.abort(), { once: true });
    this.server = await startApi(
      this.opts.listen,
      token,
      {
        'GET /v1/health': async () => ({ host: this.opts.name, ok: true }),
        'GET /v1/host': async () => (await this.hosts.get(this.opts.name))?.host ?? null,
        // The CLI changed an intent: converge now and answer when done.
        'POST /v1/converge': async () => {
          await this.reconciler.converge();
          return { host: this.opts.name, unknownContainers: this.reconciler.unknown };
        },
        'GET /v1/jobs/:name/logs': (req, res, { name }) => {
          // A job name, nothing else: it becomes part of an engine path.
          if (!JOB_NAME_RE.test(name!)) throw new ApiError(400, `${JSON.stringify(name)} is not a job name`);
          return this.logs(req, res, name!);
        },
      },
      this.opts.tls,
      {
        'POST /v1/cluster-exec': (req, socket, head) => {
          if (this.closing) return Promise.reject(new ApiError(503, `host ${this.opts.name} is shutting down`));
          const running = this.execInNode(req, socket, head);
          const tracked = running.catch(() => undefined).finally(() => this.foreground.delete(tracked));
          this.foreground.add(tracked);
          return running;
        },
        'POST /v1/run': (req, socket, head) => {
          if (this.closing) return Promise.reject(new ApiError(503, `host ${this.opts.name} is shutting down; it takes no new jobs`));
          const running = this.runForeground(req, socket, head);
          const tracked = running.catch(() => undefined).finally(() => this.foreground.delete(tracked));
          this.foreground.add(tracked);
          return running;
        },
        ...this.opts.upgrades,
      },
      this.opts.maxConnections,
      this.opts.openRoutes,
    );
    // A fleet written by an older knarr gets its keys moved before anything here reads them.
    const migrated = await migrateFleet(this.store, this.opts.fleet);
    if (migrated.moved + migrated.indexed > 0)
      this.log(`fleet ${this.opts.fleet}: keys moved to schema ${SCHEMA_VERSION} (${migrated.moved} host keys, ${migrated.indexed} pending operations)`);
    await this.register(true);
    // The lease is kept alive by serve(), which starts once start() returned: keep it meanwhile (the handshake, the watches).
    const keep = setInterval(() => void this.store.keepAlive(this.lease!).catch(() => undefined), renewEveryMs(this.leaseTtl));
    try {
      await this.joinAndWatch();
    } finally {
      clearInterval(keep);
    }
  }

  /** The join handshake, then the watches, the operations and the pid file: the agent is up. */
  private async joinAndWatch(): Promise<void> {
    try {
      await join(
        this.store,
        this.hosts,
        { fleet: this.opts.fleet, host: this.opts.name, mode: this.opts.mode, share: this.opts.share, lease: this.lease!, log: this.log },
        this.watching.signal,
      );
    } catch (e) {
      this.joinState = 'refused';
      await this.writeRecord().catch(() => undefined);
      throw e;
    }
    // SIGTERM while joining: the join was not finished, and the agent takes no work.
    if (this.watching.signal.aborted) return;
    this.joinState = 'ok';
    await this.writeRecord();
    await this.watch();
    await bounded(this.eventLog.agentStarted(this.opts.name), EVENT_WRITE_TIMEOUT_MS * 2);
    await mkdir(dirname(this.opts.pidFile), { recursive: true });
    await writeFile(
      this.opts.pidFile,
      JSON.stringify({ pid: process.pid, name: this.opts.name, address: this.address, fleet: this.opts.fleet } satisfies AgentPidFile),
    );
    this.log(`agent ${this.opts.name} up: API ${this.address}, lease ${this.leaseTtl}s`);
    // The members on this host hear that its agent started (afterCcStart); a hook that fails is logged, the agent runs on.
    if (this.opts.envs) {
      this.ccStarting = this.opts.envs.afterStart().catch((e: Error) => this.log(`environments: afterCcStart: ${e.message}`));
      this.envsChanged();
    }
  }

  /** Reconciles on every change to the fleet's jobs or hosts' liveness; a container event of the engine touches only its job. */
  private async watch(): Promise<void> {
    const keys = fleetKeys(this.opts.fleet);
    const kick = () => this.reconciler.kick();
    // Hosts that join after this one are answered here, and those that began before its watch was made at once.
    const admit = (only?: string[]) =>
      this.watching.signal.aborted ? undefined : void admitJoins(this.store, this.opts.fleet, only).catch((e: Error) => this.log(`join: ${e.message}`));
    // A handshake waiting for a peer is answered after a random pause that grows with the fleet: the first peer answers,
    // and the others see it move on (the watch says what was written) and read nothing. A join costs the fleet a few requests, not one per host.
    const answering = new Map<string, NodeJS.Timeout>();
    await this.store.watch(
      keys.joins,
      (changes) => {
        if (changes.some((c) => c.key === null)) return admit();
        for (const c of changes) {
          const host = c.key!.slice(keys.joins.length);
          clearTimeout(answering.get(host));
          answering.delete(host);
          if (c.value === undefined || !awaitsPeer(c.value)) continue;
          const pause = Math.random() * Math.min(5000, 50 + this.reconciler.fleetSize * 5);
          answering.set(
            host,
            setTimeout(() => {
              answering.delete(host);
              admit([host]);
            }, pause).unref(),
          );
        }
      },
      this.watching.signal,
    );
    admit();
    await this.store.watch(keys.jobs, kick, this.watching.signal);
    // A host record removed (host leave): its jobs need not wait for its restart grace any more.
    await this.store.watch(
      keys.hosts,
      (changes) => {
        const records = changes.filter((c) => c.key === null || !c.key.slice(keys.hosts.length).includes('/'));
        if (records.some((c) => c.key === null || c.deleted)) kick();
        // A host came, went or moved: the overlay floods to the hosts there are now.
        this.overlay?.hostsChanged(records.map((c) => ({ host: c.key === null ? null : c.key.slice(keys.hosts.length), deleted: c.deleted })));
      },
      this.watching.signal,
    );
    await this.store.watch(
      keys.alive,
      (changes) => {
        for (const c of changes) {
          if (c.key === null) continue;
          if (c.deleted) this.upHosts.delete(c.key.slice(keys.alive.length));
          else this.upHosts.add(c.key.slice(keys.alive.length));
        }
        const down = changes.some((c) => c.key === null || c.deleted);
        // A host up (or one moving to a longer lease) matters only to jobs waiting for a host, a host down only to the jobs on
        // it (as of the last pass, which every change of a job starts): no fleet-wide pass for a host that ran nothing.
        const jobsOnIt = changes.some((c) => c.key === null || (c.deleted && this.reconciler.hostsWithJobs.has(c.key.slice(keys.alive.length))));
        if (jobsOnIt || this.reconciler.waitingForHost) kick();
        if (down) this.noticeDownHosts();
        this.envsChanged();
      },
      this.watching.signal,
    );
    this.noticeDownHosts();
    // The balancers placed here are served from now on; lost ones (replaced while this host was down) are removed.
    await this.balancers.start(this.watching.signal);
    if (this.opts.ops) {
      const runner = this.opts.ops(() => this.lease ?? '0');
      this.opRunner = runner;
      // An operation may have made the cluster bridge (a first node here): the overlay goes on it at once.
      const drain = () =>
        void runner
          .drain()
          .then(() => this.overlay?.kick())
          .catch((e: Error) => this.log(`operations: ${e.message}`));
      // This host's new operations, and claims that lapsed (a runner died mid-way): both may be this host's to run.
      await runner.watchPending(drain, this.watching.signal);
      await this.store.watch(keys.opClaim(''), drain, this.watching.signal);
      drain();
    }
    // A container event touches only the job it names; one of a container that is no job only the list of strays; the rest nothing.
    const onContainer = (e: { Actor?: { Attributes?: Record<string, string> } }) => {
      const labels = e.Actor?.Attributes ?? {};
      const job = labels[LABEL_JOB];
      if (job === undefined) this.reconciler.strayEvent();
      else if (labels[LABEL_FLEET] === this.opts.fleet && labels[LABEL_MODE] === 'daemon') this.reconciler.touch(job);
    };
    const subscribe = (): Promise<void> =>
      this.engine
        .events([], onContainer, this.watching.signal, () => {
          this.log('agent: the docker event stream ended; subscribing again');
          setTimeout(() => void subscribe().catch(() => undefined), 1000).unref();
          kick();
        })
        .catch((e: Error) => {
          this.log(`agent: no docker events (${e.message}); retrying`);
          setTimeout(() => void subscribe().catch(() => undefined), 2000).unref();
        });
    await subscribe();
    kick();
    this.overlay?.kick();
  }

  /** A foreground job on this host's engine, its streams over the upgraded connection, its exit status as a last frame. */
  private async runForeground(req: IncomingMessage, socket: Duplex, received: Buffer): Promise<void> {
    let request: { spec: unknown; interactive: boolean };
    // The job request is the body; what follows it is the job's stdin.
    const { body, rest: head } = await upgradeBody(req, socket, received, MAX_JOB_REQUEST_BYTES, 'the job request');
    try {
      request = JSON.parse(body.toString('utf8'));
    } catch {
      throw new ApiError(400, 'the job request must be a JSON body {spec, interactive}');
    }
    let spec: JobSpec;
    try {
      spec = parseJobSpec(request.spec, 'job');
    } catch (e) {
      throw new ApiError(400, (e as Error).message);
    }
    if (spec.host !== null && spec.host !== this.opts.name)
      throw new ApiError(409, `job ${spec.name} is pinned to ${spec.host}, and this is ${this.opts.name}`);
    const interactive = request.interactive === true;
    const releases: (() => void)[] = [];
    // Tracked from the start: a CLI gone (or a drain cutting off) while the container is being made ends it once made.
    this.runSockets.add(socket);
    let gone = false;
    socket.once('close', () => {
      gone = true;
      this.runSockets.delete(socket);
    });
    let run: AttachedRun;
    try {
      const env: Record<string, string> = { KNARR_HOST: this.opts.name, KNARR_JOB: spec.name };
      // A bridged job reaches the ambassador at its network's gateway; a job on the host's network at loopback.
      const gateway = spec.links.length > 0 ? await this.engine.gateway(spec.network) : null;
      for (const service of spec.links) {
        if (!(await this.jobs.service(service))) throw new ApiError(404, `job ${spec.name} links to service ${service}, which does not exist`);
        releases.push(this.ambassador.hold(service));
        Object.assign(env, linkEnv(service, await this.ambassador.ensure(service, gateway ?? undefined), gateway ?? undefined));
      }
      const create = foregroundContainer(spec, this.opts.fleet, interactive, { env, binds: await this.opts.dotBinds(spec) });
      run = await startAttached(this.engine, `knarr-${spec.name}-${randomBytes(3).toString('hex')}`, create, interactive);
      await this.jobEvent(spec.name, 'started', `foreground, ${run.id.slice(0, 12)}`);
    } catch (e) {
      for (const release of releases) release();
      if (e instanceof ApiError) throw e;
      throw new ApiError(e instanceof EngineError ? e.status : e instanceof ValidationError ? 400 : 500, (e as Error).message);
    }
    if (gone) {
      run.socket.destroy();
      for (const release of releases) release();
      await this.engine.remove(run.id).catch(() => undefined);
      return;
    }
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    let finished = false;
    // The CLI went away: the job goes too.
    socket.on('close', () => {
      if (!finished) void this.engine.remove(run.id).catch(() => undefined);
    });
    // A job that exits before its stdin ends closes the attach connection: writes after that are no error.
    run.socket.on('error', () => undefined);
    socket.on('error', () => undefined);
    if (interactive) {
      if (head.length > 0) run.socket.write(head);
      socket.pipe(run.socket);
      run.socket.once('close', () => socket.unpipe(run.socket));
    } else socket.resume();
    run.socket.pipe(socket, { end: false });
    await new Promise<void>((resolve) => {
      run.socket.once('end', resolve);
      run.socket.once('close', resolve);
    });
    const status = await run.exited.then(
      (exitCode) => ({ exitCode }),
      (e: Error) => ({ error: e.message }),
    );
    finished = true;
    await this.jobEvent(spec.name, 'exited', 'exitCode' in status ? `exit code ${status.exitCode}` : status.error);
    // The engine keeps the attach connection open after the job; stdin still arriving for it is dropped.
    socket.unpipe(run.socket);
    run.socket.destroy();
    for (const release of releases) release();
    socket.end(frame(CONTROL_FRAME, Buffer.from(JSON.stringify(status))));
  }

  /** A command in a cluster node on this host, its output framed as a foreground job's, its exit status the last frame. */
  private async execInNode(req: IncomingMessage, socket: Duplex, received: Buffer): Promise<void> {
    if (!this.opts.nodeExec) throw new ApiError(404, 'this agent runs no cluster nodes');
    const { body, rest: head } = await upgradeBody(req, socket, received, MAX_JOB_REQUEST_BYTES, 'the exec request');
    let request: { user: string; name: string; node: number; command: string[]; interactive: boolean };
    try {
      request = JSON.parse(body.toString('utf8'));
    } catch {
      throw new ApiError(400, 'the exec request must be a JSON body {user, name, node, command, interactive}');
    }
    if (!Array.isArray(request.command) || request.command.length === 0 || !request.command.every((w) => typeof w === 'string'))
      throw new ApiError(400, 'command must be a list of strings');
    let argv: string[];
    try {
      argv = await this.opts.nodeExec.argv(request);
    } catch (e) {
      throw e instanceof ApiError ? e : new ApiError(e instanceof ValidationError ? 400 : 404, (e as Error).message);
    }
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    socket.on('error', () => undefined);
    // The CLI gone (ctrl-C, a lost connection): the command in the node is stopped, not left running there.
    const gone = new AbortController();
    socket.once('close', () => gone.abort());
    const framed = (kind: number) => new Writable({ write: (chunk: Buffer, _enc, done) => void socket.write(frame(kind, chunk), () => done()) });
    let stdin: PassThrough | undefined;
    let probe: NodeJS.Timeout | undefined;
    if (request.interactive === true) {
      stdin = new PassThrough();
      if (head.length > 0) stdin.write(head);
      socket.pipe(stdin);
      // Its stdin ended, or the CLI went away: an empty frame now and then tells which (a gone CLI's host refuses it, and the socket closes).
      socket.once('end', () => {
        probe = setInterval(() => socket.write(frame(1, Buffer.alloc(0))), EXEC_PROBE_MS).unref();
      });
    } else {
      // Nothing comes from the CLI but its going away.
      socket.once('end', () => gone.abort());
      socket.resume();
    }
    const status = await this.opts.nodeExec.runner
      .alsoStoppedBy(gone.signal)
      .attached(argv, { stdin, stdout: framed(1), stderr: framed(2) })
      .then(
        (exitCode) => ({ exitCode }),
        (e: Error) => ({ error: e.message }),
      );
    clearInterval(probe);
    if (stdin) socket.unpipe(stdin);
    socket.end(frame(CONTROL_FRAME, Buffer.from(JSON.stringify(status))));
  }

  /** A foreground job's event (it has no record, so no history): best effort. */
  private jobEvent(job: string, event: string, message: string): Promise<void> {
    return recordEvent(this.store, this.opts.fleet, { kind: 'job', object: job, host: this.opts.name, event, message });
  }

  /** A daemonized job's log, streamed as the engine multiplexes it. */
  private async logs(req: IncomingMessage, res: import('node:http').ServerResponse, name: string): Promise<void> {
    let stream: IncomingMessage;
    try {
      const url = req.url ?? '';
      const options = logOptionsFromQuery(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
      stream = await this.engine.logs(daemonContainerName(name), options);
    } catch (e) {
      throw new ApiError(e instanceof EngineError ? e.status : e instanceof ValidationError ? 400 : 500, (e as Error).message);
    }
    res.writeHead(200, { 'content-type': 'application/vnd.docker.multiplexed-stream' });
    req.on('close', () => stream.destroy());
    stream.pipe(res);
    await new Promise((resolve) => stream.once('close', resolve));
  }

  /** Keeps the lease and the load fresh until stopped; re-registers if etcd lost the lease. */
  async serve(signal: AbortSignal): Promise<void> {
    let lastSweep = Date.now();
    let sweepMs = sweepEveryMs(this.reconciler.fleetSize, Math.random());
    let lastGc = 0;
    let lastCollect = Date.now();
    const collectMs = (this.opts.collect?.everySeconds ?? 0) * 1000;
    let failing = false;
    const retention = this.opts.opRetentionMs ?? 0;
    while (!signal.aborted && !this.stopped) {
      // A renewal that failed is tried again within a second: a long lease's slack is for an election, not for waiting.
      await sleep(failing ? Math.min(1000, renewEveryMs(this.leaseTtl)) : renewEveryMs(this.leaseTtl), undefined, { signal }).catch(() => undefined);
      if (signal.aborted || this.stopped) break;
      try {
        if (!this.lease || !(await this.store.keepAlive(this.lease))) await this.register();
        else {
          await this.refreshRecord();
          await this.relet();
        }
        failing = false;
      } catch (e) {
        failing = true;
        this.log(`agent: cannot reach the store (${(e as Error).message}); retrying`);
      }
      // A watch can go quiet without an error (a half-open connection): operations are looked for now and then anyway,
      // and the jobs get a full pass, so a lost watch delays convergence but never stops it. The bigger the fleet, the
      // rarer: its agents' passes together cost etcd about the same.
      if (Date.now() - lastSweep >= sweepMs) {
        lastSweep = Date.now();
        sweepMs = sweepEveryMs(this.reconciler.fleetSize, Math.random());
        this.reconciler.kick();
        void this.opRunner?.drain().catch((e: Error) => this.log(`agent: operations: ${e.message}`));
        this.noticeDownHosts();
        this.overlay?.kick();
        void this.balancers.sync();
        this.envsChanged();
      }
      if (collectMs > 0 && Date.now() - lastCollect >= collectMs) {
        lastCollect = Date.now();
        void this.collectOrphans();
      }
      if (retention > 0 && Date.now() - lastGc >= Math.min(GC_MAX_EVERY_MS, Math.max(1000, retention))) {
        lastGc = Date.now();
        void this.collect(retention);
      }
    }
  }

  /** One pass of the collector; what it removed goes to the log, the fleet's events and the host record. */
  private async collectOrphans(): Promise<void> {
    if (this.collecting || !this.opts.collect) return;
    this.collecting = true;
    try {
      const removed = await this.opts.collect.run();
      if (removed.length === 0) return;
      const message = `removed what no cluster owns: ${removed.join(', ')}`;
      this.log(`collector: ${message}`);
      this.collected = { at: new Date().toISOString(), removed };
      await bounded(
        recordEvent(this.store, this.opts.fleet, { kind: 'host', object: this.opts.name, host: this.opts.name, event: 'collected', message }),
        EVENT_WRITE_TIMEOUT_MS,
      );
      await this.writeRecord();
    } catch (e) {
      this.log(`collector: ${(e as Error).message}; trying again at its next pass`);
    } finally {
      this.collecting = false;
    }
  }

  /** Removes the operations and job history older than the retention; a failure waits for the next round. */
  private async collect(retention: number): Promise<void> {
    try {
      const { ops, history } = await collectGarbage(this.store, this.opts.fleet, Date.now() - retention, true);
      if (ops.length + history.length > 0)
        this.log(`agent: removed ${ops.length} ended operation(s) and ${history.length} job history line(s) past their retention`);
    } catch (e) {
      this.log(`agent: removing old operations: ${(e as Error).message}`);
    }
  }

  /**
   * Drains, then gives the lease back so the fleet sees the host down at once: no new foreground jobs
   * or operations are taken; the running ones get up to drainSeconds to end (the lease is kept meanwhile).
   * Its daemonized jobs run on and stay placed here for the restart grace (the record says how long),
   * unless leaveOnStop marked the host left.
   */
  async stop(): Promise<void> {
    // Before anything drains, the members on this host hear that its agent stops (beforeCcStop); a failure is logged only.
    if (this.opts.envs && this.joinState === 'ok' && !this.stopped) {
      this.opts.envs.close();
      await this.ccStarting;
      await this.opts.envs.beforeStop().catch((e: Error) => this.log(`environments: beforeCcStop: ${e.message}`));
    }
    this.stopped = true;
    this.closing = true;
    this.watching.abort();
    const busy = this.foreground.size;
    const graceMs = (this.opts.drainSeconds ?? 30) * 1000;
    if (this.lease && (busy > 0 || this.opRunner)) {
      if (busy > 0) this.log(`agent: draining: waiting up to ${graceMs / 1000}s for ${busy} foreground job(s) and the operation in progress`);
      const keep = setInterval(() => void this.store.keepAlive(this.lease!).catch(() => undefined), renewEveryMs(this.leaseTtl));
      const grace = new AbortController();
      try {
        const drained = Promise.all([...this.foreground, this.opRunner?.close()]).then(() => true);
        if (!(await Promise.race([drained, sleep(graceMs, false, { signal: grace.signal }).catch(() => false)]))) {
          this.log('agent: drain time is up: stopping what still runs (an operation is resumed by the next runner)');
          this.opts.onDrainTimeout?.();
          // Upgraded connections are no HTTP connections to the server: each is closed here, which removes its job.
          for (const s of this.runSockets) s.destroy();
          await Promise.all([...this.foreground, this.opRunner?.close()]);
        }
      } finally {
        grace.abort();
        clearInterval(keep);
      }
    }
    this.reconciler.stop();
    for (const s of this.runSockets) s.destroy();
    this.ambassador.close();
    await this.balancers.close();
    await new Promise<void>((res) => {
      if (!this.server) return res();
      this.server.close(() => res());
      // Followers of logs and running foreground jobs would hold close() open.
      this.server.closeAllConnections?.();
    });
    await rm(this.opts.pidFile, { force: true });
    // A host that left is not waited for: the fleet's agents move its jobs as soon as its lease is gone.
    if (this.opts.leaveOnStop)
      await this.hosts
        .update(this.opts.name, (cur) => cur && { ...cur, state: 'left', updatedAt: new Date().toISOString() })
        .catch((e: Error) => this.log(`agent: cannot mark the host left (${e.message}); its jobs wait for the restart grace`));
    if (this.lease) await this.store.revokeLease(this.lease);
    if (!this.opts.leaveOnStop && (this.opts.restartGraceSeconds ?? 0) > 0)
      this.log(`agent: stopped; the fleet keeps this host's jobs here for ${this.opts.restartGraceSeconds}s, for an agent to start again`);
    // A host that never joined was never up.
    if (this.joinState === 'ok')
      await bounded(
        this.eventLog.hostChanged(this.opts.name, 'down', this.opts.leaveOnStop ? 'its agent stopped and left the fleet' : 'its agent stopped'),
        EVENT_WRITE_TIMEOUT_MS,
      );
  }
}
