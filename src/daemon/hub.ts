import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { ConflictError, InterruptedError, UserError } from '../core/errors.js';
import {
  SHA256_RE,
  bearerOf,
  parseRange,
  summarizeDot,
  validateHubDot,
  validateHubUser,
  validateUploadId,
  type HubAccess,
  type HubTokenRecord,
} from '../core/hub.js';
import { HubRefusal, HubStore, type HubRefusalKind } from '../host/hub-store.js';
import type { Route } from './api.js';

/** A manifest body at most this big; a finish body far less. */
const MANIFEST_LIMIT = 64 * 1024 * 1024;
const SMALL_LIMIT = 64 * 1024;
/** An upload's body that sends nothing for this long is cut (the bytes that arrived are kept). */
export const HUB_IDLE_MS = 120_000;

class HubHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const REFUSAL_STATUS: Record<HubRefusalKind, number> = { 'not-found': 404, precondition: 412, 'missing-blob': 409, offset: 409, busy: 409, mismatch: 422 };

function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

/** A JSON body of at most limit bytes. */
async function jsonBody(req: IncomingMessage, limit: number, what: string): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) throw new HubHttpError(413, `${what} is ${declared} bytes; at most ${limit}`);
  const chunks: Buffer[] = [];
  let got = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    got += c.length;
    if (got > limit) throw new HubHttpError(413, `${what} is over ${limit} bytes`);
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HubHttpError(400, `${what} is not JSON`);
  }
}

/** The names in a hub path, each checked before it becomes part of a file path. */
function names(p: Record<string, string>): { user: string; dot: string } {
  return { user: validateHubUser('user', p.user!), dot: validateHubDot('dot', p.dot!) };
}

/**
 * The hub's HTTP API under /hub/v1/ (docs/hub.md). It does not take the agent's token: a hub token
 * (Bearer knh_...) of a dot's user lets its holder pull (read) or push (write); public dots pull without one.
 */
