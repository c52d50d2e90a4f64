import type { Writable } from 'node:stream';
import { chain, parseDotName, planTransfer, validateBranch } from '../../core/dots.js';
import { ConflictError, NotFoundError, UserError } from '../../core/errors.js';
import { emptyManifest, streamChecksum, type ManifestCommit } from '../../core/remote.js';
import { spaceGuardOf } from '../../host/storage/common.js';
import type { CommandResult, Context } from '../types.js';
import { dotHandle, requireDot, shortId, withDotLock, withDots } from './common.js';
import { openRemote, resolveRemote } from './remote.js';
import { knarrCommand } from '../../core/shell.js';

/** `knarr dot push DOT REMOTE [--branch B]`: send the commits the remote lacks, one stream each. */
export async function dotPush(dotName: string, remoteText: string, opts: { branch?: string | undefined }, ctx: Context): Promise<CommandResult> {
  const name = parseDotName('DOT', dotName);
  const branchOpt = opts.branch;
  return withDots(ctx, (repo) =>
    withDotLock(ctx, 'dot push', [name], async () => {
      const dot = await requireDot(repo, name);
      const branch = branchOpt === undefined ? dot.activeBranch : validateBranch('--branch', branchOpt);
      if (!dot.branches[branch]) throw new NotFoundError(`dot ${name} has no branch ${branch}`);
      const { name: remoteName, url } = await resolveRemote(repo, 'REMOTE', remoteText);
      const remote = openRemote(ctx, url);
      await remote.ensureReachable();
      const commits = await repo.commits(name);
      const local = chain(commits, dot.branches[branch]!.head).reverse();
      if (local.length === 0)
        throw new UserError(`branch ${branch} of ${name} has no commits to push`, { hint: `commit first: knarr dot commit ${name} -m MESSAGE` });

      const lockWait = { wait: !ctx.config.noWait, signal: ctx.signal, onWait: (m: string) => ctx.events.warn(m) };
      const locked = <T>(fn: () => Promise<T>) => (remote.withPushLock ? remote.withPushLock(name, lockWait, fn) : fn());
      // The manifest is read under the remote's lock: a push that waited sees what the other pushed, and never overwrites it.
      return locked(async () => {
        const h = await dotHandle(ctx, dot);
        const transfer = ctx.drivers[h.pool.driver].transfer(ctx.runner);
        const manifest = (await remote.readManifest(name)) ?? emptyManifest(name, transfer.format, dot.subdots);
        if (manifest.format !== transfer.format) {
          throw new ConflictError(
            `remote ${remoteName} holds ${name} as ${manifest.format} streams; this host keeps it on a ${h.pool.driver} pool (${transfer.format})`,
          );
        }
        const remoteChain = manifest.branches[branch]?.commits ?? [];
        const plan = planTransfer(
          local.map((c) => c.id),
          remoteChain,
        );
        if (plan.kind === 'diverged') {
          throw new ConflictError(`remote ${remoteName} has commits of ${name}@${branch} this host lacks (${plan.toOnly.map(shortId).join(', ')})`, {
            hint: `pull them first: ${knarrCommand('dot', 'pull', `${remoteName}/${name}@${branch}`, '--stash-on-divergence')}`,
          });
        }
        if (plan.kind === 'up-to-date') {
          return {
            data: { dot: name, remote: remoteName, branch, sent: [], action: 'up-to-date' },
            view: { kind: 'lines', lines: [`${remoteName} already has ${name}@${branch}`] },
          };
        }

        const sent: { id: string; bytes: number; incremental: boolean }[] = [];
        let base = plan.base;
        let onRemote = [...remoteChain];
        for (const id of plan.commits) {
          const record = commits.get(id)!;
          const streamBase = transfer.incremental && base ? { ref: h.ref(commits.get(base)!.branch), id: base } : null;
          let entry: ManifestCommit | undefined = manifest.commits[id];
          // A stored stream (file remote) is reused; a live remote gets every commit its branch lacks.
          if (!entry || !streamChecksum(entry)) {
            const release = await transfer.prepareSend?.(h.ref(record.branch), id, streamBase);
            try {
              const total = ctx.runner.dryRun ? undefined : await transfer.estimateBytes?.(h.ref(record.branch), id, streamBase);
              const meter = ctx.events.progress(`push ${name}: commit ${shortId(id)}${streamBase ? ' (incremental)' : ''}`, total);
              const argv = transfer.sendArgv(h.ref(record.branch), id, streamBase);
              const sender = { argv, produce: (out: Writable) => ctx.runner.pipe(argv, { stdout: out, mutates: false }), progress: meter.add };
              entry = await spaceGuardOf(`remote ${remoteName}`, 'remove what it holds that is not needed', () =>
                remote.putCommit(name, branch, record, streamBase?.id ?? null, transfer.format, sender),
              ).finally(meter.end);
            } finally {
              await release?.();
            }
            sent.push({ id, bytes: entry.bytes, incremental: streamBase !== null });
          }
          onRemote = [...onRemote, id];
          manifest.commits[id] = entry;
          manifest.branches[branch] = { commits: onRemote };
          manifest.subdots = [...new Set([...manifest.subdots, ...dot.subdots])].sort();
          // After every stream: an interrupted push resumes from here.
          await spaceGuardOf(`remote ${remoteName}`, 'remove what it holds that is not needed', () => remote.saveManifest(manifest));
          base = id;
        }
        ctx.events.done();
        await repo.event(name, 'push', `${branch} to ${remoteName}, ${sent.length} commit(s), at ${shortId(base)}`);
        return {
          data: { dot: name, remote: remoteName, branch, sent, action: 'pushed' },
          view: {
            kind: 'lines',
            lines: sent
              .map((s) => `sent ${shortId(s.id)} (${s.incremental ? 'incremental' : 'full'}, ${s.bytes} bytes)`)
              .concat(`${remoteName} has ${name}@${branch} at ${shortId(base)}`),
          },
        };
      });
    }),
  );
}
