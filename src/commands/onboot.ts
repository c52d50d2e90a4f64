import { resolve } from 'node:path';
import { parseDotRef, parseRemoteDotRef, subdotDir } from '../core/dots.js';
import { ExitCode, KnarrError, ValidationError, isKnarrError } from '../core/errors.js';
import { validatePath } from '../core/names.js';
import { poolInit } from './pool/init.js';
import { ensureLocalEtcd } from './etcd/local.js';
import { etcdDown } from './etcd/down.js';
import { dotInit } from './dot/init.js';
import { dotMount } from './dot/mount.js';
import { pullDot } from './dot/pull.js';
import { withDotLock, withDots } from './dot/common.js';
import { readPoolRecord } from '../host/local-state.js';
import type { DotRepo } from '../state/dots.js';
import { optBool, optList, optString, type CommandResult, type Context, type Handler } from './types.js';

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

interface BootPlan extends BootDot {
  devices: string[];
  driver: string | undefined;
  pool: string | undefined;
  mountpoint: string;
  daemon: boolean;
}

/** The dot step: whatever is on this host wins over the seed (the reboot case), else the seed is pulled, else the dot is made; says which. */
async function bringUpDot(ctx: Context, repo: DotRepo, d: BootDot, poolName: string): Promise<string> {
  const existing = await step(ctx, 'dot', `dot ${d.ref.dot}`, () => repo.get(d.ref.dot));
  if (existing) {
    if (existing.subdots.includes(subdotDir(d.ref.subdot))) return 'kept';
    await step(ctx, 'dot', `subdot ${d.dotText}`, () => dotInit({ args: [d.dotText], opts: {} }, ctx));
    return 'kept (subdot created)';
  }
  const seed = d.seed;
  if (seed) {
    await step(ctx, 'seed', `pulling ${d.seedText}`, () =>
      withDotLock(ctx, 'onboot seed pull', [seed.dot], () => pullDot(ctx, repo, { remote: seed.remote, dot: seed.dot, branch: seed.branch, pool: poolName })),
    );
    const pulled = await repo.get(d.ref.dot);
    if (pulled && !pulled.subdots.includes(subdotDir(d.ref.subdot))) await step(ctx, 'dot', `subdot ${d.dotText}`, () => dotInit({ args: [d.dotText], opts: {} }, ctx));
    return 'pulled';
  }
  await step(ctx, 'dot', `dot ${d.dotText}`, () => dotInit({ args: [d.dotText], opts: { pool: poolName } }, ctx));
  return 'created';
}

/**
 * `knarr --dry-run onboot`: each step's commands as far as the host's state tells them now. What
 * depends on an earlier step that has not run (a dot's fate needs etcd on the pool) is said as a
 * comment line, not guessed.
 */
async function planBoot(ctx: Context, b: BootPlan): Promise<CommandResult> {
  const note = (line: string) => ctx.runner.note(line);
  const pool = await poolInit({ args: [], opts: { device: b.devices, driver: b.driver, name: b.pool } }, ctx);
  const poolName = (pool.data as { pool?: string; name?: string }).name ?? (pool.data as { pool: string }).pool;
  const record = await readPoolRecord(ctx.config.stateDir, poolName);
  const poolHere = record !== null && (await ctx.drivers[record.driver].poolStatus(record, ctx.runner)).online;
  let etcdRuns = false;
  if (poolHere) etcdRuns = (await ensureLocalEtcd(ctx, { pool: poolName })).action === 'running';
  else note(`etcd up --pool ${poolName}: once the pool is there`);
  let dotAction = 'decided at boot';
  if (etcdRuns) {
    dotAction = await withDots(ctx, (repo) => bringUpDot(ctx, repo, b, poolName));
    if (dotAction === 'kept') await dotMount({ args: [b.dotText, b.mountpoint], opts: {} }, ctx);
    else note(`mount ${b.dotText} at ${b.mountpoint}`);
  } else {
    note(`dot ${b.dotText}: kept if the pool has it, else ${b.seed ? `pulled from ${b.seedText}` : 'created'} (decided once etcd runs on the pool)`);
    note(`mount ${b.dotText} at ${b.mountpoint}`);
  }
  if (!b.daemon) note('etcd down');
  return { data: { pool: poolName, poolHere, etcdRunning: etcdRuns, dot: b.dotText, dotAction, mountpoint: b.mountpoint, daemon: b.daemon } };
}

