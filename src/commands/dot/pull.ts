import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_BRANCH, chain, parseDotName, parseRemoteDotRef, planTransfer, type CommitRecord, type DotRecord } from '../../core/dots.js';
import { ConflictError, NotFoundError } from '../../core/errors.js';
import { metered } from '../../core/streams.js';
import type { Manifest, ManifestCommit, RemoteEndpoint } from '../../core/remote.js';
import type { PoolRecord } from '../../core/pool.js';
import type { DotFsRef, DotTransfer } from '../../host/storage/driver.js';
import type { DotRepo } from '../../state/dots.js';
import { selectPool } from '../pool/select.js';
import { spaceGuard } from '../../host/storage/common.js';
import type { CommandResult, Context } from '../types.js';
import { dotHandle, remount, restoreBranchOf, shortId, unmountSubdots, withDotLock, withDots, type DotHandle } from './common.js';
import { openRemote, resolveRemote } from './remote.js';
import { knarrCommand } from '../../core/shell.js';
import { checkManifestNames } from '../../core/manifest-names.js';

export { checkManifestNames };

export interface PullRequest {
  remote: string;
  /** The hub account of REMOTE/USER/DOT; null where the remote's URL or token tells it. */
  user?: string | null;
  dot: string;
  branch: string | null;
  as?: string;
  pool?: string;
  stashOnDivergence?: boolean;
}

export interface PullResult {
  dot: string;
  branch: string;
  action: 'pulled' | 'fast-forward' | 'up-to-date' | 'stashed-and-pulled';
  received: string[];
  stash: string | null;
}

const RECEIVE_ATTEMPTS = 3;

/** A remote commit's record filed under this side's names: a pull --as keeps the commits under the local dot. */
const localRecord = (entry: ManifestCommit, dot: string, branch: string): CommitRecord => ({ ...entry.record, dot, branch });

/** Receives commits (oldest first) from the remote into ref, each stream checked before it reaches the pool. */
export async function receiveChain(
  ctx: Context,
  remote: RemoteEndpoint,
  manifest: Manifest,
  transfer: DotTransfer,
  ref: DotFsRef,
  ids: string[],
  base: string | null,
): Promise<CommitRecord[]> {
  const got: CommitRecord[] = [];
  let prev = base;
  for (const id of ids) {
    const entry = manifest.commits[id]!;
    // A stream made on top of a commit this side does not hold cannot be applied.
    if (entry.base !== null && entry.base !== prev) {
      throw new ConflictError(`stream ${entry.file} applies on top of ${shortId(entry.base)}, but this side is at ${shortId(prev)}`, {
        hint: 'pull the branch it was pushed from',
      });
    }
    const record = localRecord(entry, ref.dot, ref.branch);
    for (let attempt = 1; ; attempt++) {
      const meter = ctx.events.progress(`pull ${ref.dot}: commit ${shortId(id)}`, entry.bytes);
      try {
        await remote.fetchCommit(manifest.dot, entry, (input, source) => transfer.receive(ref, record, entry.base, metered(input, meter.add), source));
        break;
      } catch (e) {
        if (attempt >= RECEIVE_ATTEMPTS || !transfer.isTransient?.(e)) throw e;
        ctx.events.warn(`pull ${ref.dot}: commit ${shortId(id)} failed (${(e as Error).message}); reading the stream again`);
        await sleep(500 * attempt);
      } finally {
        meter.end();
      }
    }
    got.push(record);
    prev = id;
  }
  return got;
}

/** Receives a new dot into staging with fn; on failure the staging goes (a full pool gets its space back) and a full pool is named. */
export async function intoStaging<T>(transfer: DotTransfer, staging: DotFsRef, fn: () => Promise<T>): Promise<T> {
  await transfer.discardStaging(staging.pool, staging.dot);
  try {
    return await spaceGuard(staging.pool.name, fn);
  } catch (e) {
    await transfer.discardStaging(staging.pool, staging.dot).catch(() => undefined);
    throw e;
  }
}

/** The pulled branch in place, and bound at the dot's mounts when it is the active one. */
async function ensureMounted(ctx: Context, h: DotHandle, branch: string): Promise<void> {
  if (h.dot.activeBranch === branch) await remount(ctx, h, h.dot.mounts);
  else await restoreBranchOf(ctx, h, branch);
}

