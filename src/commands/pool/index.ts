import { DRIVER_NAMES } from '../../core/pool.js';
import { defineCommand, defineGroup } from '../define.js';

const init = defineCommand(
  {
    name: 'init',
    summary: 'create, import or reuse a pool (idempotent)',
    description:
      'Creates the pool, or imports it when its devices already carry it, or reports that it exists. Never recreates a pool. Refuses a device ' +
      'holding another filesystem unless --force.',
    options: {
      name: { flags: '--name <name>', description: 'pool name (default "knarr", or pool.name in the config file)' },
      driver: { flags: '--driver <driver>', description: 'storage driver (default zfs)', choices: DRIVER_NAMES },
      devices: { flags: '--device <dev>', description: 'block device(s) to build the pool on', repeatable: true },
      loopFile: { flags: '--loop-file <path>', description: 'sparse image file to build the pool on (default <state-dir>/pools/<name>.img)' },
      size: { flags: '--size <size>', description: 'size of a new loop file, e.g. 512M, 2G (default 2G)' },
      path: { flags: '--path <dir>', description: 'directory of a dir pool (default <state-dir>/mnt/<name>)' },
      mountpoint: { flags: '--mountpoint <path>', description: 'where the pool is mounted (default <state-dir>/mnt/<name>)' },
      force: { flags: '--force', description: 'overwrite a device or file that holds another filesystem' },
    },
    examples: [
      { command: 'knarr pool init', description: 'a zfs pool "knarr" on a 2G loop file' },
      { command: 'knarr pool init --name data --device /dev/nvme0n1,/dev/nvme1n1', description: 'a zfs pool on two disks' },
      { command: 'knarr pool init --name scratch --driver btrfs --loop-file /srv/scratch.img --size 10G', description: 'btrfs on a loop file' },
      { command: 'knarr --dry-run pool init --name p --device /dev/sdz', description: 'print the zpool commands, change nothing' },
    ],
    dryRun: 'plans',
  },
  async ({ options }, ctx) => (await import('./init.js')).poolInit(options, ctx),
);

const status = defineCommand(
  {
    name: 'status',
    summary: 'health, size and free space of a pool',
    args: { pool: { description: 'pool name (default: the configured pool, or the only one)' } },
    examples: [{ command: 'knarr --json pool status knarr', description: 'status as JSON' }],
    dryRun: 'reads',
  },
  async ({ args }, ctx) => (await import('./status.js')).poolStatus(args.pool, ctx),
);

const list = defineCommand(
  {
    name: 'list',
    summary: 'pools on this host',
    examples: [{ command: 'knarr pool list', description: 'a table of pools with health and space' }],
    dryRun: 'reads',
  },
  async (_input, ctx) => (await import('./list.js')).poolList(ctx),
);

const destroy = defineCommand(
  {
    name: 'destroy',
    aliases: ['rm'],
    summary: 'destroy a pool and all data on it (needs --yes)',
    description:
      "A pool that holds dots, images, cluster volumes or the managed etcd's data is refused (they are listed) unless --force is given too; the " +
      'empty mountpoint goes with the pool.',
    args: { pool: { description: 'pool name', required: true } },
    options: {
      yes: { flags: '--yes', description: 'confirm that all data on the pool is to be destroyed' },
      force: { flags: '--force', description: "destroy it even while dots, images, cluster volumes or the managed etcd's data are on it" },
    },
    examples: [
      { command: 'knarr pool destroy scratch --yes', description: 'destroy the pool "scratch"' },
      { command: 'knarr pool destroy old --yes --force', description: 'destroy the pool "old" with the dots and images on it' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./destroy.js')).poolDestroy(args.pool, options, ctx),
);

export const pool = defineGroup({
  name: 'pool',
  summary: 'storage pools: zfs, btrfs, lvm or dir, on devices or loop files',
  description:
    'A pool is the storage a host keeps its data on. Drivers: zfs and btrfs (copy-on-write clones, snapshots, send/receive), lvm (thin pool; no ' +
    'send/receive), dir (a plain directory). With no --device a sparse loop file under the state directory is used.',
  subcommands: [init, status, list, destroy],
});
