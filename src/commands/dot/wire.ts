import { DEFAULT_BRANCH, chain, parseCommitRecordJson, parseDotName, validateBranch, COMMIT_ID_RE, type DotRecord } from '../../core/dots.js';
import { finished, pipeline } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import { ConflictError, NotFoundError, ValidationError } from '../../core/errors.js';
import type { Manifest } from '../../core/remote.js';
import { spaceGuard } from '../../host/storage/common.js';
import { SealUnframer, sealOutput } from '../../host/stream-seal.js';
import { selectPool } from '../pool/select.js';
import { intoStaging } from './pull.js';
import type { CommandResult, Context } from '../types.js';
import { dotHandle, remount, requireDot, shortId, unmountSubdots, withDotLock, withDots } from './common.js';

/*
 * The wire commands one knarr runs on another over ssh: `dot manifest` says what a dot holds,
 * `dot send` writes one commit's stream to stdout, `dot receive` applies one from stdin.
 */

/** `knarr dot manifest DOT`: branches and commits, in the shape of a remote's manifest. */
export async function dotManifest(dotName: string, ctx: Context): Promise<CommandResult> {
  const name = parseDotName('DOT', dotName);
  return withDots(ctx, async (repo) => {
    const dot = await requireDot(repo, name);
    const h = await dotHandle(ctx, dot);
    const transfer = ctx.drivers[h.pool.driver].transfer(ctx.runner);
    const commits = await repo.commits(name);
    const manifest: Manifest = {
      version: 1,
      dot: name,
      format: transfer.format,
      subdots: dot.subdots,
      branches: {},
      commits: {},
      updatedAt: new Date().toISOString(),
    };
    for (const [b, br] of Object.entries(dot.branches)) {
      const line = chain(commits, br.head).reverse();
      manifest.branches[b] = { commits: line.map((c) => c.id) };
      for (const c of line) manifest.commits[c.id] ??= { record: c, base: transfer.incremental ? c.parent : null, file: c.id, bytes: 0, sha256: '' };
    }
    return { data: manifest };
  });
}

/** `knarr dot send DOT COMMIT [--base B]`: the commit's stream on stdout (incremental from B). */
export async function dotSend(dotName: string, id: string, opts: { base?: string | undefined; sealed?: boolean }, ctx: Context): Promise<CommandResult> {
  const name = parseDotName('DOT', dotName);
  const baseId = opts.base;
  for (const [field, v] of [
    ['COMMIT', id],
    ['--base', baseId],
  ] as const) {
    if (v !== undefined && !COMMIT_ID_RE.test(v)) throw new ValidationError(field, `${JSON.stringify(v)} is not a commit id`);
  }
  return withDots(ctx, async (repo) => {
    const dot = await requireDot(repo, name);
    const commits = await repo.commits(name);
    const record = commits.get(id);
    if (!record) throw new NotFoundError(`${name} has no commit ${id}`);
    const base = baseId === undefined ? null : commits.get(baseId);
    if (base === undefined) throw new NotFoundError(`${name} has no commit ${baseId}`);
    const h = await dotHandle(ctx, dot);
    const transfer = ctx.drivers[h.pool.driver].transfer(ctx.runner);
    const from = base && transfer.incremental ? { ref: h.ref(base.branch), id: base.id } : null;
    const argv = transfer.sendArgv(h.ref(record.branch), id, from);
    const send = async (out: Writable) => {
      const release = await transfer.prepareSend?.(h.ref(record.branch), id, from);
      try {
        await ctx.runner.pipe(argv, { stdout: out, mutates: false });
      } finally {
        await release?.();
      }
    };
    if (!opts.sealed) return { data: { dot: name, commit: id, argv }, stream: send };
    return {
      data: { dot: name, commit: id, argv, sealed: true },
      stream: async (out) => {
        // Sealed only once the sender succeeded: a failed send leaves a stream the receiver refuses.
        const { framed, sealed } = sealOutput(send);
        await Promise.all([sealed, pipeline(framed, out)]);
      },
    };
  });
}

