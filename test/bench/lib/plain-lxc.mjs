// Plain LXC making what `knarr cluster create` makes, with LXC's own tools: `lxc-create` of a container over the base
// image, then per node `lxc-copy -s -B overlay` (LXC's way to make an overlay container over another's rootfs; lxc-create
// itself has no overlay backing store) and `lxc-start` with the node's hostname and address, on the same network and binds.
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';

/**
 * o: { lxcPath, base (the image's rootfs), bridge, net ('10.x.y': the bridge has .1), hostsFile, share, conf (a file to write) }.
 * up(n, round) makes and starts nodes q<round>-0..n-1; down(n, round) removes them and the base container.
 */
export function lxcCopyStart(o) {
  const sh = (argv) => {
    const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.error?.message ?? r.stderr}`);
  };
  return {
    up(n, round) {
      writeFileSync(
        o.conf,
        [
          `lxc.rootfs.path = dir:${o.base}`,
          'lxc.init.cmd = /sbin/knarr-init',
          'lxc.autodev = 1',
          'lxc.mount.auto = proc:mixed sys:ro',
          'lxc.net.0.type = veth',
          `lxc.net.0.link = ${o.bridge}`,
          'lxc.net.0.flags = up',
          'lxc.net.0.name = eth0',
          `lxc.net.0.ipv4.gateway = ${o.net}.1`,
          `lxc.mount.entry = ${o.hostsFile} etc/hosts none bind,ro,create=file 0 0`,
          `lxc.mount.entry = ${o.share} nfs none bind,create=dir 0 0`,
          '',
        ].join('\n'),
      );
      // Named base: lxc-copy wants the original's rootfs path to contain its name (.../knarr-images/base/rootfs).
      sh(['lxc-create', '-P', o.lxcPath, '-n', 'base', '-t', 'none', '-f', o.conf]);
      for (let i = 0; i < n; i++) {
        const name = `q${round}-${i}`;
        sh(['lxc-copy', '-P', o.lxcPath, '-n', 'base', '-N', name, '-s', '-B', 'overlay']);
        sh(['lxc-start', '-P', o.lxcPath, '-n', name, '-d', '-s', `lxc.uts.name=host-${i}`, '-s', `lxc.net.0.ipv4.address=${o.net}.${i + 2}/24 ${o.net}.255`]);
      }
    },
    down(n, round) {
      for (let i = 0; i < n; i++) {
        const name = `q${round}-${i}`;
        spawnSync('lxc-stop', ['-P', o.lxcPath, '-n', name, '-k']);
        rmSync(`${o.lxcPath}/${name}`, { recursive: true, force: true });
      }
      // Never lxc-destroy: for a dir rootfs it deletes the base image itself.
      rmSync(`${o.lxcPath}/base`, { recursive: true, force: true });
    },
  };
}
