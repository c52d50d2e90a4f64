import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SealedStream } from './stream-check.js';
import { summer } from './checksum.js';
import { ConflictError, NotFoundError } from '../core/errors.js';
import type { CommitRecord } from '../core/dots.js';
import {
  manifestVersion,
  streamChecksum,
  validateManifest,
  type ChecksumAlgorithm,
  type Manifest,
  type ManifestCommit,
  type RemoteEndpoint,
  type RemoteLockWait,
  type StreamFormat,
  type StreamSender,
} from '../core/remote.js';
import { writeJsonAtomic } from './local-state.js';
import { acquireLock, holderAlive, type LockHolder } from './lock.js';
import type { Runner } from './runner.js';
import { shellCommand } from '../core/shell.js';

/** Hashes and counts bytes as they pass. */
export class Tap extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly onBytes?: (bytes: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null, c?: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
    done(null, chunk);
  }
}

const CHUNK = 1024 * 1024;
/** A push lock's holder touches it this often; one untouched for REMOTE_LOCK_STALE_MS is a lost holder (another host cannot check its pid). */
const REMOTE_LOCK_REFRESH_MS = 5_000;
export const REMOTE_LOCK_STALE_MS = 60_000;
const FOLLOW_POLL_MS = 2;
const FLUSH_POLL_MS = 20;

/** New streams get CRC-32 (several GB/s; sha256 costs as much CPU as the send): it guards against damage; a stream forger could rewrite the manifest too. */
export const STREAM_CHECKSUM: ChecksumAlgorithm = 'crc32';

export { summer } from './checksum.js';

/** Checksum and size of a file, read in large chunks. */
export async function checksumFile(path: string, algorithm: ChecksumAlgorithm): Promise<{ checksum: string; bytes: number }> {
  const fh = await open(path, 'r');
  try {
    return await followFile(fh, algorithm, () => true);
  } finally {
    await fh.close();
  }
}

/** Checksums a file another process is writing, front to back, until a read finds nothing after finished() was true. */
export async function followFile(
  fh: FileHandle,
  algorithm: ChecksumAlgorithm,
  finished: () => boolean,
  onBytes?: (bytes: number) => void,
): Promise<{ checksum: string; bytes: number }> {
  const sum = summer(algorithm);
  // One buffer for the whole file: a fresh buffer per chunk costs more in page faults than the checksum.
  const buf = Buffer.allocUnsafe(CHUNK);
  let bytes = 0;
  for (;;) {
    const last = finished();
    const { bytesRead } = await fh.read(buf, 0, buf.length, bytes);
    if (bytesRead > 0) {
      sum.update(buf.subarray(0, bytesRead));
      bytes += bytesRead;
      onBytes?.(bytesRead);
    } else if (last) {
      return { checksum: sum.digest(), bytes };
    } else {
      await sleep(FOLLOW_POLL_MS);
    }
  }
}

/** Flushes what is written so far to disk while the writer runs, so the final fsync has little left to do. */
async function flushWhile(fh: FileHandle, finished: () => boolean): Promise<void> {
  while (!finished()) {
    await fh.datasync();
    await sleep(FLUSH_POLL_MS);
  }
}

export interface StoredStream {
  file: string;
  bytes: number;
  sha256: string;
  crc32?: string;
}

/**
 * A file:// remote: <root>/<dot>/manifest.json and <root>/<dot>/streams/<commit>.<format>.
 * Streams are written to a .partial name and renamed when whole; the manifest is replaced atomically.
 */
export class FileRemote implements RemoteEndpoint {
  /** Each dot's manifest text as this push last read or wrote it: the version a save checks against. */
  private readonly seen = new Map<string, string | null>();

  constructor(
    readonly root: string,
    private readonly runner: Runner,
  ) {}

  get url(): string {
    return `file://${this.root}`;
  }

  ensureReachable(): Promise<void> {
    return this.ensureRoot();
  }

