import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** A client gets this long to send a request's headers: an idle or trickling connection is closed after it. */
export const HEADER_TIMEOUT_MS = 10_000;
/** A request (headers and body) gets this long to arrive, except on routes that check their own credentials and stream big bodies. */
export const REQUEST_TIMEOUT_MS = 3 * HEADER_TIMEOUT_MS;
/** Open connections at most, unless the agent is told otherwise. */
export const DEFAULT_MAX_CONNECTIONS = 1024;

/** A route's answer: a JSON body, or nothing when it wrote the response itself (a stream). */
export type Route = (req: IncomingMessage, res: ServerResponse, params: Record<string, string>) => Promise<unknown>;
/** An upgraded connection (`Connection: Upgrade`): the route owns the raw socket. */
export type UpgradeRoute = (req: IncomingMessage, socket: Duplex, head: Buffer) => Promise<void>;

function bearerMatches(header: string | undefined, token: string): boolean {
  if (token === '') return false;
  const got = Buffer.from(/^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '');
  const want = Buffer.from(token);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Matches "GET /v1/jobs/:name/logs" against a request; the :params it captured, or null. */
function match(pattern: string, method: string, path: string): Record<string, string> | null {
  const [m, p] = pattern.split(' ');
  if (m !== method) return null;
  const want = p!.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i]!.startsWith(':')) {
      try {
        params[want[i]!.slice(1)] = decodeURIComponent(got[i]!);
      } catch {
        return null;
      }
    } else if (want[i] !== got[i]) return null;
  }
  return params;
}

/** An HTTP error with its status, for routes to throw. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The body of an upgrade request (content-length bytes, up to limit) read off its socket, and what came
 * after it (the start of the upgraded stream). A body over the limit is refused before it is read.
 */
export async function upgradeBody(req: IncomingMessage, socket: Duplex, head: Buffer, limit: number, what: string): Promise<{ body: Buffer; rest: Buffer }> {
  const length = Number(req.headers['content-length']);
  if (!Number.isInteger(length) || length < 0) throw new ApiError(411, `${what} goes in the request body, with its content-length`);
  if (length > limit) throw new ApiError(413, `${what} is ${length} bytes; the limit is ${limit} bytes (${limit / 1024 / 1024} MiB)`);
  const chunks = [head];
  let got = head.length;
  if (got < length) {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new ApiError(408, `${what} did not arrive within ${HEADER_TIMEOUT_MS / 1000}s`)), HEADER_TIMEOUT_MS);
      const onData = (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (got >= length) done();
      };
      const onEnd = () => done(new ApiError(400, `${what} ended after ${got} of ${length} bytes`));
      const done = (e?: Error) => {
        clearTimeout(timer);
        socket.off('data', onData).off('end', onEnd).off('close', onEnd);
        socket.pause();
        if (e) reject(e);
        else resolve();
      };
      socket.on('data', onData).once('end', onEnd).once('close', onEnd);
    });
  }
  const all = Buffer.concat(chunks);
  return { body: all.subarray(0, length), rest: all.subarray(length) };
}

/**
 * The agent's HTTP API: every request needs the bearer token; answers JSON. The docker socket is never exposed.
 * open routes (the hub's) skip the agent's token: each checks its own credentials, and its body may take as long as it
 * keeps arriving.
 */
export function startApi(
  listen: { host: string; port: number },
  token: () => string,
  routes: Record<string, Route>,
  tls?: { cert: Buffer; key: Buffer },
  upgrades: Record<string, UpgradeRoute> = {},
  maxConnections = DEFAULT_MAX_CONNECTIONS,
  open: Record<string, Route> = {},
): Promise<Server> {
  // Oldest first; a connection is busy from its request until the answer is sent (a stream or an upgrade: until it closes).
  const sockets = new Set<Socket>();
  const busy = new Set<Socket>();
  const accept = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      busy.delete(socket);
    });
    // Until its first request: a connection that sends nothing is closed (keep-alive idleness is keepAliveTimeout's).
    socket.setTimeout(HEADER_TIMEOUT_MS, () => !busy.has(socket) && socket.destroy());
    if (sockets.size <= maxConnections) return;
    // Past the limit an idle connection makes room, so a flood of idle ones never shuts out a real request.
    const idle = [...sockets].find((s) => !busy.has(s) && s !== socket);
    (idle ?? socket).destroy();
  };
  // Over TLS a request's socket wraps the TCP connection counted above.
  const tcpOf = (socket: Duplex) => (socket as Duplex & { _parent?: Socket })._parent ?? (socket as Socket);
  const claim = (socket: Socket) => {
    busy.add(socket);
    socket.setTimeout(0);
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const socket = tcpOf(req.socket);
    claim(socket);
    res.once('close', () => {
      busy.delete(socket);
    });
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    const path = (req.url ?? '/').split('?')[0]!;
    for (const [pattern, route] of Object.entries(open)) {
      const params = match(pattern, req.method ?? 'GET', path);
      if (params) return run(route, params);
    }
    // The whole request within REQUEST_TIMEOUT_MS (node's own requestTimeout is off, so open routes may stream for longer).
    if (!req.complete) {
      const timer = setTimeout(() => {
        if (req.complete) return;
        if (!res.headersSent)
          res
            .writeHead(408, { 'content-type': 'application/json', connection: 'close' })
            .end(`${JSON.stringify({ error: 'the request did not arrive in time' })}\n`);
        setImmediate(() => req.socket.destroy());
      }, REQUEST_TIMEOUT_MS);
      const clear = () => clearTimeout(timer);
      req.once('end', clear).once('close', clear);
      res.once('close', clear);
    }
    if (!bearerMatches(req.headers.authorization, token())) return send(401, { error: 'a valid bearer token is required' });
    for (const [pattern, route] of Object.entries(routes)) {
      const params = match(pattern, req.method ?? 'GET', path);
      if (params) return run(route, params);
    }
    send(404, { error: 'no such endpoint' });

    function run(route: Route, params: Record<string, string>): void {
      // Through a promise, so a route that throws before its first await is an answer too, not a crash.
      void Promise.resolve()
        .then(() => route(req, res, params))
        .then(
          (body) => (res.headersSent ? undefined : send(200, body)),
          (e: Error) => (res.headersSent ? res.destroy() : send(e instanceof ApiError ? e.status : 500, { error: e.message })),
        );
    }
  };
  // allowHalfOpen: a TLS server would otherwise end its side when a piped job's stdin ends, losing the job's output after it.
  const limits = { headersTimeout: HEADER_TIMEOUT_MS, requestTimeout: 0, connectionsCheckingInterval: 1000 };
  const server: Server = tls
    ? createTlsServer({ cert: tls.cert, key: tls.key, allowHalfOpen: true, handshakeTimeout: HEADER_TIMEOUT_MS, ...limits }, handle)
    : createServer(limits, handle);
  server.on('connection', accept);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    claim(tcpOf(socket));
    const refuse = (status: number, message: string) => {
      const body = `${JSON.stringify({ error: message })}\n`;
      socket.end(
        `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : 'Error'}\r\n` +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    };
    socket.on('error', () => socket.destroy());
    if (!bearerMatches(req.headers.authorization, token())) return refuse(401, 'a valid bearer token is required');
    const route = upgrades[`${req.method} ${(req.url ?? '/').split('?')[0]}`];
    if (!route) return refuse(404, 'no such endpoint');
    Promise.resolve()
      .then(() => route(req, socket, head))
      .catch((e: Error) => refuse(e instanceof ApiError ? e.status : 500, e.message));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve(server));
  });
}
