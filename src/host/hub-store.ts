import { createHash, randomBytes, timingSafeEqual, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError } from '../core/errors.js';
import { HUB_TOKEN_RE, checkHubManifest, manifestBlobs, type HubAccess, type HubTokenRecord } from '../core/hub.js';
import type { Manifest } from '../core/remote.js';
import { acquireLock, holderAlive } from './lock.js';
import { readJson, syncDir, writeFileAtomic, writeJsonAtomic } from './local-state.js';

/** Why the hub refused a step: the HTTP side turns each kind into its status. */
export type HubRefusalKind = 'not-found' | 'precondition' | 'missing-blob' | 'offset' | 'busy' | 'mismatch';

export class HubRefusal extends Error {
  constructor(
    readonly kind: HubRefusalKind,
    message: string,
    /** The bytes an upload holds, for an offset refusal. */
    readonly offset?: number,
  ) {
    super(message);
  }
}

interface TokensFile {
  version: 1;
  tokens: HubTokenRecord[];
}

/** A file `hub gc` removes (or, under --dry-run, would): an abandoned upload, or a blob no manifest names. */
export interface HubGarbage {
  user: string;
  dot: string;
  kind: 'upload' | 'blob';
  name: string;
  bytes: number;
  modifiedAt: string;
}

/** A dot's meta.json: whether pulling it needs a token. */
export interface HubDotMeta {
  private: boolean;
  createdAt: string;
}

/** How long a lock file (tokens, a dot's manifest) is waited for before the step fails. */
const LOCK_WAIT_MS = 30_000;
/** How long a HEAD or PATCH of an upload waits for a PATCH still running on it (a cut connection the server has not seen end yet). */
const RUNNING_WAIT_MS = 5_000;
const WRITE_HIGH_WATER = 1024 * 1024;

const sha256Hex = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** The directories (dirs) or files in dir, by name; none when dir is missing. */
async function entryNames(dir: string, dirs: boolean): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true }).catch(() => [])).filter((d) => (dirs ? d.isDirectory() : d.isFile())).map((d) => d.name);
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    const st = await stat(path);
    return st.isFile() ? st.size : null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * A hub's directory: tokens.json (tokens as sha256 only), and per dot dots/USER/DOT/{manifest.json, meta.json,
 * blobs/<sha256>, uploads/<id>}. Callers have checked every name (core/hub.ts) before they reach a path here.
 */
export class HubStore {
  private tokens: { key: string; byId: Map<string, HubTokenRecord> } | null = null;
  /** One manifest writer per dot in this process; the lock file covers other processes. */
  private readonly dotTurns = new Map<string, Promise<void>>();
  /** The PATCH or finish running on each upload. */
  private readonly running = new Map<string, Promise<unknown>>();
  /** The sha256 of each upload's bytes so far, while it is known without reading the file again. */
  private readonly hashes = new Map<string, { hash: Hash; at: number }>();

  constructor(readonly dir: string) {}

  private get tokensPath(): string {
    return `${this.dir}/tokens.json`;
  }

  dotDir(user: string, dot: string): string {
    return `${this.dir}/dots/${user}/${dot}`;
  }

  blobPath(user: string, dot: string, sha256: string): string {
    return `${this.dotDir(user, dot)}/blobs/${sha256}`;
  }

  private uploadPath(user: string, dot: string, id: string): string {
    return `${this.dotDir(user, dot)}/uploads/${id}`;
  }

  private async lock(path: string, what: string): Promise<() => Promise<void>> {
    return acquireLock(path, {
      what,
      stale: (h) => !holderAlive(h),
      wait: true,
      busy: () => new ConflictError(`${path} is held`),
      onWait: () => undefined,
      signal: AbortSignal.timeout(LOCK_WAIT_MS),
    });
  }

  // --- tokens

  private async readTokens(): Promise<TokensFile> {
    const f = await readJson<TokensFile>(this.tokensPath);
    return f && Array.isArray(f.tokens) ? f : { version: 1, tokens: [] };
  }