/**
 * `knarr onboot`: the dm-linuxkit flow for a LinuxKit onboot container. Idempotent: at every boot it
 * imports the pool, brings etcd up, keeps a dot that exists (a seed never overwrites local state),
 * else pulls it from --seed, else inits it, and mounts it; then stops etcd unless --daemon.
 */
export const onboot: Handler = async ({ opts }, ctx) => {
  const devices = optList(opts, 'storageDevice');
  if (devices.length === 0) throw new ValidationError('--storage-device', 'give the device(s) for the pool, e.g. --storage-device /dev/nvme0n1,/dev/nvme1n1');
  const dotText = optString(opts, 'dot');
  if (dotText === undefined) throw new ValidationError('--dot', 'give the dot to bring up, e.g. --dot postgres or --dot myapp.postgres');
  const ref = parseDotRef('--dot', dotText);
  const mountText = optString(opts, 'mountpoint');
  if (mountText === undefined) throw new ValidationError('--mountpoint', 'give where to mount the dot, e.g. --mountpoint /var/lib/postgresql');
  const mountpoint = validatePath('--mountpoint', resolve(ctx.cwd, mountText));
  const seedText = optString(opts, 'seed');
  const seed = seedText === undefined ? null : parseRemoteDotRef('--seed', seedText);
  if (seed && seed.dot !== ref.dot) {
    throw new ValidationError('--seed', `seeds dot ${seed.dot}, but --dot names ${ref.dot}; a seed brings in the whole dot, subdots included`);
  }
  const daemon = optBool(opts, 'daemon');
  if (ctx.runner.dryRun) return planBoot(ctx, { devices, driver: optString(opts, 'driver'), pool: optString(opts, 'pool'), dotText, ref, seedText, seed, mountpoint, daemon });

  const pool = await step(ctx, 'pool', 'pool', () =>
    poolInit({ args: [], opts: { device: devices, driver: optString(opts, 'driver'), name: optString(opts, 'pool') } }, ctx),
  );
  const poolName = (pool.data as { name: string }).name;
  const etcd = await step(ctx, 'etcd', 'etcd on the pool', () => ensureLocalEtcd(ctx, { pool: poolName }));

  let dotAction: string;
  try {
    dotAction = await withDots(ctx, (repo) => bringUpDot(ctx, repo, { dotText, ref, seedText, seed }, poolName));
    await step(ctx, 'mount', `mount at ${mountpoint}`, () => dotMount({ args: [dotText, mountpoint], opts: {} }, ctx));
  } catch (e) {
    // Oneshot or not, a failed boot does not leave etcd running behind it.
    if (!daemon) await etcdDown({ args: [], opts: {} }, ctx).catch(() => undefined);
    throw e;
  }

  const result = { pool: poolName, poolAction: (pool.data as { action: string }).action, etcd: etcd.action, dot: dotText, dotAction, mountpoint, daemon };
  if (daemon) {
    ctx.events.step('onboot: up; running until SIGTERM');
    ctx.events.done();
    await new Promise<void>((res) => (ctx.signal.aborted ? res() : ctx.signal.addEventListener('abort', () => res(), { once: true })));
  }
  ctx.events.step('onboot: stopping etcd');
  await etcdDown({ args: [], opts: {} }, ctx);
  ctx.events.done();
  return {
    data: result,
    view: { kind: 'fields', fields: [['pool', `${poolName} (${result.poolAction})`], ['etcd', result.etcd], ['dot', `${dotText} (${dotAction})`], ['mountpoint', mountpoint]] },
  };
};
