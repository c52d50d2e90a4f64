import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Duplex } from 'node:stream';

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

/** The agent's HTTP API: every request needs the bearer token; answers JSON. The docker socket is never exposed. */
export function startApi(
  listen: { host: string; port: number },
  token: () => string,
  routes: Record<string, Route>,
  tls?: { cert: Buffer; key: Buffer },
  upgrades: Record<string, UpgradeRoute> = {},
): Promise<Server> {
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    if (!bearerMatches(req.headers.authorization, token())) return send(401, { error: 'a valid bearer token is required' });
    const path = (req.url ?? '/').split('?')[0]!;
    for (const [pattern, route] of Object.entries(routes)) {
      const params = match(pattern, req.method ?? 'GET', path);
      if (!params) continue;
      // Through a promise, so a route that throws before its first await is an answer too, not a crash.
      return void Promise.resolve()
        .then(() => route(req, res, params))
        .then(
          (body) => (res.headersSent ? undefined : send(200, body)),
          (e: Error) => (res.headersSent ? res.destroy() : send(e instanceof ApiError ? e.status : 500, { error: e.message })),
        );
    }
    send(404, { error: 'no such endpoint' });
  };
  // allowHalfOpen: a TLS server would otherwise end its side when a piped job's stdin ends, losing the job's output after it.
  const server: Server = tls ? createTlsServer({ cert: tls.cert, key: tls.key, allowHalfOpen: true }, handle) : createServer(handle);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
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
