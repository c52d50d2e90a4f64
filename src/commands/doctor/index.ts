import { defineCommand } from '../define.js';

export const doctor = defineCommand(
  {
    name: 'doctor',
    summary: 'check host prerequisites; --fix installs and starts what is missing',
    description:
      'Checks zfs, btrfs, lvm, lxc, dockerd (it starts a test container on the default network from a local busybox image; --fix imports ' +
      'knarr/busybox:local from busybox-static when there is none), etcd, overlayfs, loop devices and cgroups, naming the Debian package for each. ' +
      'Exits 5 when something is missing.',
    options: { fix: { flags: '--fix', description: 'apt-get install the missing packages, start zfs-fuse and dockerd if needed, and make the test image' } },
    examples: [
      { command: 'knarr doctor', description: 'report what is present' },
      { command: 'knarr doctor --fix', description: 'install and start what is missing' },
    ],
    dryRun: 'plans',
  },
  async ({ options }, ctx) => (await import('../doctor.js')).doctor(options, ctx),
);
