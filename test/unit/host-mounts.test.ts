import { describe, expect, it } from 'vitest';
import { checkHostMounts } from '../../src/core/host-mounts.js';
import { parseJobSpec } from '../../src/core/job-spec.js';

const spec = (...volumes: string[]) => parseJobSpec({ name: 'j', image: 'busybox', volumes }, 'job');
const check = (volumes: string[], real: Record<string, string> = {}) =>
  checkHostMounts(spec(...volumes), new Map(Object.entries(real)), ['/pool/tank', '/srv/dots'], ['/run/user-docker/docker.sock', '/var/run/docker.sock']);

describe('--no-allow-host-mounts: binds only inside the pools, never the docker socket', () => {
  it('allows paths in a pool and dot volumes', () => {
    expect(() => check(['/pool/tank/data:/data', '/srv/dots:/all:ro', 'dot:web:/www'])).not.toThrow();
  });

  it('refuses paths outside every pool, naming the volume and the pools', () => {
    expect(() => check(['/pool/tank/ok:/a', '/etc:/etc'])).toThrow(/^volumes\[1\]: \/etc is outside this host's pools \(\/pool\/tank, \/srv\/dots\)/);
    // A sibling whose name starts like a pool is not in it; a .. that climbs out is resolved first.
    expect(() => check(['/pool/tankx:/a'])).toThrow(/outside this host's pools/);
    expect(() => check(['/pool/tank/../../etc:/a'])).toThrow(/outside this host's pools/);
  });

  it('judges a symlink by where it points', () => {
    expect(() => check(['/pool/tank/link:/a'], { '/pool/tank/link': '/' })).toThrow(/holds the docker socket/);
    expect(() => check(['/pool/tank/link:/a'], { '/pool/tank/link': '/home' })).toThrow(/outside this host's pools/);
  });

  it('refuses the docker socket and any directory holding it', () => {
    expect(() => check(['/var/run/docker.sock:/d.sock'])).toThrow(/^volumes\[0\]: \/var\/run\/docker.sock holds the docker socket/);
    expect(() => check(['/run/user-docker:/d'])).toThrow(/holds the docker socket/);
  });
});
