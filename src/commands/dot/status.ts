import { chain, parseDotName, resolveCommit, type CommitRecord, type DotRecord } from '../../core/dots.js';
import { ConflictError, NotFoundError } from '../../core/errors.js';
import type { CommitTree } from '../../host/storage/driver.js';
import { diffTrees, type ChangeKind, type EntryType } from '../../host/tree-diff.js';
import type { DotRepo } from '../../state/dots.js';
import type { CommandResult, Context } from '../types.js';
import { dotHandle, fullLog, requireDot, shortId, subdotLabel, withDots, type DotHandle } from './common.js';

/** One path that differs, in a subdot (DOT or DOT.SUBDOT). */
export interface DotChange {
  subdot: string;
  path: string;
  change: ChangeKind;
  type: EntryType;
}

/** Either side of a comparison: a commit, or the active branch as it is now (null). */
type Side = CommitRecord | null;

async function openSide(h: DotHandle, c: CommitRecord): Promise<CommitTree> {
  try {
    return await h.storage.openCommit(h.pool, c.dot, c.id);
  } catch (e) {
    // A clone's first commit came from a dot that is gone: its snapshot went to the clone.
    if (e instanceof NotFoundError && c.dot !== h.dot.name) return h.storage.openCommit(h.pool, h.dot.name, c.id);
    throw e;
  }
}

/**
 * What differs from `from` (null: nothing yet) to `to` (null: the active branch's files now), subdot by subdot.
 * descends: `to` went on from `from` on this host, so files not written since `from` was taken are not read.
 */
export async function dotChanges(h: DotHandle, from: CommitRecord | null, to: Side, descends: boolean): Promise<DotChange[]> {
  if (to === null) {
    const state = await h.storage.branchState(h.ref());
    if (state !== 'ready')
      throw new ConflictError(`branch ${h.dot.activeBranch} of ${h.dot.name} is ${state === 'missing' ? 'gone' : 'not mounted'}`, {
        hint: 'check and mend it with: knarr dot fsck --repair',
      });
  }
  const opened: CommitTree[] = [];
  try {
    const root = async (side: Side): Promise<string> => {
      if (side === null) return h.storage.branchPath(h.ref());
      const t = await openSide(h, side);
      opened.push(t);
      return t.path;
    };
    const a = from === null ? null : await root(from);
    const b = await root(to);
    const times = [from, to].filter((c): c is CommitRecord => c !== null).map((c) => Date.parse(c.time));
    // Both commits' times were taken before their snapshots; an unreadable one means no shortcut.
    const takenAtNs = times.length === 0 || times.some((t) => !Number.isFinite(t)) ? 0n : BigInt(Math.min(...times)) * 1_000_000n;
    const out: DotChange[] = [];
    // Only the subdot folders hold the dot's data (a filesystem's lost+found beside them is none of it).
    for (const sub of [...h.dot.subdots].sort()) {
      const changes = await diffTrees(a === null ? null : `${a}/${sub}`, `${b}/${sub}`, { descends, takenAtNs });
      for (const c of changes) out.push({ subdot: subdotLabel(h.dot.name, sub), ...c });
    }
    return out;
  } finally {
    for (const t of opened.reverse()) await t.close();
  }
}

/** The commit the active branch's files started from: its head, else a clone's origin commit, else none. */
export async function baseCommit(repo: DotRepo, dot: DotRecord): Promise<CommitRecord | null> {
  return (await fullLog(repo, dot, dot.branches[dot.activeBranch]?.head ?? null))[0] ?? null;
}

/** "3 paths: a/x, b/y, ..." naming the first few. */
export function namePaths(changes: DotChange[], first = 5): string {
  const shown = changes.slice(0, first).map((c) => `${c.subdot}:${c.path}`);
  return `${changes.length} path(s): ${shown.join(', ')}${changes.length > first ? ', ...' : ''}`;
}

/** Refuses (ConflictError) while the active branch holds uncommitted changes that `what` would drop or leave behind. */
export async function refuseUncommitted(ctx: Context, repo: DotRepo, dot: DotRecord, what: string): Promise<void> {
  const h = await dotHandle(ctx, dot);
  // A branch that is gone or unmounted shows nothing to compare; the command puts it back (a reset rebuilds it) as before.
  if ((await h.storage.branchState(h.ref())) !== 'ready') return;
  const changes = await dotChanges(h, await baseCommit(repo, dot), null, true);
  if (changes.length === 0) return;
  throw new ConflictError(`${dot.name} has uncommitted changes on branch ${dot.activeBranch} (${namePaths(changes)}); ${what}`, {
    hint: `commit them first (knarr dot commit ${dot.name} -m MESSAGE), see them with: knarr dot status ${dot.name}, or pass --force`,
  });
}

