import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ConflictError, NotFoundError } from '../core/errors.js';
import type { CommitRecord } from '../core/dots.js';
import { validateManifest, type Manifest, type ManifestCommit, type RemoteEndpoint, type StreamFormat, type StreamProducer } from '../core/remote.js';
import { writeJsonAtomic } from './local-state.js';
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

  async putCommit(dot: string, _branch: string, record: CommitRecord, base: string | null, format: StreamFormat, produce: StreamProducer, planArgv: string[]): Promise<ManifestCommit> {
    const file = `${record.id}.${format}`;
    if (this.runner.plan([...planArgv, '>', this.streamPath(dot, file)])) return { record, base, file, bytes: 0, sha256: '' };
    return { record, base, ...(await this.writeStream(dot, file, produce)) };
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
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    return validateManifest(path, JSON.parse(text));
  }

  async writeManifest(m: Manifest): Promise<void> {
    await writeJsonAtomic(`${this.dotDir(m.dot)}/manifest.json`, { ...m, updatedAt: new Date().toISOString() });
  }

  streamPath(dot: string, file: string): string {
    return `${this.dotDir(dot)}/streams/${file}`;
  }

  /** Writes one stream through produce(out), checksummed; visible under its name only once complete. */
  async writeStream(dot: string, file: string, produce: (out: Writable) => Promise<void>): Promise<StoredStream> {
    const final = this.streamPath(dot, file);
    const partial = `${final}.partial`;
    await mkdir(`${this.dotDir(dot)}/streams`, { recursive: true });
    const tap = new Tap();
    const out = createWriteStream(partial);
    try {
      await Promise.all([produce(tap), pipeline(tap, out)]);
    } catch (e) {
      tap.destroy();
      await rm(partial, { force: true });
      throw e;
    }
    await rename(partial, final);
    return { file, bytes: tap.bytes, sha256: tap.hash.digest('hex') };
  }

  /** Reads a stream back after checking its checksum against the manifest: a damaged stream never reaches the pool. */
  async openVerified(dot: string, file: string, sha256: string): Promise<Readable> {
    const path = this.streamPath(dot, file);
    const hash = createHash('sha256');
    await pipeline(createReadStream(path), async function* (src: AsyncIterable<Buffer>) {
      for await (const chunk of src) hash.update(chunk);
    });
    const got = hash.digest('hex');
    if (got !== sha256) throw new ConflictError(`stream ${path} is damaged: sha256 ${got.slice(0, 12)}..., the manifest says ${sha256.slice(0, 12)}...`, { hint: 'push it again from a host that has the commit' });
    return createReadStream(path);
  }
}
