import { Transform, type TransformCallback } from 'node:stream';
import { ConflictError } from '../core/errors.js';
import type { ChecksumAlgorithm } from '../core/remote.js';
import { summer } from './checksum.js';

/** What the sender said a stream is: its size and its checksum. */
export interface StreamSeal {
  bytes: number;
  algorithm: ChecksumAlgorithm;
  value: string;
}

/** Bytes held back until the end is checked: a stream cut or altered never reaches its receiver whole, so the receive fails. */
export const HOLD_BACK_BYTES = 256 * 1024;

/**
 * Passes a stream through while counting and checksumming it, holding back its last HOLD_BACK_BYTES until the end
 * matches the seal; a stream longer than sealed fails at once. A failed check errors the stream (the receiving command
 * then sees it cut short), and `failure` says why, for a caller to refuse what the receiver may have made of it.
 */
export class SealedStream extends Transform {
  private readonly sum;
  private held: Buffer[] = [];
  private heldBytes = 0;
  bytes = 0;
  failure: Error | null = null;

  constructor(
    private readonly seal: StreamSeal,
    private readonly what: string,
    private readonly hint = 'push it again from a host that has the commit',
  ) {
    super();
    this.sum = summer(seal.algorithm);
  }

  private fail(message: string): Error {
    this.failure = new ConflictError(`${this.what} is damaged: ${message}`, { hint: this.hint });
    return this.failure;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.sum.update(chunk);
    this.bytes += chunk.length;
    if (this.bytes > this.seal.bytes) {
      done(this.fail(`more than the ${this.seal.bytes} bytes its sender sealed`));
      return;
    }
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    // Release what is no longer among the last HOLD_BACK_BYTES.
    while (this.held.length > 1 && this.heldBytes - this.held[0]!.length >= HOLD_BACK_BYTES) {
      const first = this.held.shift()!;
      this.heldBytes -= first.length;
      this.push(first);
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    const got = this.sum.digest();
    if (this.bytes !== this.seal.bytes) done(this.fail(`${this.bytes} bytes arrived, its sender sealed ${this.seal.bytes}`));
    else if (got !== this.seal.value) done(this.fail(`${this.seal.algorithm} ${got.slice(0, 12)}..., its sender sealed ${this.seal.value.slice(0, 12)}...`));
    else {
      for (const b of this.held) this.push(b);
      this.held = [];
      done();
    }
  }
}
