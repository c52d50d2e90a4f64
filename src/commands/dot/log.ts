import { parseDotName, validateBranch } from '../../core/dots.js';
import { NotFoundError } from '../../core/errors.js';
import { timeCell, type CommandResult, type Context } from '../types.js';
import { activeChain, requireDot, withDots } from './common.js';

/** `knarr dot log DOT [--branch B]`: commits, newest first. */
export const dotLog = (dotName: string, opts: { branch?: string | undefined }, ctx: Context): Promise<CommandResult> =>
  withDots(ctx, async (repo) => {
    const dot = await requireDot(repo, parseDotName('DOT', dotName));
    const branchOpt = opts.branch;
    const branch = branchOpt === undefined ? dot.activeBranch : validateBranch('--branch', branchOpt);
    if (!dot.branches[branch]) throw new NotFoundError(`dot ${dot.name} has no branch ${branch}`, { hint: `list them with: knarr dot branch ${dot.name}` });
    const commits = await activeChain(repo, dot, branch);
    return {
      data: commits,
      view: {
        kind: 'table',
        columns: ['COMMIT', 'TIME', 'AUTHOR', 'MESSAGE'],
        rows: commits.map((c) => [c.id, timeCell(c.time), c.author, c.message.split('\n')[0]!]),
      },
    };
  });
