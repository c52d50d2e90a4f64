import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Agent, ClientRequest, IncomingMessage } from 'node:http';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CommitRecord } from '../core/dots.js';
import { ConflictError, FailureError, NoSpaceError, NotFoundError, PrerequisiteError, UserError, type KnarrError } from '../core/errors.js';
import {
  mergeManifests,
  validateManifest,
  type Manifest,
  type ManifestCommit,
  type RemoteEndpoint,
  type StreamFormat,
  type StreamSender,
} from '../core/remote.js';
import { validateHubUser } from '../core/names.js';
import { shellCommand } from '../core/shell.js';
import type { Runner } from './runner.js';
import { SealedStream } from './stream-check.js';

/** Where a hub is and how this side proves who it is. */
export interface HubTarget {
  /** scheme://host:port */
  base: string;
  /** The account the dots live under; null to ask the hub whose token this is (GET /hub/v1/whoami). */
  user: string | null;
  tokenFile: string | null;
  caFile: string | null;
  /** How an operator gives this remote a token, or a CA, for the hints of a refusal. */
  tokenHint: string;
  caHint: string;
  /** Why this host was tried, when the operator may have meant something else (a remote's name). */
  reachHint?: string;
  /** A dot this push creates on the hub is private (pulled only with a token). */
  private: boolean;
  /** Told what a user should know (a push resumed, an upload sent again). */
  warn(message: string): void;
}

/** A connection idle this long (no byte either way) is given up: a hub host gone silent does not hang a boot. */
const IDLE_MS = 120_000;
/** Tries of an upload that another connection still holds (a killed push's, until the hub sees it gone). */
const BUSY_ATTEMPTS = 10;
/** Tries of a manifest write that another push beat to it. */
const MANIFEST_ATTEMPTS = 20;

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ETIMEDOUT']);

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** Counts and sha256-sums a whole stream, passing on only the bytes from `skip` on (those the hub does not hold yet). */
class SkipAndSum extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(
    private readonly skip: number,
    private readonly onBytes?: (bytes: number) => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    const start = this.bytes;
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
    if (this.bytes <= this.skip) done();
    else done(null, start >= this.skip ? chunk : chunk.subarray(this.skip - start));
  }
}

/** The error in a hub's JSON answer, or its text. */
function errorText(body: Buffer): string {
  const text = body.toString('utf8').trim();
  try {
    return (JSON.parse(text) as { error?: string }).error ?? text;
  } catch {
    return text.slice(0, 300);
  }
}

/**
 * A hub served by a knarr agent (`knarr daemon --hub DIR`), over http or https: dots under
 * /hub/v1/dots/USER/DOT, each commit's stream a blob named by its sha256, uploaded resumably
 * and published with the manifest; manifest writes are compare-and-swap on its ETag.
 */
export class HubRemote implements RemoteEndpoint {
  private user: string | null;
  private token: string | null = null;
  private agent: Agent | null = null;
  private request: typeof import('node:http').request | null = null;
  /** Each dot's manifest ETag as last read or written here; null where the hub had none. */
  private readonly etags = new Map<string, string | null>();
  /** Bytes of each commit's stream the hub held already when this push sent it. */
  private readonly resumed = new Map<string, number>();

  constructor(
    private readonly target: HubTarget,
    private readonly runner: Runner,
  ) {
    this.user = target.user;
  }

  get url(): string {
    return this.user ? `${this.target.base}/${this.user}` : this.target.base;
  }

  /** The account the hub's dots are under, once ensureReachable knows it. */
  get account(): string | null {
    return this.user;
  }

  resumedFrom(commit: string): number {
    return this.resumed.get(commit) ?? 0;
  }

  private dotPath(dot: string): string {
    return `/hub/v1/dots/${encodeURIComponent(this.user!)}/${encodeURIComponent(dot)}`;
  }

  /** Loads http or https (https only when needed: it costs start-up time), the CA and the token. */
  private async load(): Promise<void> {
    if (this.request) return;
    const tls = this.target.base.startsWith('https:');
    const mod = tls ? await import('node:https') : await import('node:http');
    let ca: Buffer | undefined;
    if (this.target.caFile) {
      try {
        ca = await readFile(this.target.caFile);
      } catch (e) {
        throw new PrerequisiteError(`cannot read the CA file ${this.target.caFile} for ${this.target.base}: ${(e as Error).message}`, {
          hint: this.target.caHint,
        });
      }
    }
    if (this.target.tokenFile) {
      let text: string;
      try {
        text = await readFile(this.target.tokenFile, 'utf8');
      } catch (e) {
        throw new PrerequisiteError(`cannot read the hub token file ${this.target.tokenFile}: ${(e as Error).message}`, { hint: this.target.tokenHint });
      }
      const token = text.trim();
      if (token === '' || /\s/.test(token))
        throw new PrerequisiteError(`the hub token file ${this.target.tokenFile} holds no single token`, {
          hint: `put the token that knarr hub token create printed in it, alone; ${this.target.tokenHint}`,
        });
      this.token = token;
    }
    this.agent = new mod.Agent({ keepAlive: true, ...(ca ? { ca } : {}) }) as Agent;
    this.request = mod.request as typeof import('node:http').request;
  }