const MARK: Record<ChangeKind, string> = { added: 'added  ', changed: 'changed', removed: 'removed' };

function counts(changes: DotChange[]): Record<ChangeKind, number> {
  const n = { added: 0, changed: 0, removed: 0 };
  for (const c of changes) n[c.change]++;
  return n;
}

/** The changes grouped by subdot: {subdot: {added: [paths], changed: [...], removed: [...]}}. */
function bySubdot(changes: DotChange[]): Record<string, Record<ChangeKind, string[]>> {
  const out: Record<string, Record<ChangeKind, string[]>> = {};
  for (const c of changes) (out[c.subdot] ??= { added: [], changed: [], removed: [] })[c.change].push(c.path);
  return out;
}

function changeLines(changes: DotChange[]): string[] {
  return changes.map((c) => `  ${MARK[c.change]}  ${c.subdot}: ${c.path}${c.type === 'dir' ? '/' : ''}`);
}

function summary(changes: DotChange[]): string {
  const n = counts(changes);
  return `${n.added} added, ${n.changed} changed, ${n.removed} removed`;
}

/** `knarr dot status DOT`: uncommitted changes of the active branch against its head commit. */
export const dotStatus = (dotName: string, ctx: Context): Promise<CommandResult> =>
  withDots(ctx, async (repo) => {
    const dot = await requireDot(repo, parseDotName('DOT', dotName));
    const base = await baseCommit(repo, dot);
    const changes = await dotChanges(await dotHandle(ctx, dot), base, null, true);
    const where = `${dot.name} on ${dot.activeBranch}, ${base ? `since ${shortId(base.id)}` : 'no commit yet'}`;
    return {
      data: {
        dot: dot.name,
        branch: dot.activeBranch,
        head: dot.branches[dot.activeBranch]?.head ?? null,
        base: base?.id ?? null,
        clean: changes.length === 0,
        ...counts(changes),
        subdots: bySubdot(changes),
        changes,
      },
      view: {
        kind: 'lines',
        lines: changes.length === 0 ? [`${where}: nothing to commit`] : [`${where}: ${summary(changes)}`, ...changeLines(changes)],
      },
    };
  });

/** `knarr dot diff DOT [C1] [C2]`: the head against the files now, C1 against the files now, or C1 against C2. */
export const dotDiff = (dotName: string, c1: string | undefined, c2: string | undefined, ctx: Context): Promise<CommandResult> =>
  withDots(ctx, async (repo) => {
    const dot = await requireDot(repo, parseDotName('DOT', dotName));
    const h = await dotHandle(ctx, dot);
    const own = await repo.commits(dot.name);
    const log = await fullLog(repo, dot, dot.branches[dot.activeBranch]?.head ?? null);
    // Any commit of the dot (any branch), or one its log goes back to.
    const candidates = [...new Map([...log, ...own.values()].map((c) => [c.id, c])).values()];
    const from = c1 === undefined ? (log[0] ?? null) : resolveCommit('C1', candidates, c1);
    const to = c2 === undefined ? null : resolveCommit('C2', candidates, c2);
    const ancestors = (c: CommitRecord | null) => (c === null ? log : chain(new Map([...log, ...own.values()].map((x) => [x.id, x])), c.id));
    const descends = from !== null && ancestors(to).some((c) => c.id === from.id);
    const changes = await dotChanges(h, from, to, descends);
    const label = (c: CommitRecord | null, now: string) => (c === null ? now : shortId(c.id));
    const title = `${dot.name}: ${label(from, 'nothing')} -> ${label(to, `${dot.activeBranch} now`)}`;
    return {
      data: { dot: dot.name, from: from?.id ?? null, to: to?.id ?? null, ...counts(changes), subdots: bySubdot(changes), changes },
      view: {
        kind: 'lines',
        lines: changes.length === 0 ? [`${title}: no changes`] : [`${title}: ${summary(changes)}`, ...changeLines(changes)],
      },
    };
  });
