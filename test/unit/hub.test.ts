import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerOf, checkHubManifest, hubTokenId, parseRange, summarizeDot, validateHubUser, validateUploadId } from '../../src/core/hub.js';
import { HubRefusal, HubStore } from '../../src/host/hub-store.js';
import { tempDir, type TempDir } from '../harness/tmp.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const ID = '00000000a1deadbeef';

const manifestOf = (dot: string, blob: string, bytes: number, id = ID) => ({
  version: 2,
  dot,
  format: 'zfs',
  subdots: ['__default__'],
  branches: { master: { commits: [id] } },
  commits: {
    [id]: { record: { id, dot, branch: 'master', message: 'm', author: 'a', createdAt: '2026-01-01T00:00:00Z' }, base: null, file: blob, sha256: blob, bytes },
  },
  updatedAt: '2026-01-01T00:00:00Z',
});

describe('hub names, tokens, ranges and manifests', () => {
  it('users: lower-case, digits, _ and -, at most 63; upload ids never a path', () => {
    expect(validateHubUser('user', 'justincormack')).toBe('justincormack');
    for (const bad of ['', 'Alice', '-x', 'a/b', '..', 'a'.repeat(64)]) expect(() => validateHubUser('user', bad)).toThrow(/user/);
    expect(validateUploadId('id', '00000000a1deadbeef-full')).toBe('00000000a1deadbeef-full');
    for (const bad of ['', '.', '..', 'a/b', 'a'.repeat(129), 'x y']) expect(() => validateUploadId('id', bad)).toThrow(/upload id/);
  });

  it('a token is knh_<16 hex>_<64 hex>; a bearer header gives it, or says it is malformed', () => {
    expect(hubTokenId(`knh_${'a'.repeat(16)}_${'b'.repeat(64)}`)).toBe('a'.repeat(16));
    expect(hubTokenId('knh_short_x')).toBeNull();
    expect(bearerOf(undefined)).toBeNull();
    expect(bearerOf('Bearer abc')).toBe('abc');
    expect(bearerOf('Basic abc')).toBe('bad');
  });

  it('ranges: bytes=N- and bytes=N-M within the blob; past its end is refused', () => {
    expect(parseRange(undefined, 10)).toBeNull();
    expect(parseRange('bytes=4-', 10)).toEqual({ start: 4, end: 9 });
    expect(parseRange('bytes=2-5', 10)).toEqual({ start: 2, end: 5 });
    expect(parseRange('bytes=2-50', 10)).toEqual({ start: 2, end: 9 });
    expect(parseRange('bytes=10-', 10)).toBe('bad');
    expect(parseRange('bytes=-5', 10)).toBe('bad');
    expect(parseRange('bytes=5-2', 10)).toBe('bad');
  });

  it('a pushed manifest names each blob by sha256 and size, and only names knarr would give', () => {
    const blob = 'c'.repeat(64);
    expect(checkHubManifest(manifestOf('pg', blob, 10), 'alice', 'pg').dot).toBe('pg');
    expect(() => checkHubManifest(manifestOf('other', blob, 10), 'alice', 'pg')).toThrow(/dot "other"/);
    const fileNotSha = manifestOf('pg', blob, 10);
    fileNotSha.commits[ID]!.file = 'stream.zfs';
    expect(() => checkHubManifest(fileNotSha, 'alice', 'pg')).toThrow(/sha256/);
    expect(() => checkHubManifest(manifestOf('pg', blob, -1), 'alice', 'pg')).toThrow(/bytes/);
    expect(() => checkHubManifest({ ...manifestOf('pg', blob, 1), format: 'cpio' }, 'alice', 'pg')).toThrow(/format/);
    expect(() => checkHubManifest({ nonsense: true }, 'alice', 'pg')).toThrow(/not a knarr dot manifest/);
    expect(summarizeDot('alice', checkHubManifest(manifestOf('pg', blob, 10), 'alice', 'pg'), true)).toEqual({
      user: 'alice',
      dot: 'pg',
      format: 'zfs',
      branches: { master: ID },
      private: true,
      bytes: 10,
      updatedAt: '2026-01-01T00:00:00Z',
    });
  });
});

