import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { receiveChain } from '../../src/commands/dot/pull.js';
import type { Context } from '../../src/commands/types.js';
import type { CommitRecord } from '../../src/core/dots.js';
import { ExternalCommandError } from '../../src/core/errors.js';
import type { Manifest, ManifestCommit, RemoteEndpoint } from '../../src/core/remote.js';
import type { DotFsRef, DotTransfer } from '../../src/host/storage/driver.js';

const record = (id: string, parent: string | null): CommitRecord => ({
  id,
  dot: 'd',
  branch: 'master',
  parent,
  message: id,
  author: 'a',
  time: '2026-01-01T00:00:00Z',
  meta: {},
});
const entry = (id: string, base: string | null): ManifestCommit => ({ record: record(id, base), base, file: `${id}.zfs`, bytes: 1, sha256: '' });
const manifest = {
  dot: 'd',
  commits: { c1: entry('c1', null), c2: entry('c2', 'c1') },
  branches: { master: { commits: ['c1', 'c2'] } },
} as unknown as Manifest;
const ref = { dot: 'd', branch: 'master' } as DotFsRef;
const ioError = () => new ExternalCommandError(['zfs', 'recv', '-F', 'p/knarr-dots/d/master'], 1, 'cannot receive incremental stream: I/O error');

/** A remote that counts reads and a transfer that fails the first `failures` receives of c2 with `error`. */
function fakes(failures: number, error: () => Error) {
  const reads: string[] = [];
  const warnings: string[] = [];
  let left = failures;
  const remote = {
    async fetchCommit(_dot: string, e: ManifestCommit, consume: (input: Readable, source: string) => Promise<void>) {
      reads.push(e.record.id);
      await consume(Readable.from([Buffer.from(e.record.id)]), e.file);
    },
  } as unknown as RemoteEndpoint;
  const transfer = {
    isTransient: (e: unknown) => e instanceof ExternalCommandError && /I\/O error/.test(e.stderr),
    async receive(_ref: DotFsRef, commit: CommitRecord, _base: string | null, input: Readable) {
      for await (const _ of input);
      if (commit.id === 'c2' && left-- > 0) throw error();
    },
  } as unknown as DotTransfer;
  const ctx = {
    events: { step() {}, warn: (m: string) => warnings.push(m), done() {}, log() {}, progress: () => ({ add() {}, end() {} }) },
  } as unknown as Context;
  return { reads, warnings, remote, transfer, ctx };
}

describe('a pull receiving a chain of commits', () => {
  it('reads a stream again after a transient receive failure, and says so', async () => {
    const f = fakes(1, ioError);
    const got = await receiveChain(f.ctx, f.remote, manifest, f.transfer, ref, ['c1', 'c2'], null);
    expect(got.map((c) => c.id)).toEqual(['c1', 'c2']);
    expect(f.reads).toEqual(['c1', 'c2', 'c2']);
    expect(f.warnings).toHaveLength(1);
    expect(f.warnings[0]).toMatch(/reading the stream again/);
  });

  it('gives up after three reads of a stream that keeps failing', async () => {
    const f = fakes(5, ioError);
    await expect(receiveChain(f.ctx, f.remote, manifest, f.transfer, ref, ['c1', 'c2'], null)).rejects.toThrow(/I\/O error/);
    expect(f.reads).toEqual(['c1', 'c2', 'c2', 'c2']);
  }, 10_000);

  it('does not retry a failure that is not transient', async () => {
    const f = fakes(1, () => new Error('stream checksum mismatch'));
    await expect(receiveChain(f.ctx, f.remote, manifest, f.transfer, ref, ['c1', 'c2'], null)).rejects.toThrow(/checksum/);
    expect(f.reads).toEqual(['c1', 'c2']);
    expect(f.warnings).toEqual([]);
  });
});