  async putCommit(
    dot: string,
    _branch: string,
    record: CommitRecord,
    base: string | null,
    format: StreamFormat,
    sender: StreamSender,
  ): Promise<ManifestCommit> {
    const file = `${record.id}.${format}`;
    if (this.runner.plan([...sender.argv, '>', this.streamPath(dot, file)])) return { record, base, file, bytes: 0, sha256: '' };
    // The sender writes straight into the file (no copy through knarr); the checksum is read from what lands there.
    return { record, base, ...(await this.writeStreamFrom(dot, file, sender.argv, sender.progress)) };
  }

  /** A push lock file beside the manifest: pid, host and what holds it; broken when its holder is gone or it went stale. */
  async withPushLock<T>(dot: string, how: RemoteLockWait, fn: () => Promise<T>): Promise<T> {
    if (this.runner.dryRun) return fn();
    const path = `${this.dotDir(dot)}/manifest.lock`;
    const who = (h: LockHolder) => `pid ${h.pid}${h.host ? ` on ${h.host}` : ''}, ${h.what ?? 'knarr'}, last seen ${Math.round(h.ageMs / 1000)}s ago`;
    const release = await acquireLock(path, {
      what: 'dot push',
      // On this machine a dead pid frees it at once; from another, only its age can tell.
      stale: (h) => (h.host === null || h.host === hostname() ? !holderAlive(h) : h.ageMs > REMOTE_LOCK_STALE_MS),
      wait: how.wait,
      signal: how.signal,
      refreshMs: REMOTE_LOCK_REFRESH_MS,
      busy: (h) =>
        new ConflictError(`remote ${this.url} is taking a push of ${dot} (${who(h)})`, {
          hint:
            `run it again when that push is done, or without --no-wait to wait; a lock left by a lost host goes ` +
            `after ${REMOTE_LOCK_STALE_MS / 1000}s (${path})`,
        }),
      onWait: (h) => how.onWait(`remote ${this.url} is taking a push of ${dot} (${who(h)}); waiting for it (--no-wait fails at once)`),
    });
    try {
      return await fn();
    } finally {
      await release();
    }
  }

  async saveManifest(manifest: Manifest): Promise<void> {
    if (!this.runner.dryRun) await this.writeManifest(manifest);
  }

  async fetchCommit(dot: string, entry: ManifestCommit, consume: (input: Readable, source: string) => Promise<void>): Promise<void> {
    const source = this.streamPath(dot, entry.file);
    // Under --dry-run nothing is read: the receive commands are only recorded.
    await consume(this.runner.dryRun ? Readable.from([]) : await this.openVerified(dot, entry), source);
  }

  dotDir(dot: string): string {
    return `${this.root}/${dot}`;
  }

  async ensureRoot(): Promise<void> {
    try {
      if (!(await stat(this.root)).isDirectory()) throw new ConflictError(`remote ${this.root} is not a directory`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError(`remote directory ${this.root} does not exist`, {
          hint: `create it (${shellCommand(['mkdir', '-p', this.root])}) or mount the disk that holds it`,
        });
      }
      throw e;
    }
  }