  private async changeTokens<T>(change: (f: TokensFile) => T): Promise<T> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const release = await this.lock(`${this.dir}/tokens.lock`, 'hub tokens');
    try {
      const f = await this.readTokens();
      const out = change(f);
      await writeJsonAtomic(this.tokensPath, f);
      return out;
    } finally {
      await release();
    }
  }

  /** A new token for user: the whole token is returned once, only its sha256 is kept. */
  async createToken(user: string, access: HubAccess): Promise<{ record: HubTokenRecord; token: string }> {
    const id = randomBytes(8).toString('hex');
    const token = `knh_${id}_${randomBytes(32).toString('hex')}`;
    const record: HubTokenRecord = { id, user, access, sha256: sha256Hex(token), createdAt: new Date().toISOString() };
    await this.changeTokens((f) => f.tokens.push(record));
    return { record, token };
  }

  async listTokens(): Promise<HubTokenRecord[]> {
    return (await this.readTokens()).tokens;
  }

  /** The revoked token's record, or null when there was none with that id. */
  async revokeToken(id: string): Promise<HubTokenRecord | null> {
    return this.changeTokens((f) => {
      const i = f.tokens.findIndex((t) => t.id === id);
      return i < 0 ? null : f.tokens.splice(i, 1)[0]!;
    });
  }

  /** The record of a valid token, or null. tokens.json is read again whenever it changed, so a revoke takes effect at once. */
  async authenticate(token: string): Promise<HubTokenRecord | null> {
    const m = HUB_TOKEN_RE.exec(token);
    if (!m) return null;
    const st = await stat(this.tokensPath).catch(() => null);
    const key = st ? `${st.ino}:${st.mtimeMs}:${st.size}` : 'none';
    if (this.tokens?.key !== key) {
      const byId = new Map((st ? (await this.readTokens()).tokens : []).map((t) => [t.id, t]));
      this.tokens = { key, byId };
    }
    const record = this.tokens.byId.get(m[1]!);
    if (!record) return null;
    const want = Buffer.from(record.sha256, 'hex');
    const got = createHash('sha256').update(token).digest();
    return want.length === got.length && timingSafeEqual(want, got) ? record : null;
  }

  // --- dots

  async readManifest(user: string, dot: string): Promise<{ text: string; etag: string } | null> {
    try {
      const text = await readFile(`${this.dotDir(user, dot)}/manifest.json`, 'utf8');
      return { text, etag: sha256Hex(text) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async readMeta(user: string, dot: string): Promise<HubDotMeta | null> {
    return readJson<HubDotMeta>(`${this.dotDir(user, dot)}/meta.json`);
  }

  /** Whether the dot needs a token to pull: a dot without meta.json (none, or one half made) is treated as private. */
  async isPrivate(user: string, dot: string): Promise<boolean> {
    return (await this.readMeta(user, dot))?.private !== false;
  }

  /** Every dot with a manifest (of user, or of all users), with its manifest and privacy. */
  async listDots(user?: string): Promise<{ user: string; manifest: Manifest; private: boolean }[]> {
    const users = user === undefined ? (await entryNames(`${this.dir}/dots`, true)).sort() : [user];
    const out: { user: string; manifest: Manifest; private: boolean }[] = [];
    for (const u of users) {
      for (const dot of (await entryNames(`${this.dir}/dots/${u}`, true)).sort()) {
        const m = await this.readManifest(u, dot);
        if (!m) continue;
        out.push({ user: u, manifest: JSON.parse(m.text) as Manifest, private: await this.isPrivate(u, dot) });
      }
    }
    return out;
  }

  /**
   * What `hub gc` removes: uploads not written to since cutoff (ms since the epoch), and blobs no manifest names that
   * are as old (a push uploads its blobs before its manifest: a young one may be about to be named). Each dot is
   * judged as its only manifest writer, so no manifest naming a blob lands while the blob goes. dryRun lists only.
   */
  async collect(cutoff: number, dryRun: boolean): Promise<HubGarbage[]> {
    const out: HubGarbage[] = [];
    for (const user of (await entryNames(`${this.dir}/dots`, true)).sort()) {
      for (const dot of (await entryNames(`${this.dir}/dots/${user}`, true)).sort()) {
        const found = await this.dotTurn(user, dot, async () => {
          const m = await this.readManifest(user, dot);
          const named = m ? manifestBlobs(JSON.parse(m.text) as Manifest) : new Map<string, number>();
          const here: HubGarbage[] = [];
          for (const [kind, sub] of [
            ['upload', 'uploads'],
            ['blob', 'blobs'],
          ] as const) {
            for (const name of (await entryNames(`${this.dotDir(user, dot)}/${sub}`, false)).sort()) {
              if (kind === 'blob' && named.has(name)) continue;
              const path = `${this.dotDir(user, dot)}/${sub}/${name}`;
              const st = await stat(path).catch(() => null);
              if (!st || st.mtimeMs >= cutoff || this.running.has(`${user}/${dot}/${name}`)) continue;
              if (!dryRun) await rm(path, { force: true });
              here.push({ user, dot, kind, name, bytes: st.size, modifiedAt: st.mtime.toISOString() });
            }
          }
          return here;
        });
        out.push(...found);
      }
    }
    return out;
  }

  /** Runs fn as the dot's only manifest writer: in this process by turns, across processes by the lock file. */
  private async dotTurn<T>(user: string, dot: string, fn: () => Promise<T>): Promise<T> {
    const key = `${user}/${dot}`;
    const before = this.dotTurns.get(key) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    const turn = before.then(() => mine);
    this.dotTurns.set(key, turn);
    await before;
    try {
      await mkdir(this.dotDir(user, dot), { recursive: true });
      const release = await this.lock(`${this.dotDir(user, dot)}/manifest.lock`, `hub manifest of ${key}`);
      try {
        return await fn();
      } finally {
        await release();
      }
    } finally {
      done();
      if (this.dotTurns.get(key) === turn) this.dotTurns.delete(key);
    }
  }

  /**
   * Publishes a manifest: checked (names, every blob held with its size), then written atomically as the dot's
   * only writer, when the manifest on disk still has the etag the pusher read (ifMatch) or there is none (create).
   */
  async putManifest(user: string, dot: string, raw: unknown, cond: { ifMatch: string | null; create: boolean; private: boolean }): Promise<string> {
    const m = checkHubManifest(raw, user, dot);
    return this.dotTurn(user, dot, async () => {
      const now = await this.readManifest(user, dot);
      if (cond.create && now) throw new HubRefusal('precondition', `${user}/${dot} exists already; read its manifest and send If-Match with its etag`);
      if (!cond.create && !now) throw new HubRefusal('precondition', `${user}/${dot} has no manifest; create it with If-None-Match: *`);
      if (!cond.create && now && now.etag !== cond.ifMatch)
        throw new HubRefusal('precondition', `the manifest of ${user}/${dot} changed since it was read (another push landed); read it again`);
      const missing: string[] = [];
      for (const [sha, bytes] of manifestBlobs(m)) {
        const size = await sizeOf(this.blobPath(user, dot, sha));
        if (size !== bytes) missing.push(size === null ? sha : `${sha} (holds ${size} bytes, the manifest says ${bytes})`);
      }
      if (missing.length > 0)
        throw new HubRefusal(
          'missing-blob',
          `the manifest names blobs the hub does not hold: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`,
        );
      if (cond.create)
        await writeJsonAtomic(`${this.dotDir(user, dot)}/meta.json`, { private: cond.private, createdAt: new Date().toISOString() } satisfies HubDotMeta);
      const text = `${JSON.stringify(m, null, 2)}\n`;
      await writeFileAtomic(`${this.dotDir(user, dot)}/manifest.json`, text);
      return sha256Hex(text);
    });
  }

  async blobSize(user: string, dot: string, sha256: string): Promise<number | null> {
    return sizeOf(this.blobPath(user, dot, sha256));
  }

  blobStream(user: string, dot: string, sha256: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.blobPath(user, dot, sha256), range ? { start: range.start, end: range.end } : {});
  }

  // --- uploads

  /** Waits a little for a PATCH still running on the upload; true when none runs now. */
  private async settled(key: string): Promise<boolean> {
    const until = Date.now() + RUNNING_WAIT_MS;
    while (this.running.has(key) && Date.now() < until) await Promise.race([this.running.get(key)!.catch(() => undefined), sleep(100)]);
    return !this.running.has(key);
  }

  private async exclusive<T>(user: string, dot: string, id: string, fn: (key: string) => Promise<T>): Promise<T> {
    const key = `${user}/${dot}/${id}`;
    await this.settled(key);
    // Checked and claimed in one step, with no await between: two PATCHes arriving at once never both run.
    if (this.running.has(key)) {
      const held = (await sizeOf(this.uploadPath(user, dot, id))) ?? 0;
      throw new HubRefusal('busy', `another PATCH or finish of upload ${id} is running`, held);
    }
    const p = fn(key);
    this.running.set(key, p);
    try {
      return await p;
    } finally {
      this.running.delete(key);
    }
  }

  /** The bytes an upload holds on disk, or null when there is none; a PATCH still running is waited for a moment. */
  async uploadOffset(user: string, dot: string, id: string): Promise<number | null> {
    await this.settled(`${user}/${dot}/${id}`);
    return sizeOf(this.uploadPath(user, dot, id));
  }

  /**
   * Appends body to the upload from offset, which must be the bytes it holds (0 creates it). Written as it
   * arrives, with backpressure, and fsynced; a body cut short keeps what reached the disk. Returns the new size.
   */
  async appendUpload(user: string, dot: string, id: string, offset: number, body: Readable): Promise<number> {
    return this.exclusive(user, dot, id, async (key) => {
      const path = this.uploadPath(user, dot, id);
      const held = await sizeOf(path);
      if ((held ?? 0) !== offset || (held === null && offset !== 0))
        throw new HubRefusal('offset', `upload ${id} holds ${held ?? 0} bytes; send Upload-Offset: ${held ?? 0} and the bytes from there`, held ?? 0);
      await mkdir(`${this.dotDir(user, dot)}/uploads`, { recursive: true });
      const known = this.hashes.get(key);
      const state = offset === 0 ? { hash: createHash('sha256'), at: 0 } : known?.at === offset ? known : null;
      this.hashes.delete(key);
      let seen = 0;
      const hashing = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          state?.hash.update(chunk);
          seen += chunk.length;
          cb(null, chunk);
        },
      });
      const fh = await open(path, 'a', 0o600);
      const out = createWriteStream('', { fd: fh, autoClose: false, highWaterMark: WRITE_HIGH_WATER });
      try {
        await pipeline(body, hashing, out);
        if (state) this.hashes.set(key, { hash: state.hash, at: offset + seen });
      } finally {
        // A cut body: the write under way ends first, so the size on disk is settled before the next HEAD.
        if (!out.closed) {
          const closed = once(out, 'close').catch(() => undefined);
          out.destroy();
          await closed;
        }
        await fh.sync().catch(() => undefined);
        await fh.close();
      }
      return (await sizeOf(path)) ?? 0;
    });
  }

  /** Checks the whole upload's size and sha256, then makes it blobs/<sha256> (fsynced); a mismatch deletes the upload. */
  async finishUpload(user: string, dot: string, id: string, bytes: number, sha256: string): Promise<void> {
    await this.exclusive(user, dot, id, async (key) => {
      const path = this.uploadPath(user, dot, id);
      const held = await sizeOf(path);
      if (held === null) throw new HubRefusal('not-found', `no upload ${id} of ${user}/${dot}`);
      const drop = async (why: string) => {
        this.hashes.delete(key);
        await rm(path, { force: true });
        throw new HubRefusal('mismatch', `${why}; the upload is deleted, send it again from byte 0`);
      };
      if (held !== bytes) return drop(`upload ${id} holds ${held} bytes, not ${bytes}`);
      const known = this.hashes.get(key);
      let got: string;
      if (known?.at === held) got = known.hash.digest('hex');
      else {
        // Received before a restart or across a cut: its hash is made from the file once.
        const hash = createHash('sha256');
        await pipeline(createReadStream(path), hash);
        got = hash.digest('hex');
      }
      this.hashes.delete(key);
      if (got !== sha256) return drop(`upload ${id} has sha256 ${got}, not ${sha256}`);
      const blobs = `${this.dotDir(user, dot)}/blobs`;
      await mkdir(blobs, { recursive: true });
      await rename(path, `${blobs}/${sha256}`);
      await syncDir(blobs);
      await syncDir(`${this.dotDir(user, dot)}/uploads`);
    });
  }
}
