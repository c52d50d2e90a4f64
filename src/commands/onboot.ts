import { resolve } from 'node:path';
import { parseDotRef, parseRemoteDotRef, subdotDir } from '../core/dots.js';
import { ConflictError, ExitCode, KnarrError, ValidationError, isKnarrError } from '../core/errors.js';
import { validatePath, validatePoolName } from '../core/names.js';
import { parseDeviceList } from '../core/pool.js';
import { isEtcdProcess } from '../host/etcd-server.js';
import { poolInit } from './pool/init.js';
import { ensureLocalEtcd, readEtcdState } from './etcd/local.js';
import { etcdDown } from './etcd/down.js';
import { dotInit } from './dot/init.js';
import { dotMount } from './dot/mount.js';
import { pullDot } from './dot/pull.js';
import { dotHandle, withDotLock, withDots } from './dot/common.js';
import { readPoolRecord } from '../host/local-state.js';
import type { DotRecord } from '../core/dots.js';
import type { DotRepo } from '../state/dots.js';
import type { DriverName } from '../core/pool.js';
import type { CommandResult, Context } from './types.js';

type Step = 'pool' | 'etcd' | 'dot' | 'seed' | 'mount';
const STEP_CODES: Record<Step, number> = {
  pool: ExitCode.bootPool,
  etcd: ExitCode.bootEtcd,
  dot: ExitCode.bootDot,
  seed: ExitCode.bootSeed,
  mount: ExitCode.bootMount,
};

/** Runs one boot step; a failure exits with that step's code and says which step it was. */
async function step<T>(ctx: Context, name: Step, what: string, fn: () => Promise<T>): Promise<T> {
  ctx.events.step(`onboot: ${what}`);
  try {
    return await fn();
  } catch (e) {
    if (isKnarrError(e) && e.exitCode === ExitCode.interrupted) throw e;
    const message = e instanceof Error ? e.message : String(e);
    throw new KnarrError(`E_BOOT_${name.toUpperCase()}`, STEP_CODES[name], `onboot step "${name}" failed: ${message}`, {
      hint: isKnarrError(e) ? e.hint : undefined,
      cause: e,
    });
  }
}

/** The dot a boot brings up, and the seed it may come from. */
interface BootDot {
  dotText: string;
  ref: ReturnType<typeof parseDotRef>;
  seedText: string | undefined;
  seed: ReturnType<typeof parseRemoteDotRef> | null;
}

interface BootPlan {
  devices: string[];
  driver: DriverName | undefined;
  pool: string | undefined;
  /** Null in the service form (`--daemon` without `--dot`): pool and etcd only. */
  dot: (BootDot & { mountpoint: string }) | null;
  daemon: boolean;
}

/** The dot step: whatever is on this host wins over the seed (the reboot case), else the seed is pulled, else the dot is made; says which. */
async function bringUpDot(ctx: Context, repo: DotRepo, d: BootDot, poolName: string): Promise<string> {
  const existing = await step(ctx, 'dot', `dot ${d.ref.dot}`, () => repo.get(d.ref.dot));
  if (existing) {
    await step(ctx, 'dot', `data of dot ${d.ref.dot}`, () => checkDotData(ctx, existing, subdotDir(d.ref.subdot)));
    if (existing.subdots.includes(subdotDir(d.ref.subdot))) return 'kept';
    await step(ctx, 'dot', `subdot ${d.dotText}`, () => dotInit(d.dotText, {}, ctx));
    return 'kept (subdot created)';
  }
  const seed = d.seed;
  if (seed) {
    await step(ctx, 'seed', `pulling ${d.seedText}`, () =>
      withDotLock(ctx, 'onboot seed pull', [seed.dot], () =>
        pullDot(ctx, repo, { remote: seed.remote, user: seed.user, dot: seed.dot, branch: seed.branch, pool: poolName }),
      ),
    );
    const pulled = await repo.get(d.ref.dot);
    if (pulled && !pulled.subdots.includes(subdotDir(d.ref.subdot))) await step(ctx, 'dot', `subdot ${d.dotText}`, () => dotInit(d.dotText, {}, ctx));
    return 'pulled';
  }
  await step(ctx, 'dot', `dot ${d.dotText}`, () => dotInit(d.dotText, { pool: poolName }, ctx));
  return 'created';
}

/**
 * `knarr --dry-run onboot`: each step's commands as far as the host's state tells them now. What
 * depends on an earlier step that has not run (a dot's fate needs etcd on the pool) is said as a
 * comment line, not guessed.
 */
