import { parseDotName, validateBranch } from '../../core/dots.js';
import { NotFoundError } from '../../core/errors.js';
import { timeCell, type CommandResult, type Context } from '../types.js';
import { fullLog, requireDot, withDots } from './common.js';

/** `knarr dot log DOT [--branch B]`: commits, newest first. */
export const dotLog = (dotName: string, opts: { branch?: string | undefined }, ctx: Context): Promise<CommandResult> =>
  withDots(ctx, async (repo) => {
    const dot = await requireDot(repo, parseDotName('DOT', dotName));
    const branchOpt = opts.branch;
    const branch = branchOpt === undefined ? dot.activeBranch : validateBranch('--branch', branchOpt);
    if (!dot.branches[branch]) throw new NotFoundError(`dot ${dot.name} has no branch ${branch}`, { hint: `list them with: knarr dot branch ${dot.name}` });
    const commits = await fullLog(repo, dot, dot.branches[branch]!.head);
    // A clone's log goes on into the dot it came from: each commit says whose it is.
    const spansDots = commits.some((c) => c.dot !== dot.name);
    return {
      data: commits,
      view: {
        kind: 'table',
        columns: ['COMMIT', 'TIME', 'AUTHOR', ...(spansDots ? ['DOT'] : []), 'MESSAGE'],
        rows: commits.map((c) => [c.id, timeCell(c.time), c.author, ...(spansDots ? [c.dot] : []), c.message.split('\n')[0]!]),
      },
    };
  });
