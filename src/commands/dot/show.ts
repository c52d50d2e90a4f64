import { parseDotName } from '../../core/dots.js';
import type { CommandResult, Context } from '../types.js';
import { activeChain, boundAt, dotHandle, requireDot, shortId, subdotLabel, withDots } from './common.js';

/** `knarr dot show DOT`: branches, head, subdots, mounts and where its data lives. */
export const dotShow = (dotName: string, ctx: Context): Promise<CommandResult> =>
  withDots(ctx, async (repo) => {
    const dot = await requireDot(repo, parseDotName('DOT', dotName));
    const h = await dotHandle(ctx, dot);
    const commits = await activeChain(repo, dot);
    // The records say where it should be mounted; the kernel says whether it is.
    const mounted = Object.fromEntries(await Promise.all(Object.entries(dot.mounts).map(async ([s, t]) => [s, await boundAt(h, s, t)] as const)));
    const data = { ...dot, mounted, path: h.storage.branchPath(h.ref()), driver: h.pool.driver, commits: commits.length };
    return {
      data,
      view: {
        kind: 'fields',
        fields: [
          ['dot', dot.name],
          ['pool', `${dot.pool} (${h.pool.driver})`],
          ['branch', dot.activeBranch],
          ['branches', Object.keys(dot.branches).sort().join(', ')],
          ['head', shortId(dot.branches[dot.activeBranch]?.head ?? null)],
          ['commits', String(commits.length)],
          ['subdots', dot.subdots.map((s) => subdotLabel(dot.name, s)).join(', ')],
          [
            'mounts',
            Object.entries(dot.mounts)
              .map(([s, t]) => `${subdotLabel(dot.name, s)} at ${t}${mounted[s] ? '' : ' (NOT MOUNTED: knarr dot fsck --repair)'}`)
              .join(', ') || '-',
          ],
          ['origin', dot.origin ? JSON.stringify(dot.origin) : '-'],
          ['path', data.path],
        ],
      },
    };
  });