/** Pulls REMOTE/DOT[@BRANCH]; shared by `dot pull` and `onboot --seed`. Never overwrites diverged local commits. */
export async function pullDot(ctx: Context, repo: DotRepo, req: PullRequest): Promise<PullResult> {
  const resolved = await resolveRemote(repo, 'REMOTE', req.remote, req.user ?? null);
  const remoteName = resolved.name;
  const remote = await openRemote(ctx, resolved);
  await remote.ensureReachable();
  const manifest = await remote.readManifest(req.dot);
  if (!manifest) {
    // A hub account given in the ref is pushed to as REMOTE/USER/NAME.
    const to = resolved.url.kind === 'hub' && resolved.url.user && remoteName !== resolved.recorded ? `${remoteName}/${req.dot}` : remoteName;
    throw new NotFoundError(`remote ${remoteName} has no dot ${req.dot}`, { hint: `push it there first: ${knarrCommand('dot', 'push', req.dot, to)}` });
  }
  // What a remote says becomes paths and records here: it is checked as any input is.
  checkManifestNames(manifest, req.dot, remoteName);
  const branch = req.branch ?? DEFAULT_BRANCH;
  const remoteChain = manifest.branches[branch]?.commits;
  if (!remoteChain || remoteChain.length === 0) {
    throw new NotFoundError(`remote ${remoteName} has no branch ${branch} of ${req.dot}`, {
      hint: `it has: ${Object.keys(manifest.branches).join(', ') || 'nothing'}`,
    });
  }
  const localName = req.as ?? req.dot;
  const existing = await repo.get(localName);
  const pool: PoolRecord = existing ? (await dotHandle(ctx, existing)).pool : await selectPool(ctx, req.pool);
  const transfer = ctx.drivers[pool.driver].transfer(ctx.runner);
  if (manifest.format !== transfer.format) {
    throw new ConflictError(`remote ${remoteName} holds ${req.dot} as ${manifest.format} streams; pool ${pool.name} is ${pool.driver} (${transfer.format})`, {
      hint: 'pull it onto a pool of the same kind (--pool)',
    });
  }
  const head = remoteChain[remoteChain.length - 1]!;
  const origin = { remote: remoteName, dot: req.dot, branch };

  if (!existing) {
    let got: CommitRecord[];
    if (await transfer.holdsPublished(pool, localName, branch, head)) {
      // Cut short after it published the dot (whole: publishing comes last), before its records: only those are written.
      ctx.events.warn(`${localName}: on pool ${pool.name} already, from a pull cut short; writing its records`);
      got = remoteChain.map((id) => localRecord(manifest.commits[id]!, localName, branch));
    } else {
      // Received into staging and published whole: an interrupted pull leaves no visible dot, and a re-run starts clean.
      const staging: DotFsRef = { pool, dot: localName, branch, staging: true };
      got = await intoStaging(transfer, staging, async () => {
        const received = await receiveChain(ctx, remote, manifest, transfer, staging, remoteChain, null);
        await transfer.settleBranch(staging, head);
        return received;
      });
      await transfer.publish(pool, localName);
    }
    for (const c of got) await repo.putCommit(c);
    const now = new Date().toISOString();
    const dot: DotRecord = {
      name: localName,
      pool: pool.name,
      subdots: [...manifest.subdots],
      branches: { [branch]: { head, from: null, createdAt: now } },
      activeBranch: branch,
      mounts: {},
      origin,
      createdAt: now,
    };
    if (!(await repo.create(dot))) throw new ConflictError(`dot ${localName} was created by another command during the pull`);
    // Publishing renames the dot's datasets, unmounting them for a moment: a re-run after a kill there finds them unmounted.
    await ensureMounted(ctx, await dotHandle(ctx, dot), branch);
    ctx.events.done();
    return { dot: localName, branch, action: 'pulled', received: got.map((c) => c.id), stash: null };
  }

  const h = await dotHandle(ctx, existing);
  const commits = await repo.commits(localName);
  const localChain = chain(commits, existing.branches[branch]?.head ?? null)
    .reverse()
    .map((c) => c.id);
  const plan = planTransfer(remoteChain, localChain);
  if (plan.kind === 'up-to-date') {
    // A pull cut short after its receive finds nothing to fetch: it still ends with the branch mounted where the records say.
    await ensureMounted(ctx, h, branch);
    return { dot: localName, branch, action: 'up-to-date', received: [], stash: null };
  }

  let stash: string | null = null;
  let base: string | null = plan.kind === 'send' ? plan.base : null;
  let toReceive = plan.kind === 'send' ? plan.commits : remoteChain;
  const branches = { ...existing.branches };
  const active = existing.activeBranch === branch;
  if (plan.kind === 'diverged' && !req.stashOnDivergence) {
    throw new ConflictError(
      `${localName}@${branch} has local commits the remote lacks (${plan.toOnly.map(shortId).join(', ')}); a pull never overwrites them`,
      {
        hint: 'push them, or keep them as a branch and pull with --stash-on-divergence',
      },
    );
  }
  if (active) await unmountSubdots(ctx, existing);
  let got: CommitRecord[] = [];
  let failed: unknown = null;
  try {
    // A branch with its own history takes the remote's whole line: received into staging first, the local branch untouched until it is complete.
    const staged = plan.kind === 'diverged' && transfer.perBranchHistory && transfer.publishBranch !== undefined;
    if (staged) {
      await transfer.discardStaging(h.pool, localName);
      const staging: DotFsRef = { pool: h.pool, dot: localName, branch, staging: true };
      got = await spaceGuard(pool.name, () => receiveChain(ctx, remote, manifest, transfer, staging, remoteChain, null));
      await spaceGuard(pool.name, () => transfer.settleBranch(staging, head));
    }
    if (plan.kind === 'diverged') {
      stash = `${branch}-stash-${Date.now().toString(36)}`;
      await transfer.renameBranch(h.ref(branch), stash);
      branches[stash] = { ...existing.branches[branch]! };
      for (const id of plan.toOnly) {
        const c = commits.get(id);
        if (c) await repo.putCommit({ ...c, branch: stash });
      }
      // The stash is recorded at once: a receive that fails after this leaves the local commits findable on it.
      await repo.update(localName, (cur) => ({ ...cur, branches: { ...cur.branches, [stash!]: branches[stash!]! } }));
      // A branch filesystem with its own history is rebuilt from the remote's first commit; shared commits need only the rest.
      if (!transfer.perBranchHistory) {
        base = plan.common;
        toReceive = plan.fromOnly;
      }
    }
    if (!staged) {
      got = await spaceGuard(pool.name, () => receiveChain(ctx, remote, manifest, transfer, h.ref(branch), toReceive, base));
      await spaceGuard(pool.name, () => transfer.settleBranch(h.ref(branch), head));
    }
    // Recorded before the mounts come back and a staged branch moves in: a kill after this leaves store and disk agreeing, or a branch fsck --repair rebuilds.
    for (const c of got) await repo.putCommit(c);
    // Compare-and-swap from the head the pull started on: a head another command moved is never overwritten.
    await repo.moveHead(localName, branch, existing.branches[branch]?.head ?? null, head, (cur) => ({ ...cur, origin: cur.origin ?? origin }));
    if (staged) await transfer.publishBranch!(h.pool, localName, branch);
  } catch (e) {
    failed = e;
  }
  // Mounted again whatever happened, from the records as they now are: a failed pull does not leave the dot's users on an empty directory.
  const now = await repo.get(localName);
  if (now) {
    try {
      await ensureMounted(ctx, await dotHandle(ctx, now), branch);
    } catch (e) {
      if (failed === null) throw e;
      ctx.events.warn(`${localName}: could not mount it again (${(e as Error).message}); run: knarr dot fsck --repair`);
    }
  }
  if (failed !== null) throw failed;
  ctx.events.done();
  return { dot: localName, branch, action: stash ? 'stashed-and-pulled' : 'fast-forward', received: got.map((c) => c.id), stash };
}