async function planBoot(ctx: Context, b: BootPlan): Promise<CommandResult> {
  const note = (line: string) => ctx.runner.note(line);
  const pool = await poolInit({ devices: b.devices, driver: b.driver, name: b.pool, force: false }, ctx);
  const poolName = 'dryRun' in pool.data ? pool.data.pool : pool.data.name;
  const record = await readPoolRecord(ctx.config.stateDir, poolName);
  const poolHere = record !== null && (await ctx.drivers[record.driver].poolStatus(record, ctx.runner)).online;
  let etcdRuns = false;
  if (poolHere) etcdRuns = (await ensureLocalEtcd(ctx, { pool: poolName })).action === 'running';
  else note(`etcd up --pool ${poolName}: once the pool is there`);
  let dotAction: string | null = null;
  const d = b.dot;
  if (d && etcdRuns) {
    dotAction = await withDots(ctx, (repo) => bringUpDot(ctx, repo, d, poolName));
    if (dotAction === 'kept') await dotMount(d.dotText, d.mountpoint, {}, ctx);
    else note(`mount ${d.dotText} at ${d.mountpoint}`);
  } else if (d) {
    dotAction = 'decided at boot';
    note(`dot ${d.dotText}: kept if the pool has it, else ${d.seed ? `pulled from ${d.seedText}` : 'created'} (decided once etcd runs on the pool)`);
    note(`mount ${d.dotText} at ${d.mountpoint}`);
  }
  if (b.daemon) note(`run until SIGTERM${agentConfigured(ctx) ? ' with the agent' : ''}, then etcd down`);
  else note('etcd down');
  return { data: { pool: poolName, poolHere, etcdRunning: etcdRuns, dot: d?.dotText ?? null, dotAction, mountpoint: d?.mountpoint ?? null, daemon: b.daemon } };
}

/** The config file's `daemon:` section asks for the agent: `onboot --daemon` runs it too. */
function agentConfigured(ctx: Context): boolean {
  return Object.values(ctx.config.daemon).some((p) => p.source === 'file');
}

/**
 * `--daemon` after the boot: runs the agent when one is configured, else just waits, until SIGTERM;
 * meanwhile etcd is started again should it die. The timer also keeps the process alive: a promise
 * waiting on a signal alone does not.
 */
async function serveUntilSignal(ctx: Context, poolName: string): Promise<void> {
  let checking: Promise<void> = Promise.resolve();
  const watch = async () => {
    const state = await readEtcdState(ctx);
    if (ctx.signal.aborted || (state && (await isEtcdProcess(state.pid)))) return;
    ctx.events.warn('onboot: etcd stopped; starting it again');
    await ensureLocalEtcd(ctx, { pool: poolName });
  };
  const timer = setInterval(() => {
    checking = checking.then(watch).catch((e: Error) => ctx.events.warn(`onboot: could not start etcd again: ${e.message}`));
  }, 2000);
  try {
    if (agentConfigured(ctx)) {
      const { daemon } = await import('./daemon.js');
      await daemon(ctx);
    } else {
      await new Promise<void>((res) => (ctx.signal.aborted ? res() : ctx.signal.addEventListener('abort', () => res(), { once: true })));
    }
  } finally {
    clearInterval(timer);
    await checking;
  }
}

/**
 * A dot the store has must have its data where its pool is mounted: a state directory other than
 * the one that made the pool would otherwise mount an empty directory and call it kept.
 */
async function checkDotData(ctx: Context, dot: DotRecord, sub: string): Promise<void> {
  const h = await dotHandle(ctx, dot);
  const expected = dot.subdots.includes(sub) ? [sub] : dot.subdots;
  const found = await h.storage.listSubdirs(h.ref());
  if (expected.length === 0 || expected.some((s) => found.includes(s))) return;
  const path = h.storage.branchPath(h.ref());
  throw new ConflictError(`dot ${dot.name} is in the store, but its data is not at ${path} on pool ${h.pool.name}`, {
    hint: `check where the pool is mounted (knarr pool status ${h.pool.name}) and that --state-dir is the one that made it; nothing was mounted`,
  });
}

/** The options of `knarr onboot`, as its definition types them. */
export interface OnbootOptions {
  storageDevice: string[];
  /** The dm-linuxkit spelling of storageDevice. */
  zpoolDevice: string[];
  driver?: DriverName;
  pool?: string;
  dot?: string;
  seed?: string;
  mountpoint?: string;
  daemon: boolean;
}

