import { defineCommand, defineGroup } from '../define.js';
import { detachOption, userOption } from '../options.js';

const importImage = defineCommand(
  {
    name: 'import',
    summary: 'a base image from a rootfs tar or directory, or built from busybox-static',
    args: {
      name: { description: 'image name', required: true },
      rootfs: { description: 'a rootfs .tar file or directory' },
    },
    options: {
      busybox: { flags: '--busybox', description: "build the rootfs from this host's busybox-static (no download)" },
      pool: { flags: '--pool <pool>', description: 'pool to keep it on (btrfs, lvm or dir)' },
    },
    examples: [
      { command: 'knarr image import base --busybox', description: 'a busybox base image' },
      { command: 'knarr image import debian rootfs.tar', description: 'from a tar' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('../cluster/image.js')).imageImport(args.name, args.rootfs, options, ctx),
);

const list = defineCommand(
  {
    name: 'list',
    summary: "this host's images",
    examples: [{ command: 'knarr image list', description: 'images' }],
    dryRun: 'reads',
  },
  async (_input, ctx) => (await import('../cluster/image.js')).imageList(ctx),
);

const rm = defineCommand(
  {
    name: 'rm',
    summary: 'remove an image no cluster uses',
    args: { name: { description: 'image name', required: true, completes: 'image' } },
    examples: [{ command: 'knarr image rm old', description: 'remove old' }],
    dryRun: 'plans',
  },
  async ({ args }, ctx) => (await import('../cluster/image.js')).imageRm(args.name, ctx),
);

const save = defineCommand(
  {
    name: 'save',
    summary: "a node's filesystem (its changes over the base) as a new image",
    args: {
      cluster: { description: 'cluster name', required: true },
      node: { description: 'node index or hostname', required: true },
      name: { description: 'new image name', required: true },
    },
    options: {
      user: userOption,
      detach: detachOption,
    },
    examples: [{ command: 'knarr image save lab 0 lab-base', description: 'node 0 of lab as lab-base' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('../cluster/image.js')).imageSave(args.cluster, args.node, args.name, options, ctx),
);

export const image = defineGroup({
  name: 'image',
  summary: 'base images for cluster nodes',
  subcommands: [importImage, list, rm, save],
});
