import { hostname, userInfo } from 'node:os';
import { DEFAULT_SUBDOT, chain, type CommitRecord, type DotRecord } from '../../core/dots.js';
import { ConflictError, NotFoundError, isKnarrError } from '../../core/errors.js';
import { statePaths } from '../../core/paths.js';
import type { PoolRecord } from '../../core/pool.js';
import { readPoolRecord } from '../../host/local-state.js';
import { acquireLock, holderAlive, type LockHolder } from '../../host/lock.js';
import { entriesOf, mountAt, sameDirectory } from '../../host/mounts.js';
import type { DotFsRef, DotStorage, DotTransfer } from '../../host/storage/driver.js';
import { DotRepo } from '../../state/dots.js';
import type { Context } from '../types.js';
import { withStore } from '../with-store.js';

import { hostId } from '../../host/identity.js';

export { hostId };

export function author(ctx: Context): string {
  return ctx.config.dots.author || `${userInfo().username}@${hostname()}`;
}

/** Opens the store, hands a DotRepo to fn, and always closes the connection. */
export function withDots<T>(ctx: Context, fn: (repo: DotRepo) => Promise<T>): Promise<T> {
  return withStore(ctx, (store) => fn(new DotRepo(store, ctx.config.fleet, hostId(), ctx.runner.dryRun)));
}

/** Who holds a lock, in words: "dot commit (pid 42, 3s)". */
export function describeHolder(h: LockHolder): string {
  return `${h.what ?? 'knarr'} (pid ${h.pid}${h.host ? ` on ${h.host}` : ''}, for ${Math.round(h.ageMs / 1000)}s)`;
}

/**
 * Runs fn holding the lock of every named dot (in name order, so two commands never wait on each
 * other): one command at a time changes a dot on this host. A busy dot is waited for with a word on
 * stderr, or refused at once (exit 4) under --no-wait. --dry-run takes no lock: it changes nothing.
 */
export async function withDotLock<T>(ctx: Context, what: string, dots: string[], fn: () => Promise<T>): Promise<T> {
  if (ctx.config.dryRun) return fn();
  const releases: (() => Promise<void>)[] = [];
  try {
    for (const dot of [...new Set(dots)].sort()) {
      releases.push(
        await acquireLock(statePaths(ctx.config.stateDir).dotLock(dot), {
          what,
          stale: (h) => !holderAlive(h),
          wait: !ctx.config.noWait,
          signal: ctx.signal,
          busy: (h) =>
            new ConflictError(`dot ${dot} is in use by ${describeHolder(h)}`, {
              hint: 'run it again when that command is done, or without --no-wait to wait for it',
            }),
          onWait: (h) => ctx.events.warn(`dot ${dot} is in use by ${describeHolder(h)}; waiting for it (--no-wait fails at once)`),
        }),
      );
    }
    return await fn();
  } finally {
    for (const release of releases.reverse()) await release();
  }
}

export async function requireDot(repo: DotRepo, name: string): Promise<DotRecord> {
  const dot = await repo.get(name);
  if (!dot) throw new NotFoundError(`no dot named ${name} on this host`, { hint: `list dots with: knarr dot list, or make it with: knarr dot init ${name}` });
  return dot;
}

export async function dotPool(ctx: Context, dot: DotRecord): Promise<PoolRecord> {
  const pool = await readPoolRecord(ctx.config.stateDir, dot.pool);
  if (!pool) throw new NotFoundError(`dot ${dot.name} lives on pool ${dot.pool}, which this host does not have`, { hint: 'bring it up with: knarr pool init' });
  return pool;
}

export interface DotHandle {
  dot: DotRecord;
  pool: PoolRecord;
  storage: DotStorage;
  ref(branch?: string): DotFsRef;
}

export async function dotHandle(ctx: Context, dot: DotRecord): Promise<DotHandle> {
  const pool = await dotPool(ctx, dot);
  const storage = ctx.drivers[pool.driver].dots(ctx.runner);
  return { dot, pool, storage, ref: (branch = dot.activeBranch) => ({ pool, dot: dot.name, branch }) };
}

/** The pool's stream transfer, or null for a driver without one: it has no staging either. */
export function poolTransfer(ctx: Context, pool: PoolRecord): DotTransfer | null {
  try {
    return ctx.drivers[pool.driver].transfer(ctx.runner);
  } catch (e) {
    if (isKnarrError(e)) return null;
    throw e;
  }
}

/** The active branch's commits, newest first. */
export async function activeChain(repo: DotRepo, dot: DotRecord, branch = dot.activeBranch): Promise<CommitRecord[]> {
  return chain(await repo.commits(dot.name), dot.branches[branch]?.head ?? null);
}

/**
 * The log from a commit (a branch's head), newest first: the dot's own commits and, for a clone, the
 * history of the dot it came from (up to the commit it was cloned at), which the clone's first commit follows.
 */
