import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { ConflictError } from '../../src/core/errors.js';
import { HOLD_BACK_BYTES, SealedStream, type StreamSeal } from '../../src/host/stream-check.js';
import { Runner } from '../../src/host/runner.js';

const sealOf = (b: Buffer): StreamSeal => ({ bytes: b.length, algorithm: 'sha256', value: createHash('sha256').update(b).digest('hex') });
const chunks = (b: Buffer, size = 65536) => Readable.from(Array.from({ length: Math.ceil(b.length / size) }, (_, i) => b.subarray(i * size, (i + 1) * size)));

/** What a receiver gets through the check, and how the check ended. */
async function through(data: Buffer, seal: StreamSeal): Promise<{ got: Buffer; error: Error | null }> {
  const parts: Buffer[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, done) => (parts.push(c), done()) });
  const error = await pipeline(chunks(data), new SealedStream(seal, 'stream x'), sink).then(
    () => null,
    (e: Error) => e,
  );
  return { got: Buffer.concat(parts), error };
}

describe('a sealed stream', () => {
  const data = randomBytes(3 * 1024 * 1024 + 17);

  it('passes a whole stream through unchanged', async () => {
    const { got, error } = await through(data, sealOf(data));
    expect(error).toBeNull();
    expect(got.equals(data)).toBe(true);
  });

  it('refuses a flipped byte and never passes the end on', async () => {
    const bad = Buffer.from(data);
    bad[1000] ^= 0xff;
    const { got, error } = await through(bad, sealOf(data));
    expect(error).toBeInstanceOf(ConflictError);
    expect(error!.message).toMatch(/stream x is damaged: sha256/);
    expect(got.length).toBeLessThanOrEqual(data.length - HOLD_BACK_BYTES);
  });

  it('refuses a cut stream, and a longer one', async () => {
    const cut = await through(data.subarray(0, data.length - 1), sealOf(data));
    expect(cut.error!.message).toMatch(/bytes arrived, its sender sealed/);
    const longer = await through(Buffer.concat([data, Buffer.from('x')]), sealOf(data));
    expect(longer.error!.message).toMatch(/more than the/);
  });

  it('fails the command it feeds even when that command exits 0 on what it got', async () => {
    const runner = new Runner({ dryRun: false, verbose: false, env: process.env, log: () => undefined });
    const bad = Buffer.from(data);
    bad[5] ^= 1;
    const out: Buffer[] = [];
    const sink = new Writable({ write: (c: Buffer, _e, done) => (out.push(c), done()) });
    await expect(runner.pipe(['cat'], { stdin: chunks(bad).pipe(new SealedStream(sealOf(data), 'stream y')), stdout: sink })).rejects.toThrow(
      /stream y is damaged/,
    );
  });
});