/** `knarr dot receive DOT --branch B --record JSON [--base B]`: applies one commit's stream from stdin, fast-forward only. */
export async function dotReceive(
  dotName: string,
  opts: { record?: string | undefined; branch?: string | undefined; base?: string | undefined; pool?: string | undefined; sealed?: boolean },
  ctx: Context,
): Promise<CommandResult> {
  const name = parseDotName('DOT', dotName);
  const branch = validateBranch('--branch', opts.branch ?? DEFAULT_BRANCH);
  const record = parseCommitRecordJson('--record', opts.record, name, branch);
  const base = opts.base ?? null;
  if (base !== null && !COMMIT_ID_RE.test(base)) throw new ValidationError('--base', `${JSON.stringify(base)} is not a commit id`);
  return withDots(ctx, (repo) =>
    withDotLock(ctx, 'dot receive', [name], async () => {
      const existing = await repo.get(name);
      // A sealed stream is checked while it passes, its end held back until its sender's size and checksum match.
      const unsealed = opts.sealed ? new SealUnframer(`stream of commit ${record.id} of ${name}`, 'push it again') : null;
      let input = ctx.stdin;
      if (unsealed) {
        pipeline(ctx.stdin, unsealed).catch(() => undefined);
        unsealed.on('error', () => undefined);
        input = unsealed;
      }
      const refused = (e: unknown) => unsealed?.failure ?? e;
      if (!existing) {
        if (record.parent !== null) throw new ConflictError(`${name} does not exist here; its first commit has to come first`);
        const pool = await selectPool(ctx, opts.pool);
        const transfer = ctx.drivers[pool.driver].transfer(ctx.runner);
        if (await transfer.holdsPublished(pool, name, branch, record.id)) {
          // Cut short after it published the dot (whole: publishing comes after the stream is checked and its record written): only the dot's record is left.
          ctx.events.warn(`${name}: on pool ${pool.name} already, from a receive cut short; writing its records`);
          await finished(input.resume()).catch((e: unknown) => Promise.reject(refused(e)));
          await repo.putCommit(record);
        } else {
          const staging = { pool, dot: name, branch, staging: true };
          await intoStaging(transfer, staging, async () => {
            await transfer.receive(staging, record, base, input, 'stdin');
            await transfer.settleBranch(staging, record.id);
          }).catch((e: unknown) => Promise.reject(refused(e)));
          // The commit's record before the dot is visible: a kill after publishing leaves a dot whose records a re-run completes.
          await repo.putCommit(record);
          await transfer.publish(pool, name);
        }
        const now = new Date().toISOString();
        const dot: DotRecord = {
          name,
          pool: pool.name,
          subdots: ['__default__'],
          branches: { [branch]: { head: record.id, from: null, createdAt: now } },
          activeBranch: branch,
          mounts: {},
          origin: null,
          createdAt: now,
        };
        const h = await dotHandle(ctx, dot);
        const subdirs = await h.storage.listSubdirs(h.ref());
        if (subdirs.length > 0) dot.subdots = subdirs;
        if (!(await repo.create(dot))) throw new ConflictError(`dot ${name} was created by another command meanwhile`);
        return { data: { dot: name, branch, commit: record.id, action: 'created' } };
      }
      const head = existing.branches[branch]?.head ?? null;
      if (head === record.id) {
        // A receive killed after it recorded the commit, run again: nothing is left to do but read the stream.
        await finished(input.resume()).catch((e: unknown) => Promise.reject(refused(e)));
        return { data: { dot: name, branch, commit: record.id, action: 'up-to-date' } };
      }
      if (head !== record.parent) {
        throw new ConflictError(`${name}@${branch} here is at ${shortId(head)}, but the commit sent follows ${shortId(record.parent)}`, {
          hint: 'pull from this host first, then push again',
        });
      }
      const h = await dotHandle(ctx, existing);
      const transfer = ctx.drivers[h.pool.driver].transfer(ctx.runner);
      const active = existing.activeBranch === branch;
      const mounted = active ? { ...existing.mounts } : {};
      if (active) await unmountSubdots(ctx, existing);
      try {
        await spaceGuard(h.pool.name, async () => {
          await transfer.receive(h.ref(branch), record, base, input, 'stdin');
          await transfer.settleBranch(h.ref(branch), record.id);
        });
      } catch (e) {
        throw refused(e);
      } finally {
        if (active) await remount(ctx, h, mounted);
      }
      await repo.putCommit(record);
      await repo.moveHead(name, branch, head, record.id);
      return { data: { dot: name, branch, commit: record.id, action: 'fast-forward' } };
    }),
  );
}
