import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { execa } from 'execa';
import { kernelMounts } from './mounts.js';
import { haveTools } from './tools.js';

export interface Dockerd {
  socket: string;
  env: Record<string, string>;
  image: string;
  docker(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export const haveDockerd = () => haveTools('dockerd', 'docker', 'busybox');

/**
 * A private dockerd (own socket, data root, exec root and pid file; no bridge, no iptables) with a
 * busybox image made by `docker import` from the busybox-static binary: no registry needed.
 */
export async function startDockerd(dir: string): Promise<Dockerd> {
  const socket = `${dir}/docker.sock`;
  const proc = execa(
    'dockerd',
    ['-H', `unix://${socket}`, '--data-root', `${dir}/root`, '--exec-root', `${dir}/exec`, '--pidfile', `${dir}/dockerd.pid`, '--bridge=none', '--iptables=false', '--ip6tables=false'],
    { reject: false, cleanup: true, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const docker = async (...args: string[]) => (await execa('docker', ['-H', `unix://${socket}`, ...args])).stdout;
  for (let i = 0; ; i++) {
    const r = await execa('docker', ['-H', `unix://${socket}`, 'version', '--format', '{{.Server.Version}}'], { reject: false });
    if (r.exitCode === 0) break;
    if (i > 300 || proc.exitCode !== null) throw new Error(`test dockerd did not start: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  const root = `${dir}/rootfs`;
  mkdirSync(`${root}/bin`, { recursive: true });
  await execa('cp', ['/bin/busybox', `${root}/bin/busybox`]);
  for (const applet of ['sh', 'cat', 'tr', 'wc', 'true', 'false', 'echo', 'sleep', 'head', 'sha256sum', 'httpd']) symlinkSync('busybox', `${root}/bin/${applet}`);
  await execa('tar', ['-C', root, '-cf', `${dir}/rootfs.tar`, '.']);
  const image = 'knarr-test/busybox:1';
  await docker('import', `${dir}/rootfs.tar`, image);
  return {
    socket,
    env: { DOCKER_HOST: `unix://${socket}` },
    image,
    docker,
    async stop() {
      try {
        process.kill(Number(readFileSync(`${dir}/dockerd.pid`, 'utf8').trim()), 'SIGTERM');
      } catch {
        proc.kill('SIGTERM');
      }
      await proc;
      // Container layers stay mounted in the data root until dockerd is gone: unmount what is left.
      for (const t of kernelMounts().map((m) => m.target).filter((t) => t.startsWith(dir)).reverse()) await execa('umount', ['-l', t], { reject: false });
    },
  };
}
