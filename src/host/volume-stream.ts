import { createHash } from 'node:crypto';
import { Transform, Writable } from 'node:stream';

/**
 * A node volume as a tar stream: owners by number, modes, device nodes and every extended attribute
 * (overlayfs keeps its whiteouts as device nodes and its opaque directories as trusted.* attributes).
 */
export const volumeSendArgv = (path: string): string[] => ['tar', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', path, '-cf', '-', '.'];
export const volumeReceiveArgv = (path: string): string[] => ['tar', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', path, '-xpf', '-'];

/** The HTTP trailers a volume stream ends with: what the sender wrote, to check end to end. */
export const TRAILER_BYTES = 'x-knarr-bytes';
export const TRAILER_SHA256 = 'x-knarr-sha256';

/** Counts and hashes the bytes that pass. */
export interface Tally {
  bytes: number;
  sha256(): string;
}

/** A pass-through that tallies what goes through it (a receiver's side). */
export function tallying(): { stream: Transform; tally: Tally } {
  const hash = createHash('sha256');
  let digest: string | null = null;
  const tally: Tally = { bytes: 0, sha256: () => (digest ??= hash.digest('hex')) };
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      tally.bytes += chunk.length;
      cb(null, chunk);
    },
  });
  return { stream, tally };
}

/** A sink that writes into an HTTP response with backpressure and ends it with the tally as trailers (a sender's side). */
export function intoResponse(res: import('node:http').ServerResponse): Writable {
  const hash = createHash('sha256');
  let bytes = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      if (res.write(chunk)) cb();
      else res.once('drain', () => cb());
    },
    final(cb) {
      res.addTrailers({ [TRAILER_BYTES]: String(bytes), [TRAILER_SHA256]: hash.digest('hex') });
      res.end(() => cb());
    },
  });
  // The receiver went away: the sender stops rather than wait on a drain that never comes.
  res.once('close', () => {
    if (!res.writableFinished) sink.destroy(new Error('the receiver closed the connection'));
  });
  return sink;
}
