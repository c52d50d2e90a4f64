import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { ConflictError } from '../../src/core/errors.js';
import { HOLD_BACK_BYTES } from '../../src/host/stream-check.js';
import { SEAL_MAGIC, SealUnframer, sealOutput } from '../../src/host/stream-seal.js';

const chunks = (b: Buffer, size: number) => Readable.from(Array.from({ length: Math.ceil(b.length / size) }, (_, i) => b.subarray(i * size, (i + 1) * size)));
const collect = async (r: Readable) => {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

/** The framed bytes a sender produces for data. */
async function framedOf(data: Buffer, fail = false): Promise<Buffer> {
  const { framed, sealed } = sealOutput(async (out) => {
    await pipeline(chunks(data, 65536), out, { end: !fail } as never);
    if (fail) throw new Error('the sender failed');
  });
  const [bytes] = await Promise.all([collect(framed).catch(() => Buffer.alloc(0)), sealed.catch(() => null)]);
  return bytes;
}

/** What a receiver gets through the unframer (fed in odd-sized pieces), and how it ended. */
async function through(framed: Buffer, size = 7919): Promise<{ got: Buffer; error: Error | null }> {
  const parts: Buffer[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, done) => (parts.push(c), done()) });
  const error = await pipeline(chunks(framed, size), new SealUnframer('stream x'), sink).then(
    () => null,
    (e: Error) => e,
  );
  return { got: Buffer.concat(parts), error };
}

describe('the sealed framing between two knarrs', () => {
  const data = randomBytes(2 * 1024 * 1024 + 5);

  it('carries a stream whole, whatever the pieces it arrives in', async () => {
    const framed = await framedOf(data);
    expect(framed.subarray(0, SEAL_MAGIC.length).equals(SEAL_MAGIC)).toBe(true);
    for (const size of [7919, 65536, framed.length]) {
      const { got, error } = await through(framed, size);
      expect(error).toBeNull();
      expect(got.equals(data)).toBe(true);
    }
    const small = randomBytes(3000);
    expect((await through(await framedOf(small), 3)).got.equals(small)).toBe(true);
    const empty = await through(await framedOf(Buffer.alloc(0)));
    expect(empty.error).toBeNull();
    expect(empty.got.length).toBe(0);
  });

  it('refuses a stream cut anywhere, never passing its end on', async () => {
    const framed = await framedOf(data);
    for (const at of [0, 10, 100_000, framed.length - 40, framed.length - 1]) {
      const { got, error } = await through(framed.subarray(0, at));
      expect(error).toBeInstanceOf(ConflictError);
      expect(error!.message).toMatch(/stream x is damaged/);
      expect(got.length).toBeLessThanOrEqual(data.length - HOLD_BACK_BYTES);
    }
  });

  it('refuses a flipped byte in the payload, the framing or the seal', async () => {
    const framed = await framedOf(data);
    for (const at of [3, SEAL_MAGIC.length + 1, 200_000, framed.length - 20, framed.length - 3]) {
      const bad = Buffer.from(framed);
      bad[at]! ^= 0x01;
      const { got, error } = await through(bad);
      expect(error, `flip at ${at}`).toBeInstanceOf(ConflictError);
      expect(got.length).toBeLessThanOrEqual(data.length - HOLD_BACK_BYTES);
    }
    const flipped = Buffer.from(framed);
    flipped[200_000]! ^= 0x01;
    expect((await through(flipped)).error!.message).toMatch(/stream x is damaged: crc32 /);
  });

  it('refuses bytes after the seal and an unsealed stream', async () => {
    const framed = await framedOf(data);
    expect((await through(Buffer.concat([framed, Buffer.from('x')]))).error!.message).toMatch(/after its seal/);
    expect((await through(data)).error!.message).toMatch(/not a sealed stream/);
  });

  it('a sender that fails is never sealed', async () => {
    const framed = await framedOf(data, true);
    const { error } = await through(framed);
    expect(error!.message).toMatch(/cut short|damaged/);
  });
});
