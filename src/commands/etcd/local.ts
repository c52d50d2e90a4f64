import { hostname } from 'node:os';
import { readFile, rename, rm } from 'node:fs/promises';
import { KnarrError, ExitCode, NotFoundError, UserError, ConflictError } from '../../core/errors.js';
import { validatePort } from '../../core/config.js';
import { ETCD_VOLUME, statePaths } from '../../core/paths.js';
import type { PoolRecord } from '../../core/pool.js';
import {
  ETCD_MEMBER_NAME,
  ETCD_SOCKET_FILE,
  etcdArgv,
  isEtcdProcess,
  isLocalAddress,
  probeHealth,
  stopProcess,
  tailFile,
  waitHealthy,
  type EtcdServerState,
  type Health,
} from '../../host/etcd-server.js';
import { listPoolRecords, readJson, syncDir, writeJsonAtomic } from '../../host/local-state.js';
import { knarrAlive } from '../../host/lock.js';
import { pathExists } from '../../host/mounts.js';
import { connectEtcd, type EtcdConnectOptions } from '../../state/store.js';
import { etcdClusterKeys, fleetKeys, SCHEMA_VERSION } from '../../state/keys.js';
import { migrateFleet } from '../../state/migrate.js';
import { validateAdvertiseIp } from '../../core/etcd-cluster.js';
import { sealCaKey } from '../../host/etcd-pki.js';
import { knarrCommand } from '../../core/shell.js';
import { ensureFirstPki, memberName, pkiFiles, promoteIfLearner, readToken, stateTls, storeOptions, tlsUrls } from './cluster.js';
import { defaultPool, selectPool } from '../pool/select.js';
import type { Context } from '../types.js';

export interface LocalEtcdOptions {
  pool?: string;
  clientPort?: string | number;
  peerPort?: string | number;
  timeoutMs?: number;
  /** Serve a cluster over TLS on this IP (the first member); a member already over TLS restarts as it was. */
  advertise?: string;
  /** Member name (default: the hostname). */
  name?: string;
  /** For a store command: a cluster member that runs but does not answer at once is left to the store client, which fails over to the others. */
  forStore?: boolean;
}

export interface LocalEtcd {
  action: 'started' | 'running' | 'planned';
  state: EtcdServerState;
  health: Health;
}

export async function readEtcdState(ctx: Context): Promise<EtcdServerState | null> {
  return readJson<EtcdServerState>(statePaths(ctx.config.stateDir).etcdState);
}

export function refuseExternal(ctx: Context, verb: string): void {
  if (ctx.config.etcd.length > 0) {
    throw new UserError(`knarr etcd ${verb} manages this host's own etcd, but --etcd / KNARR_ETCD points at ${ctx.config.etcd.join(',')}`, {
      hint: 'unset KNARR_ETCD (or drop --etcd) to manage the local etcd',
    });
  }
}

export async function dataLocation(ctx: Context, poolName: string | undefined): Promise<{ dataDir: string; pool: PoolRecord | null }> {
  const pool = poolName !== undefined ? await selectPool(ctx, poolName) : await defaultPool(ctx);
  if (!pool) return { dataDir: statePaths(ctx.config.stateDir).etcdLocalData, pool: null };
  const driver = ctx.drivers[pool.driver];
  const status = await driver.poolStatus(pool, ctx.runner);
  if (!status.online) {
    throw new NotFoundError(`pool ${pool.name} is not online here (${status.health}); etcd keeps its data on it`, {
      hint: 'bring it up with: knarr pool init',
    });
  }
  ctx.events.step(`etcd: data volume ${ETCD_VOLUME} on pool ${pool.name}`);
  const vol = await driver.ensureVolume(pool, ETCD_VOLUME, ctx.runner);
  return { dataDir: vol.path, pool };
}

/** What a restore writes before it stops etcd and swaps data directories; also its lock while its process lives. */
export interface RestoreJournal {
  snapshot: string;
  dataDir: string;
  /** The restored member directory waits here (inside the data directory: one filesystem, so renames). */
  staged: string;
  /** Where the data that was there goes; null when there was none. */
  aside: string | null;
  /** The knarr process doing the restore: while it lives, nothing else starts etcd or restores. */
  pid: number;
  startedAt: string;
}

/** Writes a restore's journal as this process's: from then on a start of etcd waits for it, and a crash is finished or dropped. */
export async function writeRestoreJournal(ctx: Context, j: Omit<RestoreJournal, 'pid' | 'startedAt'>): Promise<void> {
  await writeJsonAtomic(statePaths(ctx.config.stateDir).etcdRestore, { ...j, pid: process.pid, startedAt: new Date().toISOString() } satisfies RestoreJournal);
}