/** `knarr dot pull REMOTE/DOT[@BRANCH] [--as LOCAL] [--pool P] [--stash-on-divergence]`. */
export async function dotPull(
  source: string,
  opts: { as?: string | undefined; pool?: string | undefined; stashOnDivergence?: boolean },
  ctx: Context,
): Promise<CommandResult> {
  const ref = parseRemoteDotRef('REMOTE/DOT', source);
  const asName = opts.as;
  const req: PullRequest = {
    remote: ref.remote,
    user: ref.user,
    dot: ref.dot,
    branch: ref.branch,
    as: asName === undefined ? undefined : parseDotName('--as', asName),
    pool: opts.pool,
    stashOnDivergence: opts.stashOnDivergence ?? false,
  };
  return withDots(ctx, (repo) =>
    withDotLock(ctx, 'dot pull', [req.as ?? req.dot], async () => {
      const r = await pullDot(ctx, repo, req);
      if (r.action !== 'up-to-date')
        await repo.event(r.dot, 'pull', `${r.branch} from ${req.remote}, ${r.received.length} commit(s)${r.stash ? `, local commits on ${r.stash}` : ''}`);
      const lines = [
        r.action === 'up-to-date' ? `${r.dot}@${r.branch} is up to date` : `${r.action}: ${r.dot}@${r.branch}, ${r.received.length} commit(s)`,
        ...(r.stash ? [`local commits kept on branch ${r.stash}`] : []),
      ];
      return { data: r, view: { kind: 'lines', lines } };
    }),
  );
}