  /** A request under way: its response, or the connection's failure said as this hub's error. */
  private open(method: string, path: string, headers: Record<string, string> = {}): { req: ClientRequest; answer: Promise<IncomingMessage> } {
    const url = new URL(path, this.target.base);
    const req = this.request!(url, {
      method,
      agent: this.agent!,
      headers: { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...headers },
    });
    // Errors after the answer (a refused upload's body cut off) are the answer's story, not a crash.
    req.on('error', () => undefined);
    req.setTimeout(IDLE_MS, () => req.destroy(Object.assign(new Error(`no answer for ${IDLE_MS / 1000}s`), { code: 'ETIMEDOUT' })));
    const answer = new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', (e) => reject(this.broken(e, `${method} ${url.pathname}`)));
    });
    return { req, answer };
  }

  /** A request with a small body (or none), its answer read whole. */
  private async call(method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
    const { req, answer } = this.open(method, path, body === undefined ? headers : { 'content-type': 'application/json', ...headers });
    req.end(body);
    const res = await answer;
    return { status: res.statusCode ?? 0, headers: res.headers, body: await this.readBody(res, `${method} ${path}`) };
  }

  private async readBody(res: IncomingMessage, what: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    try {
      for await (const c of res) chunks.push(c as Buffer);
    } catch (e) {
      throw this.broken(e as Error, what);
    }
    return Buffer.concat(chunks);
  }

  /** A failed connection as the error an operator can act on: no route or no listener, TLS trust, or a cut. */
  private broken(e: Error, what: string): KnarrError {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    const base = this.target.base;
    if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'EPROTO')
      return new PrerequisiteError(`TLS with the hub at ${base} failed: ${e.message}`, {
        hint: `does it serve https? a hub without --tls-cert is reached as ${base.replace(/^https:/, 'http:')}`,
      });
    if (TLS_CODES.has(code) || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /certificate/i.test(e.message))
      return new PrerequisiteError(`TLS with the hub at ${base} failed: ${e.message} (${code || 'no code'})`, { hint: this.target.caHint });
    if (UNREACHABLE_CODES.has(code))
      return new NotFoundError(`cannot reach the hub at ${base}: ${e.message}`, {
        hint: this.target.reachHint ?? 'check the host and the port, and that the knarr daemon there runs with --hub',
      });
    return new FailureError(`the connection to the hub at ${base} broke during ${what}: ${e.message}`, {
      hint: 'run the command again; a push goes on from the bytes the hub holds',
    });
  }

  /** What the hub answered instead of success, as the error of its kind; a token refusal names where the token comes from. */
  private refusal(a: { status: number; body: Buffer }, what: string): KnarrError {
    const text = `the hub at ${this.target.base} refused ${what} (${a.status}): ${errorText(a.body)}`;
    if (a.status === 401) return new PrerequisiteError(text, { hint: this.target.tokenHint });
    if (a.status === 403)
      return new PrerequisiteError(text, {
        hint: `a token of ${this.user ?? 'the account'} with the access this needs (--write to push); ${this.target.tokenHint}`,
      });
    if (a.status === 404) return new NotFoundError(text);
    if (a.status === 409 || a.status === 412 || a.status === 422) return new ConflictError(text);
    if (a.status === 507 || a.status === 413) return new NoSpaceError(text, { hint: 'free space on the hub' });
    if (a.status >= 400 && a.status < 500) return new UserError(text);
    return new FailureError(text);
  }

  async ensureReachable(): Promise<void> {
    await this.load();
    if (this.user !== null) return;
    if (!this.token)
      throw new UserError(`the hub URL ${this.target.base} names no user, and there is no token to ask the hub whose it is`, {
        hint: `name the account: REMOTE/USER/DOT, or a remote URL ${this.target.base}/USER; or give a token: ${this.target.tokenHint}`,
      });
    const a = await this.call('GET', '/hub/v1/whoami');
    if (a.status !== 200) throw this.refusal(a, 'to say whose the token is');
    const who = (JSON.parse(a.body.toString('utf8')) as { user?: unknown }).user;
    this.user = validateHubUser(`${this.target.base} whoami`, String(who));
  }

  async readManifest(dot: string): Promise<Manifest | null> {
    await this.load();
    const a = await this.call('GET', `${this.dotPath(dot)}/manifest`);
    if (a.status === 404) {
      this.etags.set(dot, null);
      return null;
    }
    if (a.status !== 200) throw this.refusal(a, `the manifest of ${this.user}/${dot}`);
    let raw: unknown;
    try {
      raw = JSON.parse(a.body.toString('utf8'));
    } catch {
      throw new ConflictError(`the hub at ${this.target.base} sent a manifest of ${this.user}/${dot} that is not JSON`);
    }
    const m = validateManifest(`${this.url}/${dot} manifest`, raw);
    this.etags.set(dot, typeof a.headers.etag === 'string' ? a.headers.etag : null);
    return m;
  }

  /** Bytes the hub holds of an upload (0 when it has none). */
  private async heldOffset(uploadPath: string): Promise<number> {
    const a = await this.call('HEAD', uploadPath);
    if (a.status === 404) return 0;
    if (a.status !== 200) throw this.refusal(a, `to say what it holds of ${uploadPath}`);
    const n = Number(a.headers['upload-offset']);
    return Number.isSafeInteger(n) && n >= 0 ? n : 0;
  }

  async putCommit(
    dot: string,
    _branch: string,
    record: CommitRecord,
    base: string | null,
    _format: StreamFormat,
    sender: StreamSender,
  ): Promise<ManifestCommit> {
    await this.load();
    const id = `${record.id}-${base ?? 'full'}`;
    const upload = `${this.dotPath(dot)}/uploads/${id}`;
    if (this.runner.dryRun) {
      const held = await this.heldOffset(upload);
      const curl = ['curl', '--fail', '--request', 'PATCH', '--header', `Upload-Offset: ${held}`, '--upload-file', '-', `${this.target.base}${upload}`];
      // The shell equivalent of what a push does: the stream, less what the hub holds, to the upload.
      const rest = held > 0 ? `| ${shellCommand(['tail', '-c', `+${held + 1}`])} ` : '';
      await this.runner.pipe(sender.argv, { redirect: `${rest}| ${shellCommand(curl)}` });
      this.runner.note(`POST ${this.target.base}${upload}/finish with the stream's size and sha256 (the hub holds ${held} bytes of it now)`);
      return { record, base, file: record.id, bytes: 0, sha256: '' };
    }
    let restarted = false;
    for (let busy = 1; ; ) {
      const held = await this.heldOffset(upload);
      if (held > 0) this.target.warn(`push ${dot}: commit ${record.id}: the hub holds ${held} bytes of its stream already; sending the rest`);
      const sent = await this.send(upload, held, sender);
      if ('busy' in sent) {
        if (busy++ >= BUSY_ATTEMPTS) throw this.refusal(sent.busy, `upload ${id}`);
        await sleep(1000);
        continue;
      }
      const fin = await this.call('POST', `${upload}/finish`, {}, JSON.stringify({ bytes: sent.bytes, sha256: sent.sha256 }));
      if (fin.status === 200 || fin.status === 201) {
        this.resumed.set(record.id, held);
        return { record, base, file: sent.sha256, bytes: sent.bytes, sha256: sent.sha256 };
      }
      // What the hub held is not this stream's start (a stream made differently, or damaged there): once more, whole.
      if (fin.status === 422 && !restarted) {
        restarted = true;
        this.target.warn(`push ${dot}: commit ${record.id}: the hub's copy did not match (${errorText(fin.body)}); sending the whole stream again`);
        continue;
      }
      throw this.refusal(fin, `upload ${id}`);
    }
  }

  /** Runs the sender, checksumming all it makes and streaming what the hub lacks from `held` on (PATCH), with backpressure. */
  private async send(upload: string, held: number, sender: StreamSender): Promise<{ bytes: number; sha256: string } | { busy: Answer }> {
    const tap = new SkipAndSum(held, sender.progress);
    const { req, answer } = this.open('PATCH', upload, { 'upload-offset': String(held), 'content-type': 'application/octet-stream' });
    tap.pipe(req);
    // Whichever side fails first is the story: the other only breaks because of it.
    let first: KnarrError | Error | null = null;
    // An answer before the body ends is a refusal: the sender is stopped, not left writing into nothing.
    const answered = answer.then(
      async (res) => {
        const body = await this.readBody(res, `PATCH ${upload}`);
        if (!tap.writableFinished) tap.destroy(new FailureError('the hub answered before the stream ended'));
        return { status: res.statusCode ?? 0, headers: res.headers, body };
      },
      (e: KnarrError) => {
        first ??= e;
        tap.destroy(e);
        return null;
      },
    );
    const producing = sender.produce(tap).then(
      () => undefined,
      (e: Error) => {
        first ??= e;
        // A sender that failed leaves the upload cut short, not ended: the hub keeps what came, and a finish would be refused.
        req.destroy();
      },
    );
    const [a] = await Promise.all([answered, producing]);
    if (a && a.status === 409) return { busy: a };
    if (a && a.status !== 200 && a.status !== 204) throw this.refusal(a, `the stream's bytes from ${held}`);
    if (first) throw first;
    if (!a) throw new FailureError(`the hub at ${this.target.base} gave no answer to the upload`);
    return { bytes: tap.bytes, sha256: tap.hash.digest('hex') };
  }

  async saveManifest(manifest: Manifest): Promise<void> {
    const dot = manifest.dot;
    const path = `${this.dotPath(dot)}/manifest`;
    if (this.runner.dryRun) {
      const creating = !this.etags.get(dot);
      this.runner.note(
        `PUT ${this.target.base}${path} (${creating ? `a new dot${this.target.private ? ', private' : ''}` : 'if unchanged since read'}): ` +
          Object.entries(manifest.branches)
            .map(([b, br]) => `${b} at ${br.commits[br.commits.length - 1] ?? 'nothing'}`)
            .join(', '),
      );
      return;
    }
    await this.load();
    for (let attempt = 1; ; attempt++) {
      const etag = this.etags.get(dot) ?? null;
      const headers: Record<string, string> = etag
        ? { 'if-match': etag }
        : { 'if-none-match': '*', ...(this.target.private ? { 'x-knarr-private': '1' } : {}) };
      const a = await this.call('PUT', path, headers, JSON.stringify({ ...manifest, version: 2, updatedAt: new Date().toISOString() }));
      if (a.status === 200 || a.status === 201) {
        const next = a.headers.etag ?? (JSON.parse(a.body.toString('utf8') || '{}') as { etag?: unknown }).etag;
        this.etags.set(dot, typeof next === 'string' ? next : null);
        return;
      }
      if (a.status !== 412 || attempt >= MANIFEST_ATTEMPTS) throw this.refusal(a, `the manifest of ${this.user}/${dot}`);
      // Another push landed first: its commits are kept, ours go on top where its line is a start of ours.
      const theirs = await this.readManifest(dot);
      if (!theirs) continue;
      if (theirs.format !== manifest.format)
        throw new ConflictError(`the hub's ${this.user}/${dot} became ${theirs.format} streams while this push sent ${manifest.format}`);
      const m = mergeManifests(manifest, theirs);
      if ('diverged' in m) {
        const d = m.diverged;
        throw new ConflictError(
          `another push moved ${this.user}/${dot}@${d.branch} on the hub to commits this push lacks (${d.theirsOnly.join(', ')}); ` +
            `this push's ${d.oursOnly.join(', ')} diverged and was not published`,
          { hint: `pull them first: ${shellCommand(['knarr', 'dot', 'pull', `${this.url}/${dot}@${d.branch}`, '--stash-on-divergence'])}` },
        );
      }
      Object.assign(manifest, m.merged);
    }
  }

  async fetchCommit(dot: string, entry: ManifestCommit, consume: (input: Readable, source: string) => Promise<void>): Promise<void> {
    await this.load();
    const sha = entry.sha256;
    if (!/^[0-9a-f]{64}$/.test(sha))
      throw new ConflictError(`the hub's manifest of ${this.user}/${dot} gives commit ${entry.record.id} no sha256`, {
        hint: 'push the dot to the hub again from a host that has it',
      });
    const path = `${this.dotPath(dot)}/blobs/${sha}`;
    const source = `${this.target.base}${path}`;
    if (this.runner.dryRun) {
      this.runner.note(`GET ${source} (${entry.bytes} bytes, its sha256 checked as it streams)`);
      await consume(Readable.from([]), source);
      return;
    }
    const { req, answer } = this.open('GET', path);
    req.end();
    const res = await answer;
    if (res.statusCode !== 200) throw this.refusal({ status: res.statusCode ?? 0, body: await this.readBody(res, `GET ${path}`) }, `blob ${sha}`);
    // Checked while it streams, its end held back until size and sha256 match: a cut or altered blob never lands whole.
    const sealed = new SealedStream(
      { bytes: entry.bytes, algorithm: 'sha256', value: sha },
      `blob ${sha.slice(0, 12)} of ${this.user}/${dot} (commit ${entry.record.id}) from ${this.target.base}`,
      'push the dot to the hub again from a host that has the commit',
    );
    res.once('error', (e) => sealed.destroy(this.broken(e, `GET ${path}`)));
    res.pipe(sealed);
    try {
      await consume(sealed, source);
    } catch (e) {
      res.destroy();
      throw sealed.failure ?? e;
    }
    if (sealed.failure) throw sealed.failure;
  }
}
