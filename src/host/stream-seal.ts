import { once } from 'node:events';
import { PassThrough, Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';
import { ConflictError } from '../core/errors.js';
import type { ChecksumAlgorithm } from '../core/remote.js';
import { summer } from './checksum.js';
import { HOLD_BACK_BYTES, type StreamSeal } from './stream-check.js';

/*
 * The sealed framing of a stream between two knarrs (ssh push and pull): a magic line, then chunks each led by its
 * length (4 bytes, big-endian, never 0), then a 0 length, the trailer's length (4 bytes) and the trailer: JSON
 * {bytes, algorithm, value} of the payload. The seal comes from the sender and travels with the stream; the receiver
 * checks it while the bytes pass, holding back their end, so a cut or altered stream never reaches its receiver whole.
 */

export const SEAL_MAGIC = Buffer.from('KNARR-SEALED-1\n');
/** The framing's one checksum: it guards against damage in flight (ssh's own MAC guards the wire; this, the ends). */
export const SEAL_ALGORITHM: ChecksumAlgorithm = 'crc32';
/** A chunk longer than this is damaged framing, not a chunk (node's pipes pass at most a few MiB at once). */
const MAX_CHUNK = 64 * 1024 * 1024;
const MAX_TRAILER = 4096;

const u32 = (n: number) => {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
};

/** Frames what is written to it; the trailer goes out only on end(), so a sender that fails is never sealed. */
export class SealFramer extends Transform {
  private readonly sum;
  bytes = 0;
  seal: StreamSeal | null = null;

  private readonly algorithm = SEAL_ALGORITHM;

  constructor() {
    super();
    this.sum = summer(this.algorithm);
    this.push(SEAL_MAGIC);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (chunk.length === 0) {
      done();
      return;
    }
    this.sum.update(chunk);
    this.bytes += chunk.length;
    for (let at = 0; at < chunk.length; at += MAX_CHUNK) {
      const part = chunk.subarray(at, at + MAX_CHUNK);
      this.push(u32(part.length));
      this.push(part);
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    this.seal = { bytes: this.bytes, algorithm: this.algorithm, value: this.sum.digest() };
    const trailer = Buffer.from(JSON.stringify(this.seal));
    this.push(u32(0));
    this.push(u32(trailer.length));
    this.push(trailer);
    done();
  }
}

/**
 * A producer's output, framed and sealed: the trailer is written only once produce resolved and its output ended,
 * so a producer that fails leaves the stream unsealed (its receiver refuses it). `sealed` resolves to the seal sent.
 */
export function sealOutput(produce: (out: Writable) => Promise<void>): { framed: Readable; sealed: Promise<StreamSeal> } {
  const framer = new SealFramer();
  const raw = new PassThrough();
  raw.pipe(framer, { end: false });
  const sealed = Promise.all([produce(raw), once(raw, 'end')]).then(
    () =>
      new Promise<StreamSeal>((resolve, reject) => {
        framer.once('error', reject);
        framer.end(() => resolve(framer.seal!));
      }),
    (e: unknown) => {
      framer.destroy(e as Error);
      throw e;
    },
  );
  // The caller awaits it; a rejection is handled there.
  sealed.catch(() => undefined);
  return { framed: framer, sealed };
}

type State = 'magic' | 'length' | 'data' | 'trailer-length' | 'trailer' | 'done';

/**
 * Reads the sealed framing back to the payload, checking it as it passes: the last HOLD_BACK_BYTES are held until the
 * trailer matches what arrived. A stream cut short, altered, or framed wrongly errors (`failure` says why), so the
 * command it feeds never sees its end.
 */
export class SealUnframer extends Transform {
  private state: State = 'magic';
  private head: Buffer = Buffer.alloc(0);
  private need = SEAL_MAGIC.length;
  private readonly sum = summer(SEAL_ALGORITHM);
  private held: Buffer[] = [];
  private heldBytes = 0;
  private first = 0;
  bytes = 0;
  seal: StreamSeal | null = null;
  failure: Error | null = null;

  constructor(
    private readonly what: string,
    private readonly hint = 'send it again; if it fails again, check the network and the disks on both hosts',
  ) {
    super();
  }

  private fail(message: string): Error {
    this.failure = new ConflictError(`${this.what} is damaged: ${message}`, { hint: this.hint });
    return this.failure;
  }

  private payload(part: Buffer): void {
    this.sum.update(part);
    this.bytes += part.length;
    this.held.push(part);
    this.heldBytes += part.length;
    // Release what is no longer among the last HOLD_BACK_BYTES (an index, not shift(): small pieces stay linear).
    while (this.held.length - this.first > 1 && this.heldBytes - this.held[this.first]!.length >= HOLD_BACK_BYTES) {
      const first = this.held[this.first++]!;
      this.heldBytes -= first.length;
      this.push(first);
    }
    if (this.first > 1024) {
      this.held = this.held.slice(this.first);
      this.first = 0;
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.state === 'done') {
        done(this.fail('bytes after its seal'));
        return;
      }
      if (this.state === 'data') {
        const part = chunk.subarray(at, at + this.need);
        this.payload(part);
        at += part.length;
        this.need -= part.length;
        if (this.need === 0) this.expect('length', 4);
        continue;
      }
      const take = chunk.subarray(at, at + this.need - this.head.length);
      this.head = this.head.length === 0 ? take : Buffer.concat([this.head, take]);
      at += take.length;
      if (this.head.length < this.need) continue;
      const got = this.head;
      this.head = Buffer.alloc(0);
      const error = this.step(got);
      if (error) {
        done(error);
        return;
      }
    }
    done();
  }

  private expect(state: State, need: number): void {
    this.state = state;
    this.need = need;
  }

  private step(got: Buffer): Error | null {
    switch (this.state) {
      case 'magic':
        if (!got.equals(SEAL_MAGIC)) return this.fail('it is not a sealed stream (is the other side an older knarr?)');
        this.expect('length', 4);
        return null;
      case 'length': {
        const n = got.readUInt32BE(0);
        if (n > MAX_CHUNK) return this.fail(`its framing is broken (a chunk of ${n} bytes)`);
        if (n === 0) this.expect('trailer-length', 4);
        else this.expect('data', n);
        return null;
      }
      case 'trailer-length': {
        const n = got.readUInt32BE(0);
        if (n === 0 || n > MAX_TRAILER) return this.fail(`its framing is broken (a seal of ${n} bytes)`);
        this.expect('trailer', n);
        return null;
      }
      case 'trailer': {
        let seal: StreamSeal;
        try {
          seal = JSON.parse(got.toString('utf8')) as StreamSeal;
        } catch {
          return this.fail('its seal is not readable');
        }
        if (typeof seal?.bytes !== 'number' || typeof seal.value !== 'string' || seal.algorithm !== SEAL_ALGORITHM)
          return this.fail('its seal is not readable');
        this.seal = seal;
        this.state = 'done';
        return null;
      }
      default:
        return this.fail('its framing is broken');
    }
  }

  override _flush(done: TransformCallback): void {
    const seal = this.seal;
    if (!seal) {
      done(this.fail(`cut short: ${this.bytes} bytes arrived, and no seal`));
      return;
    }
    const got = this.sum.digest();
    if (this.bytes !== seal.bytes) {
      done(this.fail(`${this.bytes} bytes arrived, its sender sealed ${seal.bytes}`));
      return;
    }
    if (got !== seal.value) {
      done(this.fail(`${seal.algorithm} ${got.slice(0, 12)}..., its sender sealed ${seal.value.slice(0, 12)}...`));
      return;
    }
    for (const b of this.held.slice(this.first)) this.push(b);
    this.held = [];
    done();
  }
}
