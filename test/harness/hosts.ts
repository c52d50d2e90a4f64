import { writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { knarr, type CliRun } from './cli.js';
import { kernelMounts } from './mounts.js';
import { freePort } from './ports.js';
import { uniqueName } from './tmp.js';
import { destroyPoolQuietly } from './zfs.js';

export type TestDriver = 'zfs' | 'btrfs' | 'dir';

/** A simulated host: its own state dir, its own managed etcd on free ports, and one pool. */
export interface TestHost {
  state: string;
  pool: string;
  driver: TestDriver;
  mountpoint: string;
  run(argv: string[], env?: Record<string, string>): Promise<CliRun>;
  /** argv prefix for running bin/knarr as a separate process against this host. */
  binArgs: string[];
  dotPath(dot: string, branch?: string, subdot?: string): string;
  teardown(): Promise<void>;
}

export async function makeHost(dir: string, driver: TestDriver, label: string): Promise<TestHost> {
  const state = `${dir}/${label}`;
  const config = `${dir}/${label}.yaml`;
  writeFileSync(config, `etcdServer:\n  clientPort: ${await freePort()}\n  peerPort: ${await freePort()}\n`);
  const pool = uniqueName(`k${label}`);
  const base = ['--state-dir', state, '--config', config];
  const run = (argv: string[], env?: Record<string, string>) => knarr([...base, ...argv], { env });
  const poolArgs = driver === 'dir' ? ['--driver', 'dir'] : ['--driver', driver, '--loop-file', `${dir}/${label}.img`, '--size', '512M'];
  const init = await run(['pool', 'init', '--name', pool, ...poolArgs]);
  if (init.code !== 0) throw new Error(`pool init failed: ${init.stderr}`);
  const mountpoint = `${state}/mnt/${pool}`;
  const up = await run(['etcd', 'up']);
  if (up.code !== 0) {
    // The pool is made: it goes again, so the caller's temporary directory can be removed.
    if ((await run(['pool', 'destroy', pool, '--yes', '--force'])).code !== 0) {
      if (driver === 'zfs') await destroyPoolQuietly(pool);
      else await execa('umount', ['-l', mountpoint], { reject: false });
    }
    throw new Error(`etcd up failed: ${up.stderr}`);
  }
  return {
    state,
    pool,
    driver,
    mountpoint,
    run,
    binArgs: base,
    dotPath: (dot, branch = 'master', subdot = '__default__') => `${mountpoint}/knarr-dots/${dot}/${branch}/${subdot}`,
    async teardown() {
      const dots = await run(['--json', 'dot', 'list']);
      if (dots.code === 0) for (const d of dots.json()) await run(['dot', 'unmount', d.name]);
      // Bind mounts under the state dir go; a zfs pool's own mounts go with the pool.
      for (const { target } of kernelMounts().reverse()) {
        if (target.startsWith(state) && (driver !== 'zfs' || !target.startsWith(mountpoint))) await execa('umount', ['-l', target], { reject: false });
      }
      await run(['etcd', 'down']);
      const destroyed = await run(['pool', 'destroy', pool, '--yes', '--force']);
      if (destroyed.code !== 0 && driver === 'zfs') await destroyPoolQuietly(pool);
      if (destroyed.code !== 0 && driver === 'btrfs') await execa('umount', ['-l', mountpoint], { reject: false });
    },
  };
}
