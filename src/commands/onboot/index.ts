import { DRIVER_NAMES } from '../../core/pool.js';
import { defineCommand } from '../define.js';

export const onboot = defineCommand(
  {
    name: 'onboot',
    summary: 'boot oneshot: pool, etcd, dot (kept, seeded or new), mount',
    description:
      'For a LinuxKit onboot container or a boot script; idempotent. Imports or creates the pool on the devices (found by their labels, whatever ' +
      'names the devices have at this boot), brings up the managed etcd on it, keeps the dot if this host has it (a seed never overwrites local ' +
      'state), else pulls it from --seed, else creates it; mounts it; then stops etcd and exits 0, or with --daemon keeps running until SIGTERM ' +
      '(etcd up, and the agent when the config file has a daemon: section) and then stops them. With --daemon and no --dot it brings up the pool and ' +
      'etcd only. A failing step exits with its own code (10 pool, 11 etcd, 12 dot, 13 seed, 14 mount).',
    options: {
      storageDevice: { flags: '--storage-device <dev>', description: 'block device(s) of the pool, comma-separated or repeated', repeatable: true },
      zpoolDevice: { flags: '--zpool-device <dev>', description: 'the same as --storage-device (the dm-linuxkit spelling)', repeatable: true },
      driver: { flags: '--driver <driver>', description: 'pool driver (default zfs)', choices: DRIVER_NAMES },
      pool: { flags: '--pool <name>', description: 'pool name (default "knarr")' },
      dot: { flags: '--dot <dot>', description: 'DOT or DOT.SUBDOT to bring up' },
      seed: {
        flags: '--seed <source>',
        description:
          'REMOTE/DOT[@BRANCH], REMOTE/USER/DOT (a hub), HUB.HOST/USER/DOT (dothub.com/...) or a URL (file://, https://HUB:PORT/USER/DOT) ' +
          'to pull the dot from when this host lacks it',
      },
      mountpoint: { flags: '--mountpoint <path>', description: 'where to mount the dot' },
      daemon: {
        flags: '--daemon',
        description: 'keep running until SIGTERM: etcd up, and the agent when the config file has a daemon: section; --dot may be left out',
      },
    },
    examples: [
      {
        command: 'knarr onboot --storage-device /dev/nvme0n1,/dev/nvme1n1 --dot postgres --seed file:///mnt/seed/postgres --mountpoint /var/lib/postgresql',
        description: 'bring up a seeded postgres data dot at boot',
      },
      {
        command: 'knarr onboot --storage-device /dev/sdb --dot myapp.redis --seed file:///mnt/seed/myapp --mountpoint /var/lib/redis',
        description: 'a subdot of one seed',
      },
      {
        command:
          'knarr onboot --storage-device /dev/sdb --dot postgres --seed https://hub.example:7946/justincormack/postgres --mountpoint /var/lib/postgresql',
        description: 'seed from a hub (public dot; KNARR_HUB_TOKEN_FILE for a private one, KNARR_HUB_CA_FILE for its CA)',
      },
      {
        command: 'knarr --dry-run onboot --storage-device /dev/sdb --dot app --mountpoint /data',
        description: 'the steps as the host stands now; a step that waits on an earlier one is a # line',
      },
    ],
    dryRun: 'plans',
  },
  async ({ options }, ctx) => (await import('../onboot.js')).onboot(options, ctx),
);