/**
 * `knarr onboot`: the dm-linuxkit flow for a LinuxKit onboot container. Idempotent: at every boot it
 * imports the pool, brings etcd up, keeps a dot that exists (a seed never overwrites local state),
 * else pulls it from --seed, else inits it, and mounts it; then stops etcd, or with --daemon first runs
 * (etcd kept up, the agent when configured) until SIGTERM. Without --dot, --daemon is the service form.
 */
export async function onboot(opts: OnbootOptions, ctx: Context): Promise<CommandResult> {
  const deviceFlags = [...opts.storageDevice, ...opts.zpoolDevice];
  if (deviceFlags.length === 0)
    throw new ValidationError('--storage-device', 'give the device(s) for the pool, e.g. --storage-device /dev/nvme0n1,/dev/nvme1n1');
  const devices = parseDeviceList(opts.storageDevice.length > 0 ? '--storage-device' : '--zpool-device', deviceFlags, ctx.cwd);
  const poolOpt = opts.pool;
  if (poolOpt !== undefined) validatePoolName('--pool', poolOpt);
  const daemon = opts.daemon;
  const dotText = opts.dot;
  const mountText = opts.mountpoint;
  let dot: BootPlan['dot'] = null;
  if (dotText === undefined) {
    if (!daemon)
      throw new ValidationError('--dot', 'give the dot to bring up, e.g. --dot postgres or --dot myapp.postgres (or --daemon alone to keep pool and etcd up)');
    if (mountText !== undefined) throw new ValidationError('--mountpoint', 'mounts a dot; give --dot too');
    if (opts.seed !== undefined) throw new ValidationError('--seed', 'seeds a dot; give --dot too');
  } else {
    const ref = parseDotRef('--dot', dotText);
    if (mountText === undefined) throw new ValidationError('--mountpoint', 'give where to mount the dot, e.g. --mountpoint /var/lib/postgresql');
    const mountpoint = validatePath('--mountpoint', resolve(ctx.cwd, mountText));
    const seedText = opts.seed;
    const seed = seedText === undefined ? null : parseRemoteDotRef('--seed', seedText);
    if (seed && seed.dot !== ref.dot) {
      throw new ValidationError('--seed', `seeds dot ${seed.dot}, but --dot names ${ref.dot}; a seed brings in the whole dot, subdots included`);
    }
    dot = { dotText, ref, seedText, seed, mountpoint };
  }
  if (daemon && agentConfigured(ctx)) {
    // The agent's settings are checked before the boot changes anything.
    const { checkDaemonSettings } = await import('./daemon.js');
    checkDaemonSettings(ctx);
  }
  const plan: BootPlan = { devices, driver: opts.driver, pool: poolOpt, dot, daemon };
  if (ctx.runner.dryRun) return planBoot(ctx, plan);

  const pool = await step(ctx, 'pool', 'pool', () => poolInit({ devices, driver: plan.driver, name: poolOpt, force: false }, ctx));
  const poolName = 'dryRun' in pool.data ? pool.data.pool : pool.data.name;
  const etcd = await step(ctx, 'etcd', 'etcd on the pool', () => ensureLocalEtcd(ctx, { pool: poolName }));

  let dotAction: string | null = null;
  try {
    if (dot) {
      const d = dot;
      dotAction = await withDots(ctx, (repo) => bringUpDot(ctx, repo, d, poolName));
      await step(ctx, 'mount', `mount at ${d.mountpoint}`, () => dotMount(d.dotText, d.mountpoint, {}, ctx));
    }
    if (daemon) {
      ctx.events.step(`onboot: up; running until SIGTERM${agentConfigured(ctx) ? ' with the agent' : ''}`);
      ctx.events.done();
      await serveUntilSignal(ctx, poolName);
    }
  } catch (e) {
    // Oneshot or not, a failed boot does not leave etcd running behind it.
    await etcdDown(ctx).catch(() => undefined);
    throw e;
  }

  const result = {
    pool: poolName,
    poolAction: pool.data.action,
    etcd: etcd.action,
    dot: dot?.dotText ?? null,
    dotAction,
    mountpoint: dot?.mountpoint ?? null,
    daemon,
  };
  ctx.events.step('onboot: stopping etcd');
  await etcdDown(ctx);
  ctx.events.done();
  const fields: [string, string][] = [
    ['pool', `${poolName} (${result.poolAction})`],
    ['etcd', result.etcd],
  ];
  if (dot) fields.push(['dot', `${dot.dotText} (${dotAction})`], ['mountpoint', dot.mountpoint]);
  return { data: result, view: { kind: 'fields', fields } };
}
