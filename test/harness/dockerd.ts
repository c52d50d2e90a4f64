import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { execa } from 'execa';
import { kernelMounts } from './mounts.js';
import { pickSubnet, pickTag } from './net.js';
import { haveTools } from './tools.js';

export interface Dockerd {
  socket: string;
  env: Record<string, string>;
  image: string;
  docker(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export const haveDockerd = () => haveTools('dockerd', 'docker', 'busybox');

/** The image every test dockerd holds: busybox-static with the applets below linked in /bin. */
export const BUSYBOX_IMAGE = 'knarr-test/busybox:1';
const APPLETS = ['sh', 'cat', 'tr', 'wc', 'true', 'false', 'echo', 'sleep', 'head', 'sha256sum', 'httpd', 'wget', 'nc', 'hostname', 'env', 'ls', 'mkdir'];

/**
 * A private dockerd (own socket, data root, exec root, pid file and bridge; no iptables) with a
 * busybox image made by `docker import` from the busybox-static binary: no registry needed.
 */
export async function startDockerd(dir: string): Promise<Dockerd> {
  return launchDockerd(dir);
}

export interface LaunchOptions {
  /** argv put before `dockerd`, e.g. nsenter into a network namespace. */
  wrap?: string[];
  /** A rootfs tar from busyboxTar() to import, so several daemons share one build. */
  tar?: string;
}

/** Writes a tar of a busybox-static rootfs to dir/rootfs.tar (once) and returns its path. */
export async function busyboxTar(dir: string): Promise<string> {
  const tar = `${dir}/rootfs.tar`;
  if (existsSync(tar)) return tar;
  const root = `${dir}/rootfs`;
  mkdirSync(`${root}/bin`, { recursive: true });
  await execa('cp', ['/bin/busybox', `${root}/bin/busybox`]);
  for (const applet of APPLETS) symlinkSync('busybox', `${root}/bin/${applet}`);
  // Written under another name first so a concurrent caller never imports a half-written tar.
  await execa('tar', ['-C', root, '-cf', `${tar}.part`, '.']);
  await execa('mv', [`${tar}.part`, tar]);
  return tar;
}

/** startDockerd() with an optional wrapper command (namespaces) and a shared image tar. */
export async function launchDockerd(dir: string, opts: LaunchOptions = {}): Promise<Dockerd> {
  mkdirSync(dir, { recursive: true });
  const socket = `${dir}/docker.sock`;
  const log = `${dir}/dockerd.log`;
  // A bridge of its own in the root namespace: a dockerd told --bridge=none deletes the namespace's docker0, the host's own docker's.
  const bridge = opts.wrap ? null : `${await pickTag()}d`;
  if (bridge) {
    await execa('ip', ['link', 'add', bridge, 'type', 'bridge']);
    await execa('ip', ['addr', 'add', `${await pickSubnet()}.1/24`, 'dev', bridge]);
    await execa('ip', ['link', 'set', bridge, 'up']);
  }
  const dropBridge = async () => void (bridge && (await execa('ip', ['link', 'del', bridge], { reject: false })));
  const argv = [
    ...(opts.wrap ?? []),
    'dockerd',
    '-H',
    `unix://${socket}`,
    '--data-root',
    `${dir}/root`,
    '--exec-root',
    `${dir}/exec`,
    '--pidfile',
    `${dir}/dockerd.pid`,
    `--bridge=${bridge ?? 'none'}`,
    '--iptables=false',
    '--ip6tables=false',
  ];
  // The log goes to a file: dockerd talks a lot at info level and a test wants it only on failure.
  const proc = execa(argv[0]!, argv.slice(1), { reject: false, cleanup: true, stdin: 'ignore', stdout: 'ignore', stderr: { file: log } });
  const docker = async (...args: string[]) => (await execa('docker', ['-H', `unix://${socket}`, ...args])).stdout;
  for (let i = 0; ; i++) {
    const r = await execa('docker', ['-H', `unix://${socket}`, 'version', '--format', '{{.Server.Version}}'], { reject: false });
    if (r.exitCode === 0) break;
    if (i > 300 || proc.exitCode !== null || proc.signalCode !== null) {
      proc.kill('SIGKILL');
      await dropBridge();
      const tail = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-5).join('\n') : '';
      throw new Error(`test dockerd did not start: ${r.stderr}\n${tail}`);
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  await docker('import', opts.tar ?? (await busyboxTar(dir)), BUSYBOX_IMAGE);
  return {
    socket,
    env: { DOCKER_HOST: `unix://${socket}` },
    image: BUSYBOX_IMAGE,
    docker,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        // dockerd waits ~10 s per container whose PID 1 ignores SIGTERM (httpd, sleep): kill them first.
        const ids = await execa('docker', ['-H', `unix://${socket}`, 'ps', '-aq'], { reject: false, timeout: 10_000 });
        const list = ids.exitCode === 0 ? ids.stdout.split('\n').filter(Boolean) : [];
        if (list.length) await execa('docker', ['-H', `unix://${socket}`, 'rm', '-f', ...list], { reject: false, timeout: 30_000 });
        try {
          process.kill(Number(readFileSync(`${dir}/dockerd.pid`, 'utf8').trim()), 'SIGTERM');
        } catch {
          proc.kill('SIGTERM');
        }
        // A dockerd that hangs on shutdown must not hang the suite's teardown.
        const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
        await proc;
        clearTimeout(timer);
      }
      // Container layers stay mounted in the data root until dockerd is gone: unmount what is left.
      for (const t of kernelMounts()
        .map((m) => m.target)
        .filter((t) => t.startsWith(`${dir}/`))
        .reverse())
        await execa('umount', ['-l', t], { reject: false });
      await dropBridge();
    },
  };
}