describe("the hub's store on disk", () => {
  let tmp: TempDir;
  let store: HubStore;
  beforeAll(async () => {
    tmp = await tempDir('knarr-hubsrv-unit-');
    store = new HubStore(`${tmp.path}/hub`);
  });
  afterAll(async () => tmp?.cleanup());

  it('tokens are kept as sha256; a revoked one fails at once, a forged secret never passes', async () => {
    const { record, token } = await store.createToken('alice', 'write');
    expect(readFileSync(`${tmp.path}/hub/tokens.json`, 'utf8')).not.toContain(token.slice(21));
    expect(await store.authenticate(token)).toMatchObject({ id: record.id, user: 'alice', access: 'write' });
    expect(await store.authenticate(`knh_${record.id}_${'0'.repeat(64)}`)).toBeNull();
    expect(await store.revokeToken(record.id)).toMatchObject({ id: record.id });
    expect(await store.authenticate(token)).toBeNull();
    expect(await store.revokeToken(record.id)).toBeNull();
  });

  it('an upload cut short keeps the bytes that reached the disk; the rest appends from there; finish checks the whole', async () => {
    const data = randomBytes(200_000);
    const cut = new Readable({ read() {} });
    cut.push(data.subarray(0, 120_000));
    setTimeout(() => cut.destroy(new Error('connection cut')), 50);
    await expect(store.appendUpload('alice', 'pg', 'u1', 0, cut)).rejects.toThrow(/connection cut/);
    expect(await store.uploadOffset('alice', 'pg', 'u1')).toBe(120_000);
    await expect(store.appendUpload('alice', 'pg', 'u1', 5, Readable.from([data.subarray(5)]))).rejects.toMatchObject({ kind: 'offset', offset: 120_000 });
    expect(await store.appendUpload('alice', 'pg', 'u1', 120_000, Readable.from([data.subarray(120_000)]))).toBe(200_000);
    await store.finishUpload('alice', 'pg', 'u1', data.length, sha(data));
    expect(readFileSync(store.blobPath('alice', 'pg', sha(data))).equals(data)).toBe(true);

    expect(await store.appendUpload('alice', 'pg', 'u2', 0, Readable.from([Buffer.from('abc')]))).toBe(3);
    const wrong = await store.finishUpload('alice', 'pg', 'u2', 3, sha('abd')).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(HubRefusal);
    expect((wrong as HubRefusal).kind).toBe('mismatch');
    expect(await store.uploadOffset('alice', 'pg', 'u2')).toBeNull();
    expect(existsSync(store.blobPath('alice', 'pg', sha('abc')))).toBe(false);
  });

  it('two PATCHes of one upload at once: one runs, the other is told the upload is busy', async () => {
    const slow = new Readable({ read() {} });
    const first = store.appendUpload('alice', 'pg', 'twice', 0, slow);
    const second = store.appendUpload('alice', 'pg', 'twice', 0, Readable.from([Buffer.from('x')]));
    setTimeout(() => {
      slow.push('abc');
      slow.push(null);
    }, 5_500);
    await expect(second).rejects.toMatchObject({ kind: 'busy' });
    expect(await first).toBe(3);
  }, 15_000);

  it('manifest writers of one dot take turns: an etag read before another write is refused, so none is lost', async () => {
    const blob = Buffer.from('stream');
    await store.appendUpload('alice', 'db', 'b', 0, Readable.from([blob]));
    await store.finishUpload('alice', 'db', 'b', blob.length, sha(blob));
    const m = manifestOf('db', sha(blob), blob.length);
    const first = await store.putManifest('alice', 'db', m, { ifMatch: null, create: true, private: false });
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () =>
        store.putManifest('alice', 'db', { ...m, updatedAt: new Date().toISOString() }, { ifMatch: first, create: false, private: false }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')) expect(r.reason).toMatchObject({ kind: 'precondition' });
    await expect(store.putManifest('alice', 'db', manifestOf('db', 'e'.repeat(64), 1), { ifMatch: null, create: true, private: false })).rejects.toMatchObject({
      kind: 'precondition',
    });
    expect(await store.isPrivate('alice', 'db')).toBe(false);
    expect(await store.isPrivate('alice', 'nothing')).toBe(true);
  });
});