  private manifestText(dot: string): string | null {
    try {
      return readFileSync(`${this.dotDir(dot)}/manifest.json`, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async readManifest(dot: string): Promise<Manifest | null> {
    const path = `${this.dotDir(dot)}/manifest.json`;
    const text = this.manifestText(dot);
    this.seen.set(dot, text);
    if (text === null) return null;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new ConflictError(`${path} is not valid JSON`, { hint: 'push the dot there again from a host that has it, after moving the file aside' });
    }
    return validateManifest(path, raw);
  }

  /** Replaces the manifest only if it is still the version this push read (or last wrote): a push never overwrites another's commits. */
  async writeManifest(m: Manifest): Promise<void> {
    const path = `${this.dotDir(m.dot)}/manifest.json`;
    if (this.seen.has(m.dot) && this.manifestText(m.dot) !== this.seen.get(m.dot)) {
      throw new ConflictError(`the manifest of ${m.dot} on ${this.url} was changed by another push while this one ran`, {
        hint: `pull what it pushed, then push again: knarr dot pull ${this.url}/${m.dot}`,
      });
    }
    await writeJsonAtomic(path, { ...m, version: manifestVersion(m), updatedAt: new Date().toISOString() });
    this.seen.set(m.dot, this.manifestText(m.dot));
  }

  streamPath(dot: string, file: string): string {
    return `${this.dotDir(dot)}/streams/${file}`;
  }

  /** Runs argv with its stdout on the stream's .partial file, checksums the bytes as they land, then renames it. */
  async writeStreamFrom(dot: string, file: string, argv: string[], onBytes?: (bytes: number) => void): Promise<StoredStream> {
    const final = this.streamPath(dot, file);
    // One writer's own name: two pushes of one commit never rename each other's file away.
    const partial = `${final}.${process.pid}.partial`;
    await mkdir(`${this.dotDir(dot)}/streams`, { recursive: true });
    // A new file, not the old one truncated: a sender left over from a killed push may still write to that. Under the push lock, any other is a leftover.
    for (const f of await readdir(`${this.dotDir(dot)}/streams`))
      if (f.startsWith(`${file}.`) && f.endsWith('.partial')) await rm(`${this.dotDir(dot)}/streams/${f}`, { force: true });
    const out = await open(partial, 'w');
    let back: FileHandle | undefined;
    let sum: { checksum: string; bytes: number };
    try {
      back = await open(partial, 'r');
      let sent = false;
      const sending = this.runner.pipe(argv, { stdoutFd: out.fd, mutates: false, redirect: `> ${partial}` }).finally(() => (sent = true));
      // The checksum and the flush to disk run while the sender writes, not after it: the stream is not read a second time.
      const settled = await Promise.allSettled([sending, followFile(back, STREAM_CHECKSUM, () => sent, onBytes), flushWhile(out, () => sent)] as const);
      for (const r of settled) if (r.status === 'rejected') throw r.reason;
      sum = (settled[1] as PromiseFulfilledResult<{ checksum: string; bytes: number }>).value;
      // On disk before the manifest names it.
      await out.sync();
      // A sender writes its stdout front to back: a file that is not what was read means something else wrote to it.
      const { size } = await out.stat();
      if (size !== sum.bytes) throw new ConflictError(`stream ${partial} changed while it was written (${size} bytes on disk, ${sum.bytes} read)`);
    } catch (e) {
      await back?.close();
      await out.close();
      await rm(partial, { force: true });
      throw e;
    }
    await back.close();
    await out.close();
    await rename(partial, final);
    return STREAM_CHECKSUM === 'crc32' ? { file, bytes: sum.bytes, sha256: '', crc32: sum.checksum } : { file, bytes: sum.bytes, sha256: sum.checksum };
  }

  /** Opens a stream checked while it is read, against the manifest's size and checksum: one read, and a damaged stream never reaches the pool whole. */
  async openVerified(dot: string, entry: ManifestCommit): Promise<Readable> {
    const path = this.streamPath(dot, entry.file);
    const hint = 'push it again from a host that has the commit';
    const want = streamChecksum(entry);
    if (!want) throw new ConflictError(`stream ${path} has no checksum in the manifest`, { hint });
    // Opened here so a missing file is an error before anything is received.
    const fh = await open(path, 'r');
    const sealed = new SealedStream({ bytes: entry.bytes, algorithm: want.algorithm, value: want.value }, `stream ${path}`, hint);
    pipeline(fh.createReadStream({ highWaterMark: CHUNK }), sealed).catch(() => undefined);
    // Its failure reaches the receiver through the stream it feeds, and stays in sealed.failure; it is never an uncaught error.
    sealed.on('error', () => undefined);
    return sealed;
  }
}
