import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExitCode, type KnarrError } from '../core/errors.js';
import { DockerEngine, dockerSocketPath, pingDocker } from '../host/docker.js';
import { allowBridge, bridgeFirewall, forwardChain, haveIptables } from '../host/firewall.js';
import type { Runner } from '../host/runner.js';
import { findExecutable } from '../host/which.js';
import type { CommandResult, Context } from './types.js';

export type CheckStatus = 'ok' | 'missing' | 'warn';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
  /** Debian package that provides it, when installing one fixes it. */
  package: string | null;
  /** The package itself is absent (not merely a daemon stopped). */
  install?: boolean;
}

interface Check {
  name: string;
  package: string | null;
  run(ctx: Context): Promise<Omit<CheckResult, 'name' | 'package'>>;
  /** Starts a daemon or loads a module once its package is there. */
  fix?(ctx: Context): Promise<void>;
}

const ok = (detail: string) => ({ status: 'ok' as const, detail });
const missing = (detail: string) => ({ status: 'missing' as const, detail, install: true });
/** Installed, but a daemon or module is not up: --fix starts it rather than reinstalling. */
const stopped = (detail: string) => ({ status: 'missing' as const, detail, install: false });
const warn = (detail: string) => ({ status: 'warn' as const, detail });
/** Not needed by every host, but by a feature (serving ssh remotes, TLS certificates, completions): a warning, and --fix installs it. */
const wanted = (detail: string) => ({ status: 'warn' as const, detail, install: true });

function kernelFilesystems(): string {
  try {
    return readFileSync('/proc/filesystems', 'utf8');
  } catch {
    return '';
  }
}

function binaries(ctx: Context, names: string[]): string[] {
  return names.filter((n) => findExecutable(n, ctx.env.PATH) === null);
}

/** A check that the tools bins are on PATH; when some are not, absent says how that counts. */
function toolsCheck(name: string, pkg: string, bins: string[], absent: (detail: string) => Omit<CheckResult, 'name' | 'package'>): Check {
  return {
    name,
    package: pkg,
    async run(ctx) {
      const gone = binaries(ctx, bins);
      return gone.length === 0 ? ok(bins.join(', ')) : absent(`not found: ${gone.join(', ')}`);
    },
  };
}

function binaryCheck(name: string, pkg: string, bins: string[]): Check {
  return toolsCheck(name, pkg, bins, missing);
}

const BASH_COMPLETION = '/usr/share/bash-completion/bash_completion';

/** A tool only some features use: its absence is a warning naming the feature. */
function optionalCheck(name: string, pkg: string, bins: string[], feature: string): Check {
  return toolsCheck(name, pkg, bins, (detail) => wanted(`${detail} (${feature})`));
}

async function zfsAnswers(runner: Runner): Promise<{ answers: boolean; why: string }> {
  try {
    const r = await runner.run(['zpool', 'list', '-H', '-o', 'name'], { mutates: false, okExitCodes: [1, 2, 255] });
    if (r.exitCode === 0) return { answers: true, why: '' };
    return { answers: false, why: r.stderr.trim().split('\n').pop() ?? `exit ${r.exitCode}` };
  } catch (e) {
    return { answers: false, why: (e as Error).message };
  }
}

/** The interface of docker's default network when the kernel no longer has it; null when it is there or docker has none. */
async function defaultBridgeGone(socket: string): Promise<string | null> {
  const net = await new DockerEngine(socket, true)
    .call<{ Driver?: string; Options?: Record<string, string> }>('GET', '/networks/bridge', undefined, 3000)
    .catch(() => null);
  if (net?.Driver !== 'bridge') return null;
  const name = net.Options?.['com.docker.network.bridge.name'] || 'docker0';
  return existsSync(`/sys/class/net/${name}`) ? null : name;
}

/** The image `doctor --fix` makes when dockerd has none: busybox-static's applets, no registry needed. */
export const CHECK_IMAGE = 'knarr/busybox:local';

/** The local image the check runs `true` in: the install's, else any busybox (another image may have no `true`; none is pulled). */
export function pickCheckImage(tags: string[]): string | null {
  return tags.find((t) => t === CHECK_IMAGE) ?? tags.find((t) => t === 'busybox:latest') ?? tags.find((t) => /(^|\/)busybox:/.test(t)) ?? null;
}

async function localImageTags(socket: string): Promise<string[]> {
  const images = await new DockerEngine(socket, true).call<{ RepoTags?: string[] | null }[]>('GET', '/images/json', undefined, 10_000);
  return images.flatMap((i) => i.RepoTags ?? []);
}

