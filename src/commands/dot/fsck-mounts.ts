import type { DotRecord } from '../../core/dots.js';
import type { Finding, Repair } from '../../core/fsck.js';
import type { DotRepo } from '../../state/dots.js';
import type { Context } from '../types.js';
import { boundAt, dotHandle, mountSubdot, requireDot, restoreBranchOf, subdotLabel } from './common.js';

type MountRepair = Extract<Repair, { kind: 'restore-branch' | 'rebind' }>;

export function isMountRepair(r: Repair): r is MountRepair {
  return r.kind === 'restore-branch' || r.kind === 'rebind';
}

/** Branches whose filesystem is there but not mounted, and recorded mounts that do not show the active branch (a pull killed mid-way). */
export async function mountFindings(ctx: Context, record: DotRecord): Promise<Finding[]> {
  const h = await dotHandle(ctx, record);
  const findings: Finding[] = [];
  for (const [branch, { head }] of Object.entries(record.branches)) {
    // A branch with no filesystem at all is checkDot's (branch-missing).
    if ((await h.storage.branchState(h.ref(branch))) !== 'unmounted') continue;
    findings.push({
      dot: record.name,
      kind: 'branch-unmounted',
      detail: `branch ${branch} is on pool ${record.pool} but not mounted at ${h.storage.branchPath(h.ref(branch))}`,
      repairs: [{ kind: 'restore-branch', dot: record.name, branch, head }],
    });
  }
  for (const [subdot, target] of Object.entries(record.mounts)) {
    if (await boundAt(h, subdot, target)) continue;
    findings.push({
      dot: record.name,
      kind: 'mount-missing',
      detail:
        `${subdotLabel(record.name, subdot)} should be mounted at ${target} (branch ${record.activeBranch}), but is not: what is ` +
        `written there now misses the dot`,
      repairs: [{ kind: 'rebind', dot: record.name, subdot, target }],
    });
  }
  return findings;
}

/** Mounts a branch again (or rebuilds it from its head), or binds a subdot at its recorded mount again. */
export async function applyMountRepair(ctx: Context, repo: DotRepo, r: MountRepair): Promise<void> {
  const h = await dotHandle(ctx, await requireDot(repo, r.dot));
  if (r.kind === 'restore-branch') await restoreBranchOf(ctx, h, r.branch, r.head);
  else await mountSubdot(ctx, h, r.subdot, r.target);
}