/** The journal of a restore, refusing while another knarr process is doing one. */
export async function readRestoreJournal(ctx: Context): Promise<RestoreJournal | null> {
  const j = await readJson<RestoreJournal>(statePaths(ctx.config.stateDir).etcdRestore);
  if (j && j.pid !== process.pid && knarrAlive(j.pid)) {
    throw new ConflictError(`an etcd restore of ${j.snapshot} is in progress (pid ${j.pid})`, { hint: 'wait for it to end, then run the command again' });
  }
  return j;
}

/**
 * A restore cut short while etcd still ran never swapped anything: its unpacked copy goes, the
 * data stays as it is. True if there was one.
 */
export async function dropUnswappedRestore(ctx: Context): Promise<boolean> {
  const j = await readRestoreJournal(ctx);
  if (!j || ctx.runner.dryRun) return j !== null;
  await rm(j.staged, { recursive: true, force: true });
  await rm(statePaths(ctx.config.stateDir).etcdRestore, { force: true });
  return true;
}

/**
 * Finishes a restore that was cut short after it stopped etcd: the old member directory aside, the
 * restored one in its place. Each step is skipped when done already; true if there was one. Refuses
 * when neither directory is there (the pool holding them not mounted) rather than start etcd empty.
 */
export async function finishRestore(ctx: Context): Promise<boolean> {
  const journalPath = statePaths(ctx.config.stateDir).etcdRestore;
  const j = await readRestoreJournal(ctx);
  if (!j) return false;
  if (ctx.runner.plan(['mv', `${j.staged}/member`, `${j.dataDir}/member`])) return true;
  const staged = await pathExists(`${j.staged}/member`);
  const live = await pathExists(`${j.dataDir}/member`);
  if (!staged && !live) {
    throw new ConflictError(`the etcd restore in ${journalPath} cannot be finished: neither ${j.staged}/member nor ${j.dataDir}/member is there`, {
      hint: `mount the pool that holds ${j.dataDir} (knarr pool init) and run the command again${j.aside ? `; the data it replaced is in ${j.aside}` : ''}`,
    });
  }
  if (staged) {
    if (live) {
      if (!j.aside)
        throw new ConflictError(`${j.dataDir}/member appeared during a restore that found no data there`, { hint: 'move it away, then run: knarr etcd up' });
      if (await pathExists(j.aside))
        throw new ConflictError(`${j.aside} exists already: the data there is not moved over it`, { hint: `move it away, then run: knarr etcd up` });
      await rename(`${j.dataDir}/member`, j.aside);
    }
    await rename(`${j.staged}/member`, `${j.dataDir}/member`);
  }
  await rm(j.staged, { recursive: true, force: true });
  await syncDir(j.dataDir);
  await rm(journalPath, { force: true });
  return true;
}

/** Stops the managed etcd and records it stopped (its data stays). */
export async function stopLocalEtcd(ctx: Context, state: EtcdServerState): Promise<'stopped' | 'killed'> {
  const how = await stopProcess(state.pid!);
  await writeJsonAtomic(statePaths(ctx.config.stateDir).etcdState, { ...state, pid: null, startedAt: null });
  return how;
}

/** Records the fleet's schema and this host's current pools (dropping destroyed ones) once etcd answers. */
export async function recordFleet(ctx: Context, endpoints: readonly string[], opts: EtcdConnectOptions = {}): Promise<void> {
  const store = await connectEtcd(endpoints, opts);
  try {
    const keys = fleetKeys(ctx.config.fleet);
    const migrated = await migrateFleet(store, ctx.config.fleet);
    if (migrated.moved + migrated.indexed > 0)
      ctx.events.step(
        `fleet ${ctx.config.fleet}: keys moved to schema ${SCHEMA_VERSION} (${migrated.moved} host keys, ${migrated.indexed} pending operations)`,
      );
    await store.createIfAbsent(keys.createdAt, new Date().toISOString());
    const host = hostname();
    const pools = await listPoolRecords(ctx.config.stateDir);
    for (const p of pools) await store.put(keys.hostPool(host, p.name), JSON.stringify(p));
    const current = new Set(pools.map((p) => keys.hostPool(host, p.name)));
    for (const kv of await store.list(keys.hostPools(host))) if (!current.has(kv.key)) await store.delete(kv.key);
  } finally {
    await store.close();
  }
}