/** Imports CHECK_IMAGE from the host's busybox-static when dockerd has neither it nor busybox:latest. */
async function importCheckImage(ctx: Context, socket: string): Promise<boolean> {
  const busybox = findExecutable('busybox', ctx.env.PATH);
  // Another busybox-named image serves the check, but the examples name busybox: ours is made unless that or ours is there.
  const tags = await localImageTags(socket).catch(() => [] as string[]);
  if (!busybox || tags.includes(CHECK_IMAGE) || tags.includes('busybox:latest')) return false;
  const dir = ctx.runner.dryRun ? join(tmpdir(), 'knarr-image-XXXXXX') : await mkdtemp(join(tmpdir(), 'knarr-image-'));
  try {
    // busybox --install links each applet into its own one of these (tr, wc in usr/bin; httpd in usr/sbin) and skips a missing one.
    for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin']) await ctx.runner.mkdirp(`${dir}/rootfs/${d}`);
    await ctx.runner.run(['cp', busybox, `${dir}/rootfs/bin/busybox`]);
    await ctx.runner.run(['chroot', `${dir}/rootfs`, '/bin/busybox', '--install', '-s']);
    await ctx.runner.run(['tar', '-C', `${dir}/rootfs`, '-cf', `${dir}/rootfs.tar`, '.']);
    await ctx.runner.run(['docker', '-H', `unix://${socket}`, 'import', `${dir}/rootfs.tar`, CHECK_IMAGE]);
    return true;
  } finally {
    if (!ctx.runner.dryRun) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Starts (and removes) a tiny container on the default network: a dockerd can answer while no container can start
 * (a broken default bridge, no image to run). The failure, or null when one started and exited 0.
 */
async function containerFails(ctx: Context, socket: string): Promise<string | null> {
  const engine = new DockerEngine(socket, false);
  const image = pickCheckImage(await localImageTags(socket));
  if (!image) return `it has no busybox image to start a test container from (knarr never pulls one); knarr doctor --fix imports ${CHECK_IMAGE}`;
  if (ctx.runner.plan(['docker', 'run', '--rm', image, 'true'])) return null;
  let id: string | null = null;
  try {
    id = await engine.create(`knarr-doctor-${process.pid}-${Date.now().toString(36)}`, { Image: image, Cmd: ['true'], Labels: { 'knarr.doctor': '1' } });
    await engine.call('POST', `/containers/${id}/start`, undefined, 20_000);
    const code = (await engine.call<{ StatusCode: number }>('POST', `/containers/${id}/wait`, undefined, 20_000)).StatusCode;
    return code === 0 ? null : `a test container (${image} true) on the default network exited ${code}`;
  } catch (e) {
    return (
      `a test container (${image}) cannot start on the default network: ${(e as Error).message.split('\n')[0]}; ` +
      'look at the default bridge (docker network inspect bridge) and restart dockerd (systemctl restart docker)'
    );
  } finally {
    if (id) await engine.call('DELETE', `/containers/${id}?force=1`, undefined, 20_000).catch(() => undefined);
  }
}

function hasSystemd(): boolean {
  return existsSync('/run/systemd/system');
}

const CHECKS: Check[] = [
  {
    name: 'zfs',
    package: 'zfs-fuse',
    async run(ctx) {
      const absent = binaries(ctx, ['zpool', 'zfs']);
      if (absent.length) return missing(`not found: ${absent.join(', ')}`);
      const z = await zfsAnswers(ctx.runner);
      return z.answers ? ok('zpool answers') : stopped(`zpool is installed but ZFS does not answer (${z.why}); start zfs-fuse or load the zfs module`);
    },
    async fix(ctx) {
      if ((await zfsAnswers(ctx.runner)).answers || existsSync('/sys/module/zfs')) return;
      await ctx.runner.mkdirp('/var/run/zfs');
      if (hasSystemd()) await ctx.runner.run(['systemctl', 'start', 'zfs-fuse']);
      else await ctx.runner.run(['zfs-fuse']);
      for (let i = 0; i < 50 && !ctx.runner.dryRun && !(await zfsAnswers(ctx.runner)).answers; i++) await sleep(100);
    },
  },
  {
    name: 'btrfs',
    package: 'btrfs-progs',
    async run(ctx) {
      const absent = binaries(ctx, ['mkfs.btrfs', 'btrfs']);
      if (absent.length) return missing(`not found: ${absent.join(', ')}`);
      return /\bbtrfs\b/.test(kernelFilesystems()) || existsSync('/sys/module/btrfs')
        ? ok('btrfs-progs; kernel supports btrfs')
        : warn('btrfs-progs installed; the kernel does not list btrfs (modprobe btrfs)');
    },
  },
  {
    name: 'lvm',
    package: 'lvm2',
    async run(ctx) {
      const absent = binaries(ctx, ['lvm', 'pvcreate', 'vgcreate', 'lvcreate']);
      if (absent.length) return missing(`not found: ${absent.join(', ')}`);
      return existsSync('/dev/mapper/control')
        ? ok('lvm2; device-mapper present')
        : warn('lvm2 installed, but this kernel has no device-mapper: LVM pools cannot work here');
    },
  },
  binaryCheck('lxc', 'lxc', ['lxc-create', 'lxc-start', 'lxc-attach']),
  binaryCheck('busybox', 'busybox-static', ['busybox']),
  binaryCheck('nftables', 'nftables', ['nft']),
  {
    name: 'docker',
    package: 'docker.io',
    async run(ctx) {
      const absent = binaries(ctx, ['dockerd']);
      let socket: string;
      try {
        socket = dockerSocketPath(ctx.env);
      } catch (e) {
        // A DOCKER_HOST knarr refuses is this check's finding, not the end of the report.
        return stopped(`${(e as KnarrError).message}; ${(e as KnarrError).hint}`);
      }
      const version = await pingDocker(socket);
      if (version) {
        const gone = await defaultBridgeGone(socket);
        if (gone)
          return stopped(
            `dockerd answers on ${socket}, but its default bridge ${gone} is gone (another dockerd started with --bridge=none in this network ` +
              `namespace deletes it): containers on the default network cannot start; restart dockerd (systemctl restart docker) to make it again`,
          );
        const fails = await containerFails(ctx, socket).catch((e: Error) => `it cannot be asked to start a test container: ${e.message}`);
        if (fails) return stopped(`dockerd answers on ${socket}, but ${fails}`);
        return ok(`dockerd answers on ${socket} (API ${version}); a test container started on the default network`);
      }
      if (absent.length) return missing('dockerd not found');
      return stopped(`dockerd is installed but nothing answers on ${socket}`);
    },
    async fix(ctx) {
      const socket = dockerSocketPath(ctx.env);
      if (await pingDocker(socket)) return void (await importCheckImage(ctx, socket));
      if (hasSystemd()) await ctx.runner.run(['systemctl', 'start', 'docker']);
      else await ctx.runner.spawnDetached(['dockerd', '-H', `unix://${socket}`], { logFile: `${ctx.config.stateDir}/log/dockerd.log` });
      for (let i = 0; i < 300 && !ctx.runner.dryRun && !(await pingDocker(socket, 500)); i++) await sleep(100);
      await importCheckImage(ctx, socket);
    },
  },
  binaryCheck('etcd', 'etcd-server', ['etcd']),
  binaryCheck('etcdctl', 'etcd-client', ['etcdctl']),
  binaryCheck('iproute2', 'iproute2', ['ip']),
  binaryCheck('ssh', 'openssh-client', ['ssh']),
  binaryCheck('util-linux', 'util-linux', ['blkid', 'wipefs', 'losetup', 'mount']),
  optionalCheck('iptables', 'iptables', ['iptables'], "opens knarr's cluster bridge in docker's firewall"),
  optionalCheck('e2fsprogs', 'e2fsprogs', ['mkfs.ext4'], 'formats LVM volumes'),
  optionalCheck('sshd', 'openssh-server', ['sshd', 'ssh-keygen'], 'serves this host as an ssh:// dot remote'),
  optionalCheck('openssl', 'openssl', ['openssl'], 'makes TLS certificates for daemon --tls-cert'),
  optionalCheck('zsh', 'zsh', ['zsh'], 'zsh completion'),
  optionalCheck('fish', 'fish', ['fish'], 'fish completion'),
  optionalCheck('man', 'man-db', ['man'], 'man knarr'),
  {
    // bash loads completion files (knarr's among them) only through this package.
    name: 'bash-completion',
    package: 'bash-completion',
    async run() {
      return existsSync(BASH_COMPLETION) ? ok(BASH_COMPLETION) : wanted('not installed (bash completion of knarr)');
    },
  },
  optionalCheck('bindfs', 'bindfs', ['bindfs'], 'the test suite: a FUSE mount whose daemon died'),
  {
    name: 'cluster bridge',
    package: null,
    async run(ctx) {
      const bridge = ctx.config.cluster.bridge;
      if (!haveIptables(ctx.env)) return ok('iptables is not installed: no firewall to pass');
      const fw = await bridgeFirewall(ctx.runner, bridge);
      if (!fw) return warn('iptables cannot list FORWARD here (not root, or no netfilter in this kernel)');
      const exists = existsSync(`/sys/class/net/${bridge}`);
      if (!exists)
        return ok(
          fw.blocking
            ? `no ${bridge} yet; FORWARD drops bridged traffic (docker), so knarr adds ACCEPT rules for ${bridge} when it makes it`
            : `no ${bridge} yet`,
        );
      if (fw.allowed) return ok(`${bridge} has its ACCEPT rules`);
      if (!fw.blocking) return ok(`${bridge} is not filtered (FORWARD policy ${fw.policy})`);
      return stopped(
        `FORWARD policy DROP with bridge-nf-call-iptables=1 and no ACCEPT rule for ${bridge}: cluster nodes cannot reach each other; --fix adds the ` +
          `rules (iptables -I ${await forwardChain(ctx.runner)} -i ${bridge} -j ACCEPT, and -o)`,
      );
    },
    async fix(ctx) {
      await allowBridge(ctx.runner, ctx.env, ctx.config.cluster.bridge);
    },
  },
  {
    name: 'overlayfs',
    package: null,
    async run() {
      return /\boverlay\b/.test(kernelFilesystems()) ? ok('kernel supports overlay') : missing('the kernel does not list overlay');
    },
    async fix(ctx) {
      if (!/\boverlay\b/.test(kernelFilesystems())) await ctx.runner.run(['modprobe', 'overlay']);
    },
  },
  {
    name: 'loop devices',
    package: null,
    async run() {
      return existsSync('/dev/loop-control') ? ok('/dev/loop-control') : missing('/dev/loop-control is absent');
    },
    async fix(ctx) {
      if (!existsSync('/dev/loop-control')) await ctx.runner.run(['modprobe', 'loop']);
    },
  },
  {
    name: 'cgroups',
    package: null,
    async run() {
      if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return ok('cgroup v2');
      if (existsSync('/sys/fs/cgroup/memory') && existsSync('/sys/fs/cgroup/cpu')) return ok('cgroup v1 (memory, cpu)');
      return missing('no cgroup hierarchy under /sys/fs/cgroup');
    },
  },
];

/** The docker socket knarr would use, or null when DOCKER_HOST names one it refuses (the docker check reports that). */
async function dockerSocketOrNull(ctx: Context): Promise<string | null> {
  try {
    return dockerSocketPath(ctx.env);
  } catch {
    return null;
  }
}

async function runChecks(ctx: Context): Promise<CheckResult[]> {
  return Promise.all(
    CHECKS.map(async (c) => {
      const { install, ...r } = { install: undefined as boolean | undefined, ...(await c.run(ctx)) };
      return { name: c.name, package: c.package, ...r, ...(install === undefined ? {} : { install }) };
    }),
  );
}

/** `knarr doctor [--fix]`: host prerequisites, with the Debian package for each; --fix installs and starts them. */
export async function doctor(opts: { fix: boolean }, ctx: Context): Promise<CommandResult> {
  let results = await runChecks(ctx);
  const fixes: string[] = [];
  if (opts.fix) {
    const packages = [...new Set(results.filter((r) => r.install === true && r.package).map((r) => r.package!))];
    if (packages.length > 0) {
      ctx.events.step(`installing ${packages.join(' ')}`);
      const env = { DEBIAN_FRONTEND: 'noninteractive' };
      await ctx.runner.run(['apt-get', 'update', '-q'], { env });
      await ctx.runner.run(['apt-get', 'install', '-y', '-q', ...packages], { env });
      fixes.push(`installed ${packages.join(', ')}`);
    }
    for (const check of CHECKS) {
      const before = results.find((r) => r.name === check.name);
      if (check.fix && before?.status === 'missing') {
        ctx.events.step(`fixing ${check.name}`);
        await check.fix(ctx);
        fixes.push(`fixed ${check.name}`);
      }
    }
    // The check may pass on another busybox-named image while the one the examples name is missing: that is made too.
    const socket = results.find((r) => r.name === 'docker')?.status === 'ok' ? await dockerSocketOrNull(ctx) : null;
    if (socket && (await importCheckImage(ctx, socket))) fixes.push(`imported ${CHECK_IMAGE}`);
    ctx.events.done();
    if (!ctx.runner.dryRun) results = await runChecks(ctx);
  }
  const failed = results.filter((r) => r.status === 'missing');
  return {
    data: { ok: failed.length === 0, checks: results, fixes },
    view: {
      kind: 'table',
      columns: ['CHECK', 'STATUS', 'PACKAGE', 'DETAIL'],
      rows: results.map((r) => [r.name, r.status, r.package ?? '-', r.detail]),
    },
    exitCode: failed.length === 0 || ctx.runner.dryRun ? ExitCode.ok : ExitCode.prerequisite,
  };
}
