import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import type { ChecksumAlgorithm } from '../core/remote.js';

interface Summer {
  update(chunk: Buffer): void;
  digest(): string;
}

let crcTable: Uint32Array | undefined;
/** zlib's CRC-32 in plain JS, for node before 20.15 (no zlib.crc32). */
function crc32Js(chunk: Buffer, crc: number): number {
  crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let c = ~crc >>> 0;
  for (let i = 0; i < chunk.length; i++) c = crcTable[(c ^ chunk[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** A running checksum of a stream: sha256, or CRC-32 (zlib's where node has it). */
export function summer(algorithm: ChecksumAlgorithm): Summer {
  if (algorithm === 'sha256') {
    const hash = createHash('sha256');
    return { update: (chunk) => void hash.update(chunk), digest: () => hash.digest('hex') };
  }
  const crc32 = (zlib as { crc32?: (data: Buffer, value?: number) => number }).crc32 ?? crc32Js;
  let value = 0;
  return { update: (chunk) => void (value = crc32(chunk, value)), digest: () => value.toString(16).padStart(8, '0') };
}