export function hubRoutes(store: HubStore): Record<string, Route> {
  /** The token's record; null without one; 401 for a token that is bad or revoked (never taken as no token). */
  const who = async (req: IncomingMessage): Promise<HubTokenRecord | null> => {
    const token = bearerOf(req.headers.authorization);
    if (token === null) return null;
    const record = token === 'bad' ? null : await store.authenticate(token);
    if (!record) throw new HubHttpError(401, 'the hub token is not valid (unknown, revoked or malformed)');
    return record;
  };
  const need = async (req: IncomingMessage, user: string, access: HubAccess): Promise<HubTokenRecord> => {
    const t = await who(req);
    if (!t) throw new HubHttpError(401, `a hub token of ${user} is required (Authorization: Bearer knh_...)`);
    if (t.user !== user) throw new HubHttpError(403, `the token is ${t.user}'s; ${user}'s dots need a token of ${user}`);
    if (access === 'write' && t.access !== 'write') throw new HubHttpError(403, `the token of ${user} is read-only; pushing needs a write token`);
    return t;
  };
  /** Pulling: a public dot needs no token, a private one a token of its user. */
  const mayRead = async (req: IncomingMessage, user: string, dot: string): Promise<void> => {
    const t = await who(req);
    if (t?.user === user) return;
    if (!(await store.isPrivate(user, dot))) return;
    if (!t) throw new HubHttpError(401, `${user}/${dot} is private (or absent): a hub token of ${user} is required`);
    throw new HubHttpError(403, `the token is ${t.user}'s; ${user}/${dot} is private`);
  };

  /** Every route answers itself: errors as {error}, and a body it did not read closes the connection instead of being read to its end. */
  const wrap =
    (fn: Route): Route =>
    async (req, res, params) => {
      try {
        const body = await fn(req, res, params);
        if (!res.headersSent) reply(res, 200, body);
      } catch (e) {
        if (res.headersSent) return void res.destroy();
        const [status, extra] =
          e instanceof HubHttpError
            ? [e.status, e.extra]
            : e instanceof HubRefusal
              ? [REFUSAL_STATUS[e.kind], e.offset === undefined ? {} : { offset: e.offset }]
              : e instanceof UserError || e instanceof ConflictError
                ? [400, {}]
                : e instanceof InterruptedError
                  ? [503, {}]
                  : [500, {}];
        const unread = !req.complete;
        reply(res, status, { error: (e as Error).message, ...extra }, unread ? { connection: 'close' } : {});
      }
      return undefined;
    };

  const upload = (p: Record<string, string>) => ({ ...names(p), id: validateUploadId('upload id', p.id!) });
  const blob = (p: Record<string, string>) => {
    if (!SHA256_RE.test(p.sha256!)) throw new HubHttpError(400, `${JSON.stringify(p.sha256)} is not a sha256 (64 lower-case hex digits)`);
    return { ...names(p), sha256: p.sha256! };
  };
  const base = '/hub/v1/dots/:user/:dot';

  const routes: Record<string, Route> = {
    'GET /hub/v1/whoami': async (req) => {
      const t = await who(req);
      if (!t) throw new HubHttpError(401, 'a hub token is required (Authorization: Bearer knh_...)');
      return { user: t.user, access: t.access };
    },
    'GET /hub/v1/dots': async (req) => {
      const t = await who(req);
      const q = new URL(req.url ?? '/', 'http://hub').searchParams.get('user');
      const user = q === null || q === '' ? undefined : validateHubUser('user', q);
      return (await store.listDots(user)).filter((d) => !d.private || d.user === t?.user).map((d) => summarizeDot(d.user, d.manifest, d.private));
    },
    [`GET ${base}/manifest`]: async (req, res, p) => {
      const { user, dot } = names(p);
      await mayRead(req, user, dot);
      const m = await store.readManifest(user, dot);
      if (!m) throw new HubHttpError(404, `the hub has no dot ${user}/${dot}`);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(m.text)), etag: `"${m.etag}"` });
      res.end(m.text);
    },
    [`PUT ${base}/manifest`]: async (req, res, p) => {
      const { user, dot } = names(p);
      await need(req, user, 'write');
      const ifMatch = req.headers['if-match'];
      const create = req.headers['if-none-match'] === '*';
      if (!create && typeof ifMatch !== 'string')
        throw new HubHttpError(428, 'send If-Match: "<etag>" (the etag of the manifest read) to update, or If-None-Match: * to create');
      const raw = await jsonBody(req, MANIFEST_LIMIT, 'the manifest');
      const etag = await store.putManifest(user, dot, raw, {
        // The etag with its quotes or without: a client may quote the body's bare etag again.
        ifMatch: create
          ? null
          : ifMatch!
              .trim()
              .replace(/^W\//, '')
              .replace(/^"+|"+$/g, ''),
        create,
        private: req.headers['x-knarr-private'] === '1',
      });
      reply(res, 200, { etag }, { etag: `"${etag}"` });
    },
    [`HEAD ${base}/blobs/:sha256`]: async (req, res, p) => {
      const { user, dot, sha256 } = blob(p);
      await mayRead(req, user, dot);
      const size = await store.blobSize(user, dot, sha256);
      res.writeHead(size === null ? 404 : 200, { 'content-length': String(size ?? 0) });
      res.end();
    },
    [`GET ${base}/blobs/:sha256`]: async (req, res, p) => {
      const { user, dot, sha256 } = blob(p);
      await mayRead(req, user, dot);
      const size = await store.blobSize(user, dot, sha256);
      if (size === null) throw new HubHttpError(404, `${user}/${dot} holds no blob ${sha256}`);
      const range = parseRange(req.headers.range, size);
      if (range === 'bad') throw new HubHttpError(416, `cannot serve ${req.headers.range} of ${size} bytes; use bytes=N- with N below ${size}`);
      const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' };
      const stream = store.blobStream(user, dot, sha256, range ?? undefined);
      // Opened before the answer starts, so a blob that vanished is still a clean 404.
      await new Promise<void>((resolve, reject) => stream.once('open', () => resolve()).once('error', reject)).catch(() => {
        throw new HubHttpError(404, `${user}/${dot} holds no blob ${sha256}`);
      });
      if (range)
        res.writeHead(206, { ...headers, 'content-length': String(range.end - range.start + 1), 'content-range': `bytes ${range.start}-${range.end}/${size}` });
      else res.writeHead(200, { ...headers, 'content-length': String(size) });
      await pipeline(stream, res).catch(() => res.destroy());
    },
    [`HEAD ${base}/uploads/:id`]: async (req, res, p) => {
      const { user, dot, id } = upload(p);
      await need(req, user, 'write');
      const offset = await store.uploadOffset(user, dot, id);
      res.writeHead(offset === null ? 404 : 200, offset === null ? {} : { 'upload-offset': String(offset) });
      res.end();
    },
    [`PATCH ${base}/uploads/:id`]: async (req, _res, p) => {
      const { user, dot, id } = upload(p);
      await need(req, user, 'write');
      const text = req.headers['upload-offset'];
      if (typeof text !== 'string' || !/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)))
        throw new HubHttpError(400, 'send Upload-Offset: N, the bytes the upload holds (HEAD it; 0 for a new one)');
      // A long body is not a stalled one: only silence cuts it.
      req.socket.setTimeout(HUB_IDLE_MS, () => req.socket.destroy());
      try {
        const offset = await store.appendUpload(user, dot, id, Number(text), req);
        return { offset };
      } finally {
        req.socket.setTimeout(0);
      }
    },
    [`POST ${base}/uploads/:id/finish`]: async (req, res, p) => {
      const { user, dot, id } = upload(p);
      await need(req, user, 'write');
      const body = (await jsonBody(req, SMALL_LIMIT, 'the finish body')) as { bytes?: unknown; sha256?: unknown };
      if (!Number.isSafeInteger(body?.bytes) || (body.bytes as number) < 0) throw new HubHttpError(400, 'the finish body needs bytes, a whole number');
      if (typeof body.sha256 !== 'string' || !SHA256_RE.test(body.sha256))
        throw new HubHttpError(400, 'the finish body needs sha256, 64 lower-case hex digits');
      await store.finishUpload(user, dot, id, body.bytes as number, body.sha256);
      reply(res, 201, { sha256: body.sha256, bytes: body.bytes });
    },
  };
  return Object.fromEntries(Object.entries(routes).map(([k, v]) => [k, wrap(v)]));
}

export { HubStore };
