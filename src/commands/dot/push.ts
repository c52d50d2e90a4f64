import type { Writable } from 'node:stream';
import { chain, parseDotName, parsePushTarget, planTransfer, validateBranch } from '../../core/dots.js';
import { ConflictError, NotFoundError, UserError } from '../../core/errors.js';
import { emptyManifest, streamChecksum, type ManifestCommit } from '../../core/remote.js';
import { spaceGuardOf } from '../../host/storage/common.js';
import type { CommandResult, Context } from '../types.js';
import { dotHandle, requireDot, shortId, withDotLock, withDots } from './common.js';
import { openRemote, resolveRemote } from './remote.js';
import { knarrCommand } from '../../core/shell.js';

/** `knarr dot push DOT REMOTE[/USER/NAME] [--branch B] [--private]`: send the commits the remote lacks, one stream each. */
export async function dotPush(
  dotName: string,
  remoteText: string,
  opts: { branch?: string | undefined; private?: boolean },
  ctx: Context,
): Promise<CommandResult> {
  const name = parseDotName('DOT', dotName);
  const target = parsePushTarget('REMOTE', remoteText);
  // The name the dot has there: a hub's REMOTE/USER/NAME may give it another.
  const there = target.dot ?? name;
  const asLocal = there !== name ? ['--as', name] : [];
  const branchOpt = opts.branch;
  return withDots(ctx, (repo) =>
    withDotLock(ctx, 'dot push', [name], async () => {
      const dot = await requireDot(repo, name);
      const branch = branchOpt === undefined ? dot.activeBranch : validateBranch('--branch', branchOpt);
      if (!dot.branches[branch]) throw new NotFoundError(`dot ${name} has no branch ${branch}`);
      const resolved = await resolveRemote(repo, 'REMOTE', target.remote, target.user);
      const remote = await openRemote(ctx, resolved, { private: opts.private ?? false });
      await remote.ensureReachable();
      const remoteName = resolved.name;
      const commits = await repo.commits(name);
      const local = chain(commits, dot.branches[branch]!.head).reverse();
      if (local.length === 0)
        throw new UserError(`branch ${branch} of ${name} has no commits to push`, { hint: `commit first: knarr dot commit ${name} -m MESSAGE` });

      const lockWait = { wait: !ctx.config.noWait, signal: ctx.signal, onWait: (m: string) => ctx.events.warn(m) };
      const locked = <T>(fn: () => Promise<T>) => (remote.withPushLock ? remote.withPushLock(there, lockWait, fn) : fn());
      // The manifest is read under the remote's lock: a push that waited sees what the other pushed, and never overwrites it.
      return locked(async () => {
        const h = await dotHandle(ctx, dot);
        const transfer = ctx.drivers[h.pool.driver].transfer(ctx.runner);
        const found = await remote.readManifest(there);
        if (found && opts.private) ctx.events.warn(`${remote.url} has ${there} already: --private only marks a dot a push creates`);
        const manifest = found ?? emptyManifest(there, transfer.format, dot.subdots);
        if (manifest.format !== transfer.format) {
          throw new ConflictError(
            `remote ${remoteName} holds ${there} as ${manifest.format} streams; this host keeps it on a ${h.pool.driver} pool (${transfer.format})`,
          );
        }
        const remoteChain = manifest.branches[branch]?.commits ?? [];
        const plan = planTransfer(
          local.map((c) => c.id),
          remoteChain,
        );
        if (plan.kind === 'diverged') {
          throw new ConflictError(`remote ${remoteName} has commits of ${there}@${branch} this host lacks (${plan.toOnly.map(shortId).join(', ')})`, {
            hint: `pull them first: ${knarrCommand('dot', 'pull', `${remoteName}/${there}@${branch}`, ...asLocal, '--stash-on-divergence')}`,
          });
        }
        if (plan.kind === 'up-to-date') {
          return {
            data: { dot: name, remote: remoteName, remoteDot: there, branch, sent: [], action: 'up-to-date' },
            view: { kind: 'lines', lines: [`${remoteName} already has ${there}@${branch}`] },
          };
        }

        const sent: { id: string; bytes: number; incremental: boolean; resumedFrom?: number }[] = [];
        let base = plan.base;
        let onRemote = [...remoteChain];
        for (const id of plan.commits) {
          const record = commits.get(id)!;
          const streamBase = transfer.incremental && base ? { ref: h.ref(commits.get(base)!.branch), id: base } : null;
          let entry: ManifestCommit | undefined = manifest.commits[id];
          // A stored stream (file remote) is reused; a live remote gets every commit its branch lacks.
          if (!entry || !streamChecksum(entry)) {
            const total = ctx.runner.dryRun ? undefined : await transfer.estimateBytes?.(h.ref(record.branch), id, streamBase);
            const meter = ctx.events.progress(`push ${name}: commit ${shortId(id)}${streamBase ? ' (incremental)' : ''}`, total);
            const argv = transfer.sendArgv(h.ref(record.branch), id, streamBase);
            const sender = { argv, produce: (out: Writable) => ctx.runner.pipe(argv, { stdout: out, mutates: false }), progress: meter.add };
            entry = await spaceGuardOf(`remote ${remoteName}`, 'remove what it holds that is not needed', () =>
              remote.putCommit(there, branch, there === name ? record : { ...record, dot: there }, streamBase?.id ?? null, transfer.format, sender),
            ).finally(meter.end);
            const resumedFrom = remote.resumedFrom?.(id) ?? 0;
            sent.push({ id, bytes: entry.bytes, incremental: streamBase !== null, ...(resumedFrom > 0 ? { resumedFrom } : {}) });
          }
          onRemote = [...onRemote, id];
          manifest.commits[id] = entry;
          manifest.branches[branch] = { commits: onRemote };
          manifest.subdots = [...new Set([...manifest.subdots, ...dot.subdots])].sort();
          // After every stream: an interrupted push resumes from here.
          await spaceGuardOf(`remote ${remoteName}`, 'remove what it holds that is not needed', () => remote.saveManifest(manifest));
          // A save that met another push's landing merged it in: what follows must still go on top of this commit.
          const landed = manifest.branches[branch]?.commits ?? [];
          if (landed[landed.length - 1] !== id)
            throw new ConflictError(`another push moved ${there}@${branch} on ${remoteName} past ${shortId(id)} while this one ran`, {
              hint: `pull it, then push again: ${knarrCommand('dot', 'pull', `${remoteName}/${there}@${branch}`, ...asLocal)}`,
            });
          onRemote = landed;
          base = id;
        }
        ctx.events.done();
        await repo.event(name, 'push', `${branch} to ${remoteName}, ${sent.length} commit(s), at ${shortId(base)}`);
        return {
          data: { dot: name, remote: remoteName, remoteDot: there, branch, sent, action: 'pushed' },
          view: {
            kind: 'lines',
            lines: sent
              .map(
                (s) =>
                  `sent ${shortId(s.id)} (${s.incremental ? 'incremental' : 'full'}, ${s.bytes} ` +
                  `bytes${s.resumedFrom ? `, ${s.resumedFrom} of them held from before` : ''})`,
              )
              .concat(`${remoteName} has ${there}@${branch} at ${shortId(base)}`),
          },
        };
      });
    }),
  );
}
