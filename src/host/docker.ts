import { request } from 'node:http';

/** The local Docker Engine socket: DOCKER_HOST when it is a unix:// URL, else the standard path. */
export function dockerSocketPath(env: NodeJS.ProcessEnv): string {
  const host = env.DOCKER_HOST;
  if (host?.startsWith('unix://')) return host.slice('unix://'.length);
  return '/var/run/docker.sock';
}

/** GET /_ping on the engine socket; resolves to the API version on success, null when unreachable. */
export function pingDocker(socketPath: string, timeoutMs = 2000): Promise<string | null> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? String(res.headers['api-version'] ?? 'unknown') : null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
    req.end();
  });
}
