import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';

export type Route = (req: IncomingMessage, res: ServerResponse) => Promise<unknown>;

function bearerMatches(header: string | undefined, token: string): boolean {
  const got = Buffer.from(/^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '');
  const want = Buffer.from(token);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** The agent's HTTP API: every request needs the bearer token; answers JSON. The docker socket is never exposed. */
export function startApi(listen: { host: string; port: number }, token: () => string, routes: Record<string, Route>, tls?: { cert: Buffer; key: Buffer }): Promise<Server> {
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    if (!bearerMatches(req.headers.authorization, token())) return send(401, { error: 'a valid bearer token is required' });
    const route = routes[`${req.method} ${(req.url ?? '/').split('?')[0]}`];
    if (!route) return send(404, { error: 'no such endpoint' });
    route(req, res).then(
      (body) => (res.headersSent ? undefined : send(200, body)),
      (e: Error) => send(500, { error: e.message }),
    );
  };
  const server: Server = tls ? createTlsServer({ cert: tls.cert, key: tls.key }, handle) : createServer(handle);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve(server));
  });
}
