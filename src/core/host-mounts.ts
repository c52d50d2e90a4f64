import { posix } from 'node:path';
import { ValidationError } from './errors.js';
import type { JobSpec } from './job-spec.js';

const within = (path: string, dir: string) => path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);

/**
 * For an agent run with --no-allow-host-mounts: refuses a job binding a host path outside the pools'
 * mountpoints, or one that holds the docker socket (binding its directory is as good as binding it).
 * sources maps each volume's source to its real path (symlinks resolved), as the engine would bind it.
 */
export function checkHostMounts(spec: JobSpec, sources: ReadonlyMap<string, string>, poolRoots: readonly string[], dockerSockets: readonly string[]): void {
  spec.volumes.forEach((v, i) => {
    if (v.kind !== 'host') return;
    const real = posix.resolve(sources.get(v.source) ?? v.source);
    const field = `volumes[${i}]`;
    const hint = 'use a dot volume (dot:NAME:/target), or start the agent with --allow-host-mounts';
    if (dockerSockets.some((s) => within(posix.resolve(s), real)))
      throw new ValidationError(field, `${v.source} holds the docker socket, and this agent refuses host mounts (--no-allow-host-mounts)`, { hint });
    if (!poolRoots.some((r) => within(real, posix.resolve(r))))
      throw new ValidationError(
        field,
        `${v.source} is outside this host's pools (${poolRoots.join(', ') || 'none'}), and this agent refuses host mounts (--no-allow-host-mounts)`,
        { hint },
      );
  });
}
