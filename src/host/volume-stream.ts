import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

/**
 * A node volume as a tar stream: owners by number, modes, device nodes and every extended attribute
 * (overlayfs keeps its whiteouts as device nodes and its opaque directories as trusted.* attributes).
 */
export const volumeSendArgv = (path: string): string[] => ['tar', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', path, '-cf', '-', '.'];
export const volumeReceiveArgv = (path: string): string[] => ['tar', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', path, '-xpf', '-'];

/** A stream's last bytes: this magic, the stream's length (64-bit) and its sha256, what the receiver checks against. */
const MAGIC = Buffer.from('KNARRVOL');
export const TRAILER_LENGTH = MAGIC.length + 8 + 32;

/** What passed through a stream, and for a received one what its sender said it sent (null: the stream broke off). */
export interface Tally {
  bytes: number;
  sha256: string;
  sent?: { bytes: number; sha256: string } | null;
}

/** The sender's side: passes the stream on and appends its trailer (length and sha256) at its end. */
export function withTrailer(): Transform & { tally: Tally } {
  const hash = createHash('sha256');
  const tally: Tally = { bytes: 0, sha256: '' };
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      tally.bytes += chunk.length;
      cb(null, chunk);
    },
    flush(cb) {
      const digest = hash.digest();
      tally.sha256 = digest.toString('hex');
      const size = Buffer.alloc(8);
      size.writeBigUInt64BE(BigInt(tally.bytes));
      cb(null, Buffer.concat([MAGIC, size, digest]));
    },
  });
  return Object.assign(t, { tally });
}

/** The receiver's side: passes the stream on without its trailer, which it reads at the end into tally.sent. */
export function withoutTrailer(): Transform & { tally: Tally } {
  const hash = createHash('sha256');
  const tally: Tally = { bytes: 0, sha256: '', sent: null };
  // The last TRAILER_LENGTH bytes seen: held back until more come, or read as the trailer at the end.
  let held = Buffer.alloc(0);
  const pass = (t: Transform, b: Buffer) => {
    if (b.length === 0) return;
    hash.update(b);
    tally.bytes += b.length;
    t.push(b);
  };
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (chunk.length >= TRAILER_LENGTH) {
        pass(this, held);
        pass(this, chunk.subarray(0, chunk.length - TRAILER_LENGTH));
        held = Buffer.from(chunk.subarray(chunk.length - TRAILER_LENGTH));
      } else {
        const all = Buffer.concat([held, chunk]);
        pass(this, all.subarray(0, Math.max(0, all.length - TRAILER_LENGTH)));
        held = Buffer.from(all.subarray(Math.max(0, all.length - TRAILER_LENGTH)));
      }
      cb();
    },
    flush(cb) {
      if (held.length === TRAILER_LENGTH && held.subarray(0, MAGIC.length).equals(MAGIC))
        tally.sent = { bytes: Number(held.readBigUInt64BE(MAGIC.length)), sha256: held.subarray(MAGIC.length + 8).toString('hex') };
      else pass(this, held);
      tally.sha256 = hash.digest('hex');
      cb();
    },
  });
  return Object.assign(t, { tally });
}