/** The ports the local etcd starts on: those given, else the last run's (a restart keeps them), else the configured ones. */
export function localPorts(
  ctx: Context,
  opts: Pick<LocalEtcdOptions, 'clientPort' | 'peerPort'>,
  previous: EtcdServerState | null,
): { clientPort: number; peerPort: number } {
  const lastPort = (url: string | undefined) => (url ? Number(new URL(url).port) : undefined);
  const clientPort =
    opts.clientPort !== undefined ? validatePort('--client-port', opts.clientPort) : (lastPort(previous?.clientUrl) ?? ctx.config.etcdServer.clientPort);
  const peerPort = opts.peerPort !== undefined ? validatePort('--peer-port', opts.peerPort) : (lastPort(previous?.peerUrl) ?? ctx.config.etcdServer.peerPort);
  if (clientPort === peerPort) throw new UserError('--client-port and --peer-port must differ');
  return { clientPort, peerPort };
}

/** Starts the knarr-managed etcd unless it already runs healthy; the embedded default store. */
export async function ensureLocalEtcd(ctx: Context, opts: LocalEtcdOptions = {}): Promise<LocalEtcd> {
  const paths = statePaths(ctx.config.stateDir);
  const previous = await readEtcdState(ctx);
  const { clientPort, peerPort } = localPorts(ctx, opts, previous);
  if (opts.pool !== undefined) await selectPool(ctx, opts.pool);

  if (previous && (await isEtcdProcess(previous.pid))) {
    if (await dropUnswappedRestore(ctx)) ctx.events.warn('an etcd restore was cut short before it stopped etcd: dropped, the data is as it was');
    const tls = stateTls(previous);
    if (opts.forStore && previous.tls) {
      const quick = await probeHealth(previous.clientUrl, 1000, tls);
      if (!quick.healthy) {
        ctx.events.warn(`this host's etcd member does not answer (${quick.error}): going to the other members`);
        return { action: 'running', state: previous, health: quick };
      }
    }
    const health = await waitHealthy(previous.clientUrl, previous.pid!, opts.timeoutMs ?? 30000, ctx.signal, tls);
    if (!health.healthy) {
      throw new KnarrError('E_ETCD_UNHEALTHY', ExitCode.storeUnavailable, `the local etcd (pid ${previous.pid}) runs but is not healthy: ${health.error}`, {
        hint: `see ${previous.logFile}; restart it with: knarr etcd down && knarr etcd up`,
      });
    }
    if (opts.pool !== undefined && previous.pool !== opts.pool) {
      ctx.events.warn(`etcd already runs with its data ${previous.pool ? `on pool ${previous.pool}` : `in ${previous.dataDir}`}; --pool ignored`);
    }
    if (previous.tls) {
      if (opts.advertise !== undefined && new URL(previous.clientUrl).hostname.replace(/^\[|\]$/g, '') !== opts.advertise)
        ctx.events.warn(`etcd already runs as a cluster member on ${previous.clientUrl}; --advertise ignored`);
    } else if (opts.advertise !== undefined) {
      throw new ConflictError(`the local etcd runs on ${previous.clientUrl} without TLS: it cannot start serving a cluster while it runs`, {
        hint: 'stop it with `knarr etcd down`, then run `knarr etcd up --advertise IP` again (its data is kept)',
      });
    } else if (previous.clientUrl !== `http://127.0.0.1:${clientPort}` || previous.peerUrl !== `http://127.0.0.1:${peerPort}`) {
      ctx.events.warn(`etcd already runs on ${previous.clientUrl}; the ports given are ignored until it is restarted`);
    }
    if (!ctx.runner.dryRun && previous.tls && !previous.settled) await settleMember(ctx, previous);
    if (!ctx.runner.dryRun) await recordFleet(ctx, previous.endpoints ?? [previous.clientUrl], storeOptions(previous));
    return { action: 'running', state: previous, health };
  }
  // A cluster member restarts as it was recorded (its name, addresses and certificates), on its data: never a new cluster.
  if (previous?.tls) {
    const ip = new URL(previous.peerUrl).hostname.replace(/^\[|\]$/g, '');
    if (opts.advertise !== undefined && opts.advertise !== ip) throw movedMember(previous, `--advertise says ${opts.advertise}`);
    if (!ctx.runner.dryRun && !(await isLocalAddress(ip))) throw movedMember(previous, `${ip} is not an address of this host (any more)`);
    // Its data stays where it was, even when a pool was made since (onboot): a member never starts on an empty directory.
    const dataDir = previous.pool === null ? paths.etcdLocalData : (await dataLocation(ctx, previous.pool)).dataDir;
    if (dataDir !== previous.dataDir) {
      throw new ConflictError(`etcd member ${previous.name} keeps its data in ${previous.dataDir}, not ${dataDir}`, {
        hint: `bring up the pool that holds ${previous.dataDir} (knarr pool init), then run the command again`,
      });
    }
    if (await finishRestore(ctx)) ctx.events.warn('finished a restore that was cut short');
    // A member that has run needs its data: without it etcd would found a new cluster or be refused by the others.
    if (previous.clusterState === 'existing' && !ctx.runner.dryRun && !(await pathExists(`${dataDir}/member`))) {
      throw new ConflictError(`etcd member ${previous.name} has no data in ${dataDir}: it will not start as a new member`, {
        hint:
          `restore it (knarr etcd restore FILE), or remove it from the cluster on another member (knarr etcd remove ${previous.name}), ` +
          `move ${paths.etcdState} and ${paths.etcdPki.dir} aside and join again`,
      });
    }
    return startMember(ctx, previous, opts.timeoutMs);
  }

  const { dataDir, pool } = await dataLocation(ctx, opts.pool);
  // A restore cut short is finished (its pool is online now) before etcd starts on data that is half swapped.
  if (await finishRestore(ctx)) ctx.events.warn('finished a restore that was cut short');
  if (previous?.dataDir && previous.dataDir !== dataDir && !ctx.runner.dryRun) {
    throw new ConflictError(`the local etcd last kept its data in ${previous.dataDir}, not ${dataDir}`, {
      hint: `start it from its old place with --pool ${previous.pool ?? '(none)'}, or move ${paths.etcdState} aside to begin a new store`,
    });
  }
  const plain: EtcdServerState = {
    pid: null,
    name: ETCD_MEMBER_NAME,
    clientUrl: `http://127.0.0.1:${clientPort}`,
    peerUrl: `http://127.0.0.1:${peerPort}`,
    socket: `${paths.etcdDir}/${ETCD_SOCKET_FILE}`,
    dataDir,
    pool: pool?.name ?? null,
    logFile: paths.etcdLog,
    startedAt: null,
  };
  if (opts.advertise !== undefined) {
    const ip = validateAdvertiseIp('--advertise', opts.advertise);
    // knarr etcd up turns such data into the member's first (plainToMember); under --dry-run it only planned that.
    if (!ctx.runner.dryRun && (await pathExists(`${dataDir}/member`))) {
      throw new ConflictError(`${dataDir} holds the data of a plain one-member etcd, not yet turned into a cluster member's`, {
        hint: `run: ${knarrCommand('etcd', 'up', '--advertise', ip)} (it keeps the data, and the old copy aside)`,
      });
    }
    const name = memberName(opts.name);
    await ensureFirstPki(ctx, name, ip);
    const urls = tlsUrls(ip, clientPort, peerPort);
    const member: EtcdServerState = {
      ...plain,
      name,
      ...urls,
      socket: '',
      tls: pkiFiles(ctx),
      initialCluster: `${name}=${urls.peerUrl}`,
      clusterState: 'new',
      endpoints: [urls.clientUrl],
    };
    return startMember(ctx, member, opts.timeoutMs);
  }
  const state = plain;
  const already = await probeHealth(state.clientUrl, 500);
  if (already.healthy && !ctx.runner.dryRun) {
    throw new ConflictError(`another etcd already answers on ${state.clientUrl}`, { hint: 'pick free ports with --client-port and --peer-port' });
  }
  await ctx.runner.mkdirp(paths.etcdDir);
  if (!ctx.runner.dryRun) await rm(state.socket, { force: true });
  ctx.events.step(`etcd: starting on ${state.clientUrl}`);
  const pid = await ctx.runner.spawnDetached(etcdArgv(state), { logFile: state.logFile, cwd: paths.etcdDir });
  if (pid === null) return { action: 'planned', state, health: { healthy: false, version: null, error: 'dry run' } };

  // Interrupted before it answered: the process it started is not left running unrecorded.
  const health = await waitHealthy(state.clientUrl, pid, opts.timeoutMs ?? 60000, ctx.signal).catch(async (e: unknown) => {
    await stopProcess(pid, 5000);
    throw e;
  });
  if (!health.healthy) {
    await stopProcess(pid, 5000);
    throw new KnarrError('E_ETCD_START', ExitCode.failure, `etcd did not become healthy: ${health.error}`, {
      hint: `last lines of ${state.logFile}:\n${await tailFile(state.logFile)}`,
    });
  }
  const started: EtcdServerState = { ...state, pid, startedAt: new Date().toISOString() };
  await writeJsonAtomic(paths.etcdState, started);
  ctx.events.step('etcd: recording the fleet');
  await recordFleet(ctx, [started.clientUrl]);
  ctx.events.done();
  return { action: 'started', state: started, health };
}

