import { resolve } from 'node:path';
import { parseDotRef, subdotDir, validateBranch } from '../../core/dots.js';
import { ConflictError, NotFoundError, ValidationError } from '../../core/errors.js';
import { validatePath } from '../../core/names.js';
import { entriesOf, mountAt, pathKind } from '../../host/mounts.js';
import type { CommandResult, Context } from '../types.js';
import { switchBranch } from './checkout.js';
import { refuseUncommitted } from './status.js';
import { dotHandle, mountSubdot, requireDot, subdotLabel, unmountSubdots, withDotLock, withDots } from './common.js';

/** `knarr dot mount DOT[.SUBDOT] PATH [--branch B]`: bind-mount a subdot; idempotent. */
export async function dotMount(dotText: string, path: string, opts: { branch?: string | undefined; force?: boolean }, ctx: Context): Promise<CommandResult> {
  const ref = parseDotRef('DOT', dotText);
  const target = validatePath('PATH', resolve(ctx.cwd, path));
  const branchOpt = opts.branch;
  const branch = branchOpt === undefined ? undefined : validateBranch('--branch', branchOpt);
  const force = opts.force ?? false;
  const sub = subdotDir(ref.subdot);
  return withDots(ctx, (repo) =>
    withDotLock(ctx, 'dot mount', [ref.dot], async () => {
      let dot = await requireDot(repo, ref.dot);
      if (!dot.subdots.includes(sub))
        throw new NotFoundError(`dot ${ref.dot} has no subdot ${ref.subdot}`, { hint: `make it with: knarr dot init ${dotText}` });
      const elsewhere = dot.mounts[sub];
      if (elsewhere && elsewhere !== target && (await mountAt(elsewhere))) {
        throw new ConflictError(`${subdotLabel(dot.name, sub)} is already mounted at ${elsewhere}`, { hint: `unmount it first: knarr dot unmount ${dotText}` });
      }
      const current = await mountAt(target);
      if (current && dot.mounts[sub] !== target) throw new ConflictError(`${target} already has ${current.source} mounted on it`);
      if ((await pathKind(target)) === 'other')
        throw new ValidationError('PATH', `${target} is not a directory: a dot is mounted onto a directory`, {
          hint: 'give a directory; a missing one is made',
        });
      const own = current || force ? [] : await entriesOf(target);
      if (own.length > 0) {
        // As zfs refuses to mount over a non-empty directory: what is there would be hidden, and look lost.
        throw new ConflictError(
          `${target} is not empty (${own.slice(0, 3).join(', ')}${own.length > 3 ? ', ...' : ''}): mounting ${dotText} there would hide what it holds`,
          {
            hint:
              dot.mounts[sub] === target
                ? 'these were written while the dot was not mounted there: move them away, then mount it again'
                : 'empty it, choose another path, or pass --force to mount over it',
          },
        );
      }
      if (branch !== undefined && branch !== dot.activeBranch && dot.branches[branch] && !force)
        await refuseUncommitted(ctx, repo, dot, `they stay on ${dot.activeBranch}, out of sight, while ${branch} is mounted`);
      if (branch !== undefined) dot = await switchBranch(ctx, repo, dot, branch);
      const h = await dotHandle(ctx, dot);
      const action = await mountSubdot(ctx, h, sub, target, force);
      await repo.update(dot.name, (cur) => ({ ...cur, mounts: { ...cur.mounts, [sub]: target } }));
      return {
        data: { dot: dot.name, subdot: sub, branch: dot.activeBranch, path: target, action },
        view: { kind: 'lines', lines: [`${dotText} (${dot.activeBranch}) ${action === 'exists' ? 'is mounted' : 'mounted'} at ${target}`] },
      };
    }),
  );
}

/** `knarr dot unmount DOT[.SUBDOT]`: a bare DOT unmounts all its subdots; idempotent. */
export async function dotUnmount(dotText: string, ctx: Context): Promise<CommandResult> {
  const ref = parseDotRef('DOT', dotText);
  return withDots(ctx, (repo) =>
    withDotLock(ctx, 'dot unmount', [ref.dot], async () => {
      const dot = await requireDot(repo, ref.dot);
      const subs = ref.subdot === null ? Object.keys(dot.mounts) : [ref.subdot];
      const targets = await unmountSubdots(ctx, dot, subs);
      await repo.update(dot.name, (cur) => {
        const mounts = { ...cur.mounts };
        for (const s of subs) delete mounts[s];
        return { ...cur, mounts };
      });
      return {
        data: { dot: dot.name, unmounted: targets },
        view: { kind: 'lines', lines: targets.length ? targets.map((t) => `unmounted ${t}`) : ['nothing was mounted'] },
      };
    }),
  );
}
