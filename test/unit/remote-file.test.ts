import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { ConflictError, ExternalCommandError, ValidationError } from '../../src/core/errors.js';
import type { CommitRecord } from '../../src/core/dots.js';
import { emptyManifest, streamChecksum, validateManifest, type ManifestCommit } from '../../src/core/remote.js';
import { checksumFile, FileRemote, summer } from '../../src/host/remote-file.js';
import { Runner } from '../../src/host/runner.js';

const tmp = mkdtempSync(`${tmpdir()}/knarr-remote-file-`);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const runner = () => new Runner({ dryRun: false, verbose: false, env: process.env, log: () => undefined });
const record = (id: string): CommitRecord => ({
  id,
  dot: 'd',
  branch: 'master',
  parent: null,
  message: 'm',
  author: 'a@b',
  time: '2026-01-01T00:00:00.000Z',
  meta: {},
});
const crc = (b: Buffer) => (zlib as { crc32?: (b: Buffer) => number }).crc32!(b).toString(16).padStart(8, '0');
const drain = async (r: NodeJS.ReadableStream) => {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

describe('file remote streams', () => {
  it('crc32 in chunks equals zlib over the whole; sha256 stays hex sha256', () => {
    const data = Buffer.from('the quick brown fox jumps over the lazy dog'.repeat(1000));
    const s = summer('crc32');
    for (let i = 0; i < data.length; i += 777) s.update(data.subarray(i, i + 777));
    expect(s.digest()).toBe(crc(data));
    const h = summer('sha256');
    h.update(data);
    expect(h.digest()).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('checksums a stream while its sender writes it, and names it in full only when whole', async () => {
    const remote = new FileRemote(`${tmp}/r1`, runner());
    const src = `${tmp}/src.bin`;
    // Several MiB written in bursts: the checksum follows a file that grows while it is read.
    const data = Buffer.alloc(5 * 1024 * 1024 + 123, 7);
    for (let i = 0; i < data.length; i += 4096) data[i] = i & 0xff;
    writeFileSync(src, data);
    const argv = ['sh', '-c', 'head -c 1000000 "$1"; sleep 0.1; tail -c +1000001 "$1"', 'sh', src];
    const entry = await remote.putCommit('d', 'master', record('c1'), null, 'tar', { argv, produce: async () => undefined });
    expect(entry).toMatchObject({ file: 'c1.tar', bytes: data.length, sha256: '', crc32: crc(data) });
    expect(readFileSync(`${tmp}/r1/d/streams/c1.tar`).equals(data)).toBe(true);
    expect(readdirSync(`${tmp}/r1/d/streams`)).toEqual(['c1.tar']);
    // Buffer.equals: a deep toEqual over 5 MiB takes half a minute.
    expect((await drain(await remote.openVerified('d', entry))).equals(data)).toBe(true);
  });

  it('a failing sender leaves no stream and no .partial', async () => {
    const remote = new FileRemote(`${tmp}/r2`, runner());
    await expect(
      remote.putCommit('d', 'master', record('c2'), null, 'tar', { argv: ['sh', '-c', 'echo partial; exit 3'], produce: async () => undefined }),
    ).rejects.toBeInstanceOf(ExternalCommandError);
    expect(readdirSync(`${tmp}/r2/d/streams`)).toEqual([]);
  });

  it('a damaged or cut stream is refused as it is read, whichever checksum the manifest records', async () => {
    const remote = new FileRemote(`${tmp}/r3`, runner());
    const data = Buffer.from('x'.repeat(10_000));
    const entry = await remote.putCommit('d', 'master', record('c3'), null, 'tar', {
      argv: ['head', '-c', '10000', '/dev/zero'],
      produce: async () => undefined,
    });
    const path = `${tmp}/r3/d/streams/c3.tar`;
    writeFileSync(path, data);
    await expect(drain(await remote.openVerified('d', entry))).rejects.toThrow(/damaged: crc32/);
    writeFileSync(path, data.subarray(1));
    await expect(drain(await remote.openVerified('d', entry))).rejects.toThrow(/damaged: 9999 bytes/);
    // A version 1 entry: sha256 only.
    writeFileSync(path, data);
    const v1: ManifestCommit = {
      record: record('c3'),
      base: null,
      file: 'c3.tar',
      bytes: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
    };
    expect((await drain(await remote.openVerified('d', v1))).equals(data)).toBe(true);
    writeFileSync(path, Buffer.from('y'.repeat(10_000)));
    await expect(drain(await remote.openVerified('d', v1))).rejects.toBeInstanceOf(ConflictError);
    await expect(remote.openVerified('d', { ...v1, sha256: '' })).rejects.toThrow(/no checksum/);
  });

  it('checksumFile reads a whole file', async () => {
    const data = Buffer.from('abc'.repeat(700_000));
    writeFileSync(`${tmp}/whole`, data);
    expect(await checksumFile(`${tmp}/whole`, 'crc32')).toEqual({ checksum: crc(data), bytes: data.length });
  });
});

describe('manifests', () => {
  const entry = (over: Partial<ManifestCommit>): ManifestCommit => ({ record: record('c'), base: null, file: 'c.zfs', bytes: 1, sha256: '', ...over });
  const manifest = (version: number, c: ManifestCommit) => ({
    ...emptyManifest('d', 'zfs', []),
    version,
    branches: { master: { commits: ['c'] } },
    commits: { c },
  });

  it('reads version 1 (sha256) and version 2 (crc32); refuses other versions and malformed checksums', () => {
    const sha = 'a'.repeat(64);
    expect(streamChecksum(validateManifest('m', manifest(1, entry({ sha256: sha }))).commits.c!)).toEqual({ algorithm: 'sha256', value: sha });
    expect(streamChecksum(validateManifest('m', manifest(2, entry({ crc32: '0badf00d' }))).commits.c!)).toEqual({ algorithm: 'crc32', value: '0badf00d' });
    expect(streamChecksum(entry({}))).toBeNull();
    expect(() => validateManifest('m', manifest(3, entry({ crc32: '0badf00d' })))).toThrow(ValidationError);
    expect(() => validateManifest('m', manifest(2, entry({ crc32: 'xyz' })))).toThrow(ValidationError);
  });

  it('a manifest is written as version 2 only once an entry carries crc32', async () => {
    const remote = new FileRemote(`${tmp}/r4`, runner());
    const v1 = validateManifest('m', manifest(1, entry({ sha256: 'b'.repeat(64) })));
    await remote.saveManifest(v1);
    expect(JSON.parse(readFileSync(`${tmp}/r4/d/manifest.json`, 'utf8')).version).toBe(1);
    await remote.saveManifest({ ...v1, commits: { ...v1.commits, c2: entry({ crc32: '0badf00d' }) } });
    expect(JSON.parse(readFileSync(`${tmp}/r4/d/manifest.json`, 'utf8')).version).toBe(2);
    expect(existsSync(`${tmp}/r4/d/manifest.json.tmp`)).toBe(false);
  });
});

describe('two pushes to one file remote', () => {
  it('a manifest is replaced only if it is still the version the push read: the later writer is refused, not the earlier one lost', async () => {
    const root = `${tmp}/versions`;
    const first = new FileRemote(root, runner());
    const second = new FileRemote(root, runner());
    await first.writeManifest(emptyManifest('d', 'tar', ['__default__']));
    const a = (await first.readManifest('d'))!;
    const b = (await second.readManifest('d'))!;
    a.branches.master = { commits: [] };
    await first.saveManifest(a);
    await first.saveManifest(a);
    b.branches.other = { commits: [] };
    await expect(second.saveManifest(b)).rejects.toThrow(ConflictError);
    expect(Object.keys((await first.readManifest('d'))!.branches)).toEqual(['master']);
    // Read again, it saves.
    const again = (await second.readManifest('d'))!;
    again.branches.other = { commits: [] };
    await second.saveManifest(again);
    expect(Object.keys((await first.readManifest('d'))!.branches).sort()).toEqual(['master', 'other']);
  });

  it('the push lock: a second push waits for the first, or fails at once when told not to wait', async () => {
    const remote = new FileRemote(`${tmp}/locked`, runner());
    const other = new FileRemote(`${tmp}/locked`, runner());
    const signal = new AbortController().signal;
    const told: string[] = [];
    const order: string[] = [];
    let releaseFirst!: () => void;
    const first = remote.withPushLock(
      'd',
      { wait: false, signal, onWait: () => undefined },
      () => new Promise<void>((r) => (releaseFirst = () => (order.push('first'), r()))),
    );
    await new Promise((r) => setTimeout(r, 50));
    await expect(other.withPushLock('d', { wait: false, signal, onWait: () => undefined }, async () => undefined)).rejects.toThrow(/is taking a push of d/);
    const second = other.withPushLock('d', { wait: true, signal, onWait: (m) => told.push(m) }, async () => void order.push('second'));
    await new Promise((r) => setTimeout(r, 200));
    expect(order).toEqual([]);
    releaseFirst();
    await Promise.all([first, second]);
    expect(order).toEqual(['first', 'second']);
    expect(told).toHaveLength(1);
    expect(told[0]).toMatch(/waiting for it/);
    expect(existsSync(`${tmp}/locked/d/manifest.lock`)).toBe(false);
  });
});
