import { parseDotName, type DotRecord } from '../../core/dots.js';
import { timeCell, type CommandResult, type Context, type View } from '../types.js';
import { activeChain, boundAt, dotHandle, fullLog, requireDot, shortId, subdotLabel, withDots } from './common.js';
import { dotSummary } from './list.js';

/** `knarr dot show DOT`: branches, head, subdots, mounts and where its data lives. */
export const dotShow = (dotName: string, ctx: Context): Promise<CommandResult> =>
  withDots(ctx, async (repo) => {
    const dot = await requireDot(repo, parseDotName('DOT', dotName));
    const h = await dotHandle(ctx, dot);
    const commits = await activeChain(repo, dot);
    const log = await fullLog(repo, dot, dot.branches[dot.activeBranch]?.head ?? null);
    // The records say where it should be mounted; the kernel says whether it is.
    const mounted = Object.fromEntries(await Promise.all(Object.entries(dot.mounts).map(async ([s, t]) => [s, await boundAt(h, s, t)] as const)));
    const data = {
      ...dotSummary(dot),
      branches: dot.branches,
      mounted,
      path: h.storage.branchPath(h.ref()),
      driver: h.pool.driver,
      commits: commits.length,
    };
    return { data, view: dotView(dot, { ...data, inherited: log.length - commits.length }) };
  });

/** Where a dot came from, in words: "alice@1a2b3c4d5e6f" or "branch main of origin/alice at 1a2b3c4d5e6f". */
export function originText(origin: DotRecord['origin']): string {
  if (!origin) return '-';
  const where = origin.remote ? `${origin.remote}/${origin.dot ?? '?'}` : (origin.dot ?? '?');
  const branch = origin.branch ? `branch ${origin.branch} of ` : '';
  return `${branch}${where}${origin.commit ? ` at ${shortId(origin.commit)}` : ''}`;
}

/** What `dot show` prints: one field a line. */
function dotView(dot: DotRecord, d: { mounted: Record<string, boolean>; path: string; driver: string; commits: number; inherited: number }): View {
  return {
    kind: 'fields',
    fields: [
      ['dot', dot.name],
      ['pool', `${dot.pool} (${d.driver})`],
      ['branch', dot.activeBranch],
      ['branches', Object.keys(dot.branches).sort().join(', ')],
      ['head', shortId(dot.branches[dot.activeBranch]?.head ?? null)],
      ['commits', `${d.commits}${d.inherited > 0 ? ` (and ${d.inherited} before it, of ${dot.origin?.dot ?? 'its origin'})` : ''}`],
      ['subdots', dot.subdots.map((s) => subdotLabel(dot.name, s)).join(', ')],
      [
        'mounts',
        Object.entries(dot.mounts)
          .map(([s, t]) => `${subdotLabel(dot.name, s)} at ${t}${d.mounted[s] ? '' : ' (NOT MOUNTED: knarr dot fsck --repair)'}`)
          .join(', ') || '-',
      ],
      ['origin', originText(dot.origin)],
      ['created', timeCell(dot.createdAt)],
      ['path', d.path],
    ],
  };
}
