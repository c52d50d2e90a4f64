import { checkDot, type DiskDot, type Finding } from '../../core/fsck.js';
import { ExitCode, isKnarrError } from '../../core/errors.js';
import { listPoolRecords } from '../../host/local-state.js';
import type { DotRepo } from '../../state/dots.js';
import type { CommandResult, Context } from '../types.js';
import { poolTransfer, withDotLock, withDots } from './common.js';
import { applyMountRepair, isMountRepair, mountFindings } from './fsck-mounts.js';

/** Every dot found on this host's pools, with its commits and branches as the disk has them. */
async function diskDots(ctx: Context): Promise<{ dots: Map<string, DiskDot>; pools: Set<string> }> {
  const dots = new Map<string, DiskDot>();
  const pools = new Set<string>();
  for (const pool of await listPoolRecords(ctx.config.stateDir)) {
    const driver = ctx.drivers[pool.driver];
    let storage: ReturnType<typeof driver.dots>;
    try {
      storage = driver.dots(ctx.runner);
    } catch (e) {
      if (isKnarrError(e)) continue;
      throw e;
    }
    const status = await driver.poolStatus(pool, ctx.runner);
    if (!status.online) continue;
    pools.add(pool.name);
    for (const name of await storage.listDots(pool)) {
      const branches = await storage.listBranches(pool, name);
      const subdots = branches.length ? await storage.listSubdirs({ pool, dot: name, branch: branches.includes('master') ? 'master' : branches[0]! }) : [];
      dots.set(name, { name, pool: pool.name, branches, commits: await storage.diskCommits(pool, name), subdots });
    }
  }
  return { dots, pools };
}

async function repair(ctx: Context, repo: DotRepo, f: Finding): Promise<void> {
  for (const r of f.repairs) {
    if (isMountRepair(r)) await applyMountRepair(ctx, repo, r);
    else if (r.kind === 'put-commit') await repo.putCommit(r.commit);
    else if (r.kind === 'delete-commit') await repo.deleteCommit(r.dot, r.id);
    else if (r.kind === 'create-dot') {
      for (const c of r.commits) await repo.putCommit(c);
      await repo.create(r.record);
    } else {
      const dot = await repo.get(r.dot);
      if (dot?.branches[r.branch])
        await repo.update(r.dot, (cur) =>
          cur.branches[r.branch] ? { ...cur, branches: { ...cur.branches, [r.branch]: { ...cur.branches[r.branch]!, head: r.head } } } : cur,
        );
    }
  }
}

interface FsckRow {
  dot: string;
  problem: string;
  detail: string;
  repairable: boolean;
  repaired: boolean;
}

/**
 * What commands cut short (a crash, a full pool) left on the pools: snapshots without a record,
 * temporary files, a pull's staging. Each dot is looked at under its lock, so a command at work is
 * not taken for a leftover; --repair removes them (they hold no commit, and pin space).
 */
async function leftoverRows(ctx: Context, doRepair: boolean): Promise<FsckRow[]> {
  const rows: FsckRow[] = [];
  const row = (dot: string, problem: string, detail: string) => rows.push({ dot, problem, detail, repairable: true, repaired: doRepair });
  for (const pool of await listPoolRecords(ctx.config.stateDir)) {
    const driver = ctx.drivers[pool.driver];
    const storage = driver.dots(ctx.runner);
    if (!(await driver.poolStatus(pool, ctx.runner)).online) continue;
    const transfer = poolTransfer(ctx, pool);
    const staged = transfer ? await transfer.listStaging(pool) : [];
    for (const dot of [...new Set([...(await storage.listDots(pool)), ...staged])].sort()) {
      await withDotLock(ctx, 'dot fsck', [dot], async () => {
        for (const l of await storage.leftovers(pool, dot)) {
          if (doRepair) await storage.removeLeftover(pool, l);
          row(
            dot,
            l.kind,
            l.kind === 'orphan-snapshot'
              ? `snapshot ${l.path} has no commit record (a commit cut short); it pins space`
              : `temporary file ${l.path} was left by a write cut short`,
          );
        }
        if (transfer && (await transfer.listStaging(pool)).includes(dot)) {
          if (doRepair) await transfer.discardStaging(pool, dot);
          row(dot, 'staging-leftover', `pool ${pool.name} holds what a pull of ${dot} left in knarr-incoming (cut short, or out of space)`);
        }
      });
    }
  }
  return rows;
}

/** `knarr dot fsck [--repair]`: finds drift between the store and the disk, both ways; --repair mends what can be mended. */
export const dotFsck = (opts: { repair?: boolean }, ctx: Context): Promise<CommandResult> =>
  withDots(ctx, async (repo) => {
    const { dots: onDisk, pools } = await diskDots(ctx);
    const records = await repo.list();
    const findings: Finding[] = [];
    for (const record of records) {
      // A dot on a pool this host cannot see right now is not reported as lost.
      if (!pools.has(record.pool)) continue;
      const commits = [...(await repo.commits(record.name)).values()];
      findings.push(...checkDot({ record, commits }, onDisk.get(record.name) ?? null));
      if (onDisk.has(record.name)) findings.push(...(await mountFindings(ctx, record)));
    }
    const known = new Set(records.map((r) => r.name));
    for (const d of onDisk.values()) if (!known.has(d.name)) findings.push(...checkDot(null, d));

    const doRepair = opts.repair ?? false;
    const rows: FsckRow[] = [];
    for (const f of findings) {
      let repaired = doRepair && f.repairs.length > 0;
      let detail = f.detail;
      try {
        if (repaired && ctx.runner.dryRun) ctx.runner.note(`repair ${f.dot} (${f.kind}: ${f.detail})`);
        else if (repaired) await repair(ctx, repo, f);
      } catch (e) {
        // One repair that needs the operator (files in the way) does not stop the others.
        if (!isKnarrError(e)) throw e;
        repaired = false;
        detail += `; not repaired: ${e.message}${e.hint ? ` (${e.hint})` : ''}`;
      }
      rows.push({ dot: f.dot, problem: f.kind, detail, repairable: f.repairs.length > 0, repaired });
    }
    rows.push(...(await leftoverRows(ctx, doRepair)));
    const left = rows.filter((r) => !r.repaired).length;
    return {
      data: { ok: left === 0, findings: rows },
      view: rows.length
        ? {
            kind: 'table',
            columns: ['DOT', 'PROBLEM', 'REPAIRED', 'DETAIL'],
            rows: rows.map((r) => [r.dot, r.problem, r.repaired ? 'yes' : r.repairable ? 'no (--repair)' : 'no', r.detail]),
          }
        : { kind: 'lines', lines: ['no drift between the store and the disk'] },
      exitCode: left === 0 ? ExitCode.ok : ExitCode.failure,
    };
  });
