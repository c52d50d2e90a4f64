import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { Readable, Transform, type Writable } from 'node:stream';
import { ConflictError, NotFoundError } from '../core/errors.js';
import type { CommitRecord } from '../core/dots.js';
import { validateManifest, type Manifest, type ManifestCommit, type RemoteEndpoint, type StreamFormat, type StreamSender } from '../core/remote.js';
import { readJson, writeJsonAtomic } from './local-state.js';
import type { Runner } from './runner.js';

/** Hashes and counts bytes as they pass. */
export class Tap extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null, c?: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

/** sha256 and size of a file, read in large chunks. */
export async function hashFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

export interface StoredStream {
  file: string;
  bytes: number;
  sha256: string;
}

/**
 * A file:// remote: <root>/<dot>/manifest.json and <root>/<dot>/streams/<commit>.<format>.
 * Streams are written to a .partial name and renamed when whole; the manifest is replaced atomically.
 */
export class FileRemote implements RemoteEndpoint {
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

  async putCommit(dot: string, _branch: string, record: CommitRecord, base: string | null, format: StreamFormat, sender: StreamSender): Promise<ManifestCommit> {
    const file = `${record.id}.${format}`;
    if (this.runner.plan([...sender.argv, '>', this.streamPath(dot, file)])) return { record, base, file, bytes: 0, sha256: '' };
    // The sender writes straight into the file (no copy through knarr); the checksum is taken from what landed on disk.
    return { record, base, ...(await this.writeStreamFrom(dot, file, sender.argv)) };
  }

  async saveManifest(manifest: Manifest): Promise<void> {
    if (!this.runner.dryRun) await this.writeManifest(manifest);
  }

  async fetchCommit(dot: string, entry: ManifestCommit, consume: (input: Readable, source: string) => Promise<void>): Promise<void> {
    const source = this.streamPath(dot, entry.file);
    // Under --dry-run nothing is read: the receive commands are only recorded.
    await consume(this.runner.dryRun ? Readable.from([]) : await this.openVerified(dot, entry.file, entry.sha256), source);
  }

  dotDir(dot: string): string {
    return `${this.root}/${dot}`;
  }

  async ensureRoot(): Promise<void> {
    try {
      if (!(await stat(this.root)).isDirectory()) throw new ConflictError(`remote ${this.root} is not a directory`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError(`remote directory ${this.root} does not exist`, { hint: `create it (mkdir -p ${this.root}) or mount the disk that holds it` });
      }
      throw e;
    }
  }

  async readManifest(dot: string): Promise<Manifest | null> {
    const path = `${this.dotDir(dot)}/manifest.json`;
    const raw = await readJson<unknown>(path);
    return raw === null ? null : validateManifest(path, raw);
  }

  async writeManifest(m: Manifest): Promise<void> {
    await writeJsonAtomic(`${this.dotDir(m.dot)}/manifest.json`, { ...m, updatedAt: new Date().toISOString() });
  }

  streamPath(dot: string, file: string): string {
    return `${this.dotDir(dot)}/streams/${file}`;
  }

  /** Runs argv with its stdout on the stream's .partial file, then checksums the file and renames it. */
  async writeStreamFrom(dot: string, file: string, argv: string[]): Promise<StoredStream> {
    const final = this.streamPath(dot, file);
    const partial = `${final}.partial`;
    await mkdir(`${this.dotDir(dot)}/streams`, { recursive: true });
    // A new file, not the old one truncated: a sender left over from a killed push may still write to that.
    await rm(partial, { force: true });
    const out = await open(partial, 'w');
    let sum: { sha256: string; bytes: number };
    try {
      await this.runner.pipe(argv, { stdoutFd: out.fd, mutates: false, redirect: `> ${partial}` });
      // On disk before the manifest names it; the checksum is read from the page cache meanwhile.
      [sum] = await Promise.all([hashFile(partial), out.sync()]);
    } catch (e) {
      await out.close();
      await rm(partial, { force: true });
      throw e;
    }
    await out.close();
    const { sha256, bytes } = sum;
    await rename(partial, final);
    return { file, bytes, sha256 };
  }

  /** Reads a stream back after checking its checksum against the manifest: a damaged stream never reaches the pool. */
  async openVerified(dot: string, file: string, sha256: string): Promise<Readable> {
    const path = this.streamPath(dot, file);
    const got = (await hashFile(path)).sha256;
    if (got !== sha256) throw new ConflictError(`stream ${path} is damaged: sha256 ${got.slice(0, 12)}..., the manifest says ${sha256.slice(0, 12)}...`, { hint: 'push it again from a host that has the commit' });
    return createReadStream(path);
  }
}
