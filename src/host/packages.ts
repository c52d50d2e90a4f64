/** Which Debian package provides each outside tool knarr runs; used for hints and by `doctor --fix`. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  zpool: 'zfs-fuse',
  zfs: 'zfs-fuse',
  'zfs-fuse': 'zfs-fuse',
  btrfs: 'btrfs-progs',
  'mkfs.btrfs': 'btrfs-progs',
  lvm: 'lvm2',
  pvcreate: 'lvm2',
  vgcreate: 'lvm2',
  lvcreate: 'lvm2',
  vgs: 'lvm2',
  lvs: 'lvm2',
  'lxc-create': 'lxc',
  'lxc-start': 'lxc',
  'lxc-stop': 'lxc',
  'lxc-attach': 'lxc',
  'lxc-info': 'lxc',
  'lxc-ls': 'lxc',
  docker: 'docker.io',
  dockerd: 'docker.io',
  etcd: 'etcd-server',
  etcdctl: 'etcd-client',
  ip: 'iproute2',
  bridge: 'iproute2',
  nft: 'nftables',
  blkid: 'util-linux',
  losetup: 'mount',
  mount: 'mount',
  umount: 'mount',
  wipefs: 'util-linux',
  'mkfs.ext4': 'e2fsprogs',
  busybox: 'busybox-static',
  truncate: 'coreutils',
};

export function packageFor(tool: string): string | undefined {
  return TOOL_PACKAGES[tool];
}
