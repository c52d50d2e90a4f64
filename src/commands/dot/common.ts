import { hostname, userInfo } from 'node:os';
import { DEFAULT_SUBDOT, chain, type CommitRecord, type DotRecord } from '../../core/dots.js';
import { NotFoundError } from '../../core/errors.js';
import type { PoolRecord } from '../../core/pool.js';
import { readPoolRecord } from '../../host/local-state.js';
import { mountAt } from '../../host/mounts.js';
import type { DotFsRef, DotStorage } from '../../host/storage/driver.js';
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

/** The active branch's commits, newest first. */
export async function activeChain(repo: DotRepo, dot: DotRecord, branch = dot.activeBranch): Promise<CommitRecord[]> {
  return chain(await repo.commits(dot.name), dot.branches[branch]?.head ?? null);
}

export function subdotLabel(dot: string, subdir: string): string {
  return subdir === DEFAULT_SUBDOT ? dot : `${dot}.${subdir}`;
}

/** Bind-mounts a subdot of the active branch at target; idempotent. */
export async function mountSubdot(ctx: Context, h: DotHandle, subdir: string, target: string): Promise<'mounted' | 'exists'> {
  const current = await mountAt(target);
  if (current && h.dot.mounts[subdir] === target) return 'exists';
  await ctx.runner.mkdirp(target);
  await h.storage.ensureSubdir(h.ref(), subdir);
  await ctx.runner.run(['mount', '--bind', `${h.storage.branchPath(h.ref())}/${subdir}`, target]);
  return 'mounted';
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

/** Remounts recorded mounts after the branch filesystem under them changed (checkout, reset). */
export async function remount(ctx: Context, h: DotHandle, mounts: Record<string, string>): Promise<void> {
  for (const [sub, target] of Object.entries(mounts)) {
    if (await mountAt(target)) await ctx.runner.run(['umount', target]);
    await ctx.runner.run(['mount', '--bind', `${h.storage.branchPath(h.ref())}/${sub}`, target]);
  }
}

export function shortId(id: string | null): string {
  return id ? id.slice(0, 12) : '-';
}
