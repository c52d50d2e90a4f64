import { describe, expect, it } from 'vitest';
import type { CommitRecord, DotRecord } from '../../src/core/dots.js';
import { checkDot, type DiskDot } from '../../src/core/fsck.js';

const c = (id: string, parent: string | null, branch = 'master'): CommitRecord => ({
  id,
  dot: 'd',
  branch,
  parent,
  message: `m${id}`,
  author: 'a',
  time: `2026-01-01T00:00:0${id.length}Z`,
  meta: {},
});
const record = (head: string | null): DotRecord => ({
  name: 'd',
  pool: 'p',
  subdots: ['__default__'],
  branches: { master: { head, from: null, createdAt: '' } },
  activeBranch: 'master',
  mounts: {},
  origin: null,
  createdAt: '',
});
const disk = (commits: CommitRecord[], branches = ['master']): DiskDot => ({ name: 'd', pool: 'p', branches, commits, subdots: ['__default__'] });

describe('checkDot', () => {
  it('finds nothing when store and disk agree', () => {
    expect(checkDot({ record: record('2'), commits: [c('1', null), c('2', '1')] }, disk([c('1', null), c('2', '1')]))).toEqual([]);
  });
  it('reports data deleted outside knarr, with no repair', () => {
    const f = checkDot({ record: record('1'), commits: [c('1', null)] }, null);
    expect(f).toMatchObject([{ kind: 'data-missing', repairs: [] }]);
  });
  it('a commit on disk but not in the store is added and the head moves to it', () => {
    const f = checkDot({ record: record('1'), commits: [c('1', null)] }, disk([c('1', null), c('2', '1')]));
    expect(f.map((x) => x.kind)).toEqual(['commit-not-in-store']);
    expect(f[0]!.repairs).toEqual([
      { kind: 'put-commit', commit: c('2', '1') },
      { kind: 'set-head', dot: 'd', branch: 'master', head: '2' },
    ]);
  });
  it('a commit whose snapshot is gone is dropped and the head falls back to its parent', () => {
    const f = checkDot({ record: record('2'), commits: [c('1', null), c('2', '1')] }, disk([c('1', null)]));
    expect(f.map((x) => x.kind)).toEqual(['commit-not-on-disk']);
    expect(f[0]!.repairs).toEqual([
      { kind: 'delete-commit', dot: 'd', id: '2' },
      { kind: 'set-head', dot: 'd', branch: 'master', head: '1' },
    ]);
  });
  it('a branch without a filesystem is reported', () => {
    const r = record('1');
    r.branches.exp = { head: '1', from: { branch: 'master', commit: '1' }, createdAt: '' };
    expect(checkDot({ record: r, commits: [c('1', null)] }, disk([c('1', null)])).map((x) => x.kind)).toEqual(['branch-missing']);
  });
  it('a branch lost mid-pull is rebuilt from the newest head its commits on disk give', () => {
    const f = checkDot({ record: record('1'), commits: [c('1', null)] }, disk([c('1', null), c('2', '1')], []));
    expect(f[0]).toMatchObject({ kind: 'branch-missing', repairs: [{ kind: 'restore-branch', dot: 'd', branch: 'master', head: '2' }] });
    expect(f.flatMap((x) => x.repairs).map((r) => r.kind)).toEqual(['restore-branch', 'put-commit', 'set-head']);
  });
  it('a branch whose every commit is gone cannot be rebuilt', () => {
    const f = checkDot({ record: record('2'), commits: [c('1', null), c('2', '1')] }, disk([], []));
    expect(f[0]).toMatchObject({ kind: 'branch-missing', repairs: [] });
  });
  it('an empty branch (no commits yet) comes back empty', () => {
    expect(checkDot({ record: record(null), commits: [] }, disk([], []))).toMatchObject([
      { kind: 'branch-missing', repairs: [{ kind: 'restore-branch', head: null }] },
    ]);
  });
  it('a dot on disk unknown to the store is rebuilt from the disk', () => {
    const f = checkDot(null, disk([c('1', null), c('22', '1')]));
    expect(f).toHaveLength(1);
    expect(f[0]!.kind).toBe('dot-not-in-store');
    const repair = f[0]!.repairs[0]!;
    expect(repair.kind).toBe('create-dot');
    if (repair.kind === 'create-dot') {
      expect(repair.record.branches.master!.head).toBe('22');
      expect(repair.commits).toHaveLength(2);
    }
  });
});