/** A member whose recorded address is not this host's: the peers know it by that address, so it cannot start elsewhere; the fix, nothing changed. */
function movedMember(state: EtcdServerState, why: string): ConflictError {
  const other = (state.endpoints ?? []).find((u) => u !== state.clientUrl) ?? 'https://OTHER-MEMBER:2379';
  return new ConflictError(`etcd member ${state.name} is known to its cluster at ${state.peerUrl}, but ${why}; it was not started`, {
    hint:
      `its data in ${state.dataDir} is untouched. If the address comes back, run knarr etcd up again; if it changed for good, ` +
      `run \`knarr etcd remove ${state.name}\` on another member, then here \`knarr etcd join ${other} --token TOKEN\` ` +
      `(TOKEN from knarr etcd token; the old data is set aside in ${state.dataDir}, not deleted)`,
  });
}

/** Starts a TLS member from its recorded state and waits until it answers. */
export async function startMember(ctx: Context, state: EtcdServerState, timeoutMs = 60000): Promise<LocalEtcd> {
  const paths = statePaths(ctx.config.stateDir);
  const already = ctx.runner.dryRun ? null : await probeHealth(state.clientUrl, 500, stateTls(state));
  if (already?.healthy) {
    throw new ConflictError(`another etcd already answers on ${state.clientUrl}`, { hint: 'pick free ports with --client-port and --peer-port' });
  }
  await ctx.runner.mkdirp(paths.etcdDir);
  ctx.events.step(`etcd: starting member ${state.name} on ${state.clientUrl}`);
  const pid = await ctx.runner.spawnDetached(etcdArgv(state), { logFile: state.logFile, cwd: paths.etcdDir });
  if (pid === null) return { action: 'planned', state, health: { healthy: false, version: null, error: 'dry run' } };
  // Recorded at once: a member that is slow to answer (a learner catching up) is still known, and `etcd down` can stop it.
  const started: EtcdServerState = { ...state, pid, startedAt: new Date().toISOString() };
  await writeJsonAtomic(paths.etcdState, started);
  const tls = stateTls(state);
  const health = await waitHealthy(state.clientUrl, pid, timeoutMs, ctx.signal, tls).catch(async (e: unknown) => {
    await stopLocalEtcd(ctx, started);
    throw e;
  });
  if (!health.healthy) {
    await stopLocalEtcd(ctx, started);
    throw new KnarrError('E_ETCD_START', ExitCode.failure, `etcd member ${state.name} did not become healthy: ${health.error}`, {
      hint: `last lines of ${state.logFile}:\n${await tailFile(state.logFile)}`,
    });
  }
  // From its first healthy start on, the member's cluster exists: a restart never founds a new one.
  if (state.clusterState !== 'existing') {
    started.clusterState = 'existing';
    await writeJsonAtomic(paths.etcdState, started);
  }
  // A joining member is a learner until promoted: it serves no reads, so the fleet is recorded after.
  const settled = started.settled ? started : await settleMember(ctx, started);
  ctx.events.step('etcd: recording the fleet');
  await recordFleet(ctx, started.endpoints ?? [started.clientUrl], storeOptions(started));
  ctx.events.done();
  return { action: 'started', state: settled, health };
}

/**
 * Finishes what a member owes the cluster once: promoted if still a learner (a join cut short), and
 * the CA key sealed in etcd. Recorded as settled, so a store command on a member host does not repeat it.
 */
async function settleMember(ctx: Context, state: EtcdServerState): Promise<EtcdServerState> {
  await promoteIfLearner(ctx, state, 60_000);
  await sealCaKeyInStore(ctx, state);
  const settled = { ...state, settled: true };
  await writeJsonAtomic(statePaths(ctx.config.stateDir).etcdState, settled);
  return settled;
}

/** The fleet CA's key goes into etcd sealed with the token's secret, for joining hosts to sign their certificates. */
export async function sealCaKeyInStore(ctx: Context, state: EtcdServerState): Promise<void> {
  const token = await readToken(ctx);
  if (!token) return;
  const store = await connectEtcd(state.endpoints ?? [state.clientUrl], storeOptions(state));
  try {
    const pem = await readFile(statePaths(ctx.config.stateDir).etcdPki.caKey, 'utf8');
    await store.createIfAbsent(etcdClusterKeys.caKey, sealCaKey(token.secret, pem));
  } finally {
    await store.close();
  }
}
