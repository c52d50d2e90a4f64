import { DEFAULT_BRANCH, type CommitRecord, type DotRecord } from './dots.js';

/** What a pool holds for one dot. */
export interface DiskDot {
  name: string;
  pool: string;
  branches: string[];
  commits: CommitRecord[];
  /** Subdot folders of the first branch found, for rebuilding a lost record. */
  subdots: string[];
}

export interface StoreDot {
  record: DotRecord;
  commits: CommitRecord[];
}

export type Repair =
  | { kind: 'put-commit'; commit: CommitRecord }
  | { kind: 'delete-commit'; dot: string; id: string }
  | { kind: 'set-head'; dot: string; branch: string; head: string | null }
  | { kind: 'create-dot'; record: DotRecord; commits: CommitRecord[] }
  /** Mounts the branch filesystem again, or rebuilds it from head. */
  | { kind: 'restore-branch'; dot: string; branch: string; head: string | null }
  /** Binds the subdot of the active branch at target again. */
  | { kind: 'rebind'; dot: string; subdot: string; target: string };

export type FindingKind =
  | 'data-missing'
  | 'branch-missing'
  | 'commit-not-in-store'
  | 'commit-not-on-disk'
  | 'dot-not-in-store'
  | 'branch-unmounted'
  | 'mount-missing';

export interface Finding {
  dot: string;
  kind: FindingKind;
  detail: string;
  /** What --repair does; none where only the operator can decide (lost data). */
  repairs: Repair[];
}

/** Newest head reachable by following commits whose parent is the current head. */
function advance(head: string | null, commits: CommitRecord[], branch: string): string | null {
  let h = head;
  for (;;) {
    const next = commits.find((c) => c.branch === branch && c.parent === h && c.id !== h);
    if (!next) return h;
    h = next.id;
  }
}

/** Compares the store's view of a dot with the disk's, in both directions; pure, so it is unit-tested. */
export function checkDot(store: StoreDot | null, disk: DiskDot | null): Finding[] {
  if (store && !disk) {
    return [
      {
        dot: store.record.name,
        kind: 'data-missing',
        detail: `the store knows ${store.record.name}, but pool ${store.record.pool} has no data for it (deleted outside knarr?)`,
        repairs: [],
      },
    ];
  }
  if (!store && disk) {
    const branches: DotRecord['branches'] = {};
    for (const b of disk.branches) {
      const mine = disk.commits.filter((c) => c.branch === b).sort((x, y) => x.time.localeCompare(y.time));
      branches[b] = { head: advance(null, mine, b) ?? mine[mine.length - 1]?.id ?? null, from: null, createdAt: mine[0]?.time ?? new Date().toISOString() };
    }
    const record: DotRecord = {
      name: disk.name,
      pool: disk.pool,
      subdots: disk.subdots,
      branches,
      activeBranch: branches[DEFAULT_BRANCH] ? DEFAULT_BRANCH : (disk.branches[0] ?? DEFAULT_BRANCH),
      mounts: {},
      origin: null,
      createdAt: new Date().toISOString(),
    };
    return [
      {
        dot: disk.name,
        kind: 'dot-not-in-store',
        detail: `pool ${disk.pool} holds ${disk.name} (${disk.commits.length} commits) but the store has no record of it`,
        repairs: [{ kind: 'create-dot', record, commits: disk.commits }],
      },
    ];
  }
  if (!store || !disk) return [];
  const findings: Finding[] = [];
  const name = store.record.name;
  const onDisk = new Map(disk.commits.map((c) => [c.id, c]));
  const inStore = new Map(store.commits.map((c) => [c.id, c]));
  for (const c of disk.commits) {
    if (!inStore.has(c.id))
      findings.push({
        dot: name,
        kind: 'commit-not-in-store',
        detail: `commit ${c.id} (${c.message.split('\n')[0]}) is on disk but not in the store`,
        repairs: [{ kind: 'put-commit', commit: c }],
      });
  }
  for (const c of store.commits) {
    if (!onDisk.has(c.id))
      findings.push({
        dot: name,
        kind: 'commit-not-on-disk',
        detail: `commit ${c.id} is in the store but its snapshot is gone`,
        repairs: [{ kind: 'delete-commit', dot: name, id: c.id }],
      });
  }
  // Heads move to the newest commit that really exists, following parents on disk.
  const settled = (b: string, head: string | null) => {
    while (head && !onDisk.has(head)) head = inStore.get(head)?.parent ?? null;
    return advance(head, disk.commits, b);
  };
  for (const [b, br] of Object.entries(store.record.branches)) {
    if (disk.branches.includes(b)) continue;
    // A branch filesystem lost mid-pull comes back from its head commit, where that is still on disk.
    const head = settled(b, br.head);
    const repairs: Repair[] = head === null && br.head !== null ? [] : [{ kind: 'restore-branch', dot: name, branch: b, head }];
    findings.unshift({
      dot: name,
      kind: 'branch-missing',
      detail: `branch ${b} has no filesystem on pool ${disk.pool}${repairs.length ? '' : ', and none of its commits is left'}`,
      repairs,
    });
  }
  for (const [b, br] of Object.entries(store.record.branches)) {
    const head = settled(b, br.head);
    if (head !== br.head) {
      const target = findings.find((f) => f.kind !== 'branch-missing' && f.repairs.length > 0);
      const repair: Repair = { kind: 'set-head', dot: name, branch: b, head };
      if (target) target.repairs.push(repair);
      else findings.push({ dot: name, kind: 'commit-not-in-store', detail: `branch ${b} head should be ${head}`, repairs: [repair] });
    }
  }
  return findings;
}