export async function fullLog(repo: DotRepo, dot: DotRecord, head: string | null): Promise<CommitRecord[]> {
  const own = chain(await repo.commits(dot.name), head);
  if (own.length > 0 && own[own.length - 1]!.parent !== null) return own;
  const before = dot.origin?.commit && !dot.origin.remote ? await repo.history(dot.name) : [];
  // A history left by a clone cut short belongs to no dot of this name: it counts only when it ends where the origin says.
  return before[0]?.id === dot.origin?.commit ? [...own, ...before] : own;
}

export function subdotLabel(dot: string, subdir: string): string {
  return subdir === DEFAULT_SUBDOT ? dot : `${dot}.${subdir}`;
}

/** Brings the branch's filesystem back where branchPath says (mounted, or rebuilt from its head) before anything is bound to it. */
export async function restoreBranchOf(ctx: Context, h: DotHandle, branch = h.dot.activeBranch, head = h.dot.branches[branch]?.head ?? null): Promise<void> {
  const r = await h.storage.restoreBranch(h.ref(branch), head, h.dot.subdots);
  if (r.action !== 'exists')
    ctx.events.warn(
      `${h.dot.name}: branch ${branch} was ${r.action === 'mounted' ? 'not mounted; mounted it again' : `gone; rebuilt it from ${shortId(head)}`}`,
    );
  if (r.movedAside) ctx.events.warn(`${h.dot.name}: files found where branch ${branch} belongs were moved to ${r.movedAside}`);
}

/** The subdot's folder in the active branch is what target shows: bound there, not an empty folder underneath. */
export function boundAt(h: DotHandle, subdir: string, target: string): Promise<boolean> {
  return sameDirectory(target, `${h.storage.branchPath(h.ref())}/${subdir}`);
}

/** Bind-mounts a subdot of the active branch at target (replacing a stale mount of it); idempotent. */
export async function mountSubdot(ctx: Context, h: DotHandle, subdir: string, target: string, force = false): Promise<'mounted' | 'exists'> {
  await restoreBranchOf(ctx, h);
  if (await boundAt(h, subdir, target)) return 'exists';
  if (h.dot.mounts[subdir] === target && (await mountAt(target))) await ctx.runner.run(['umount', target]);
  await ctx.runner.mkdirp(target);
  const own = ctx.runner.dryRun || force ? [] : await entriesOf(target);
  if (own.length > 0) {
    throw new ConflictError(
      `${target} holds files of its own (${own.slice(0, 3).join(', ')}${own.length > 3 ? ', ...' : ''}), written ` +
        `while ${subdotLabel(h.dot.name, subdir)} was not mounted there: mounting it again would hide them`,
      {
        hint: 'move them away (into the dot once it is mounted), then run: knarr dot fsck --repair',
      },
    );
  }
  await h.storage.ensureSubdir(h.ref(), subdir);
  await ctx.runner.run(['mount', '--bind', `${h.storage.branchPath(h.ref())}/${subdir}`, target]);
  return 'mounted';
}

/** Refuses to go on (a commit would snapshot the wrong files) while the dot's branch is not where its records say. */
export async function requireMounted(h: DotHandle): Promise<void> {
  const problems = await mountProblems(h);
  if (problems.length === 0) return;
  throw new ConflictError(`dot ${h.dot.name} is not mounted where its records say: ${problems.join('; ')}; a commit now would miss what is written there`, {
    hint: `check and mend it with: knarr dot fsck --repair`,
  });
}

/** What keeps the dot's active branch from being where its records say: its filesystem, or a recorded mount not bound to it. */
export async function mountProblems(h: DotHandle): Promise<string[]> {
  const problems: string[] = [];
  const state = await h.storage.branchState(h.ref());
  if (state !== 'ready') problems.push(`branch ${h.dot.activeBranch} is ${state === 'missing' ? 'gone' : 'not mounted'} at ${h.storage.branchPath(h.ref())}`);
  for (const [sub, target] of Object.entries(h.dot.mounts)) {
    if (!(await boundAt(h, sub, target))) problems.push(`${subdotLabel(h.dot.name, sub)} is not mounted at ${target}`);
  }
  return problems;
}

/** Unmounts every recorded mount of the dot (or the listed subdots) that is still mounted. */
export async function unmountSubdots(ctx: Context, dot: DotRecord, subdirs = Object.keys(dot.mounts)): Promise<string[]> {
  const done: string[] = [];
  for (const sub of subdirs) {
    const target = dot.mounts[sub];
    if (!target) continue;
    if (await mountAt(target)) await ctx.runner.run(['umount', target]);
    done.push(target);
  }
  return done;
}

/** Puts recorded mounts back on the active branch (after checkout, reset, pull), restoring the branch first; ends mounted or throws. */
export async function remount(ctx: Context, h: DotHandle, mounts: Record<string, string>): Promise<void> {
  await restoreBranchOf(ctx, h);
  for (const [sub, target] of Object.entries(mounts))
    await mountSubdot(ctx, { ...h, dot: { ...h.dot, mounts: { ...h.dot.mounts, [sub]: target } } }, sub, target);
}

export function shortId(id: string | null): string {
  return id ? id.slice(0, 12) : '-';
}
