import { FailureError } from '../core/errors.js';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { pathExists } from './mounts.js';
import type { Runner } from './runner.js';

/** One LXC system container's settings, written as its config file. */
export interface LxcNodeConfig {
  name: string;
  hostname: string;
  /** The read-only base image's rootfs. */
  image: string;
  /** The writable layer; LXC puts overlayfs' work dir beside it, so each node has its own parent directory. */
  upper: string;
  bridge: string;
  /** a.b.c.d/24 */
  address: string;
  /** The veth's MAC inside the node: the same wherever the node runs (a migration keeps it). */
  hwaddr: string;
  broadcast: string;
  gateway: string;
  /** Bind mounts: host path, path inside (relative to /), read-only, file or directory. */
  mounts: { source: string; target: string; readOnly: boolean; kind: 'file' | 'dir' }[];
  memoryBytes: number;
  /** Millicores; 0 for no limit. */
  cpuMillis: number;
  /** cgroup v2 only hosts take cgroup2 keys; hybrid and v1 hosts the v1 keys. */
  cgroup2: boolean;
}

/** The container's config file text. PID 1 is the image's /sbin/knarr-init, which exits on lxc-stop's signal. */
export function lxcConfig(c: LxcNodeConfig): string {
  const lines = [
    `lxc.uts.name = ${c.hostname}`,
    `lxc.rootfs.path = overlay:${c.image}:${c.upper}`,
    'lxc.init.cmd = /sbin/knarr-init',
    'lxc.signal.halt = SIGTERM',
    'lxc.autodev = 1',
    'lxc.mount.auto = proc:mixed sys:ro',
    'lxc.apparmor.profile = unconfined',
    'lxc.net.0.type = veth',
    `lxc.net.0.link = ${c.bridge}`,
    'lxc.net.0.flags = up',
    'lxc.net.0.name = eth0',
    'lxc.net.0.mtu = 1450',
    `lxc.net.0.hwaddr = ${c.hwaddr}`,
    `lxc.net.0.ipv4.address = ${c.address} ${c.broadcast}`,
    `lxc.net.0.ipv4.gateway = ${c.gateway}`,
    // Targets are relative to the rootfs: LXC ignores absolute ones on an overlay rootfs.
    ...c.mounts.map((m) => `lxc.mount.entry = ${m.source} ${m.target.replace(/^\/+/, '')} none bind${m.readOnly ? ',ro' : ''},create=${m.kind} 0 0`),
  ];
  const prefix = c.cgroup2 ? 'lxc.cgroup2' : 'lxc.cgroup';
  lines.push(...cgroupLimits(c.memoryBytes, c.cpuMillis, c.cgroup2, false).map(([k, v]) => `${prefix}.${k} = ${v}`));
  return `${lines.join('\n')}\n`;
}

/**
 * The cgroup settings of a memory and cpu limit (0 for none). A config leaves a limit out; live (lxc-cgroup)
 * a limit taken away is written as no limit.
 */
export function cgroupLimits(memoryBytes: number, cpuMillis: number, cgroup2: boolean, live: boolean): [string, string][] {
  const out: [string, string][] = [];
  if (memoryBytes > 0 || live)
    out.push(cgroup2 ? ['memory.max', memoryBytes > 0 ? String(memoryBytes) : 'max'] : ['memory.limit_in_bytes', memoryBytes > 0 ? String(memoryBytes) : '-1']);
  if (cpuMillis > 0 || live) {
    if (cgroup2) out.push(['cpu.max', `${cpuMillis > 0 ? cpuMillis * 100 : 'max'} 100000`]);
    else out.push(['cpu.cfs_period_us', '100000'], ['cpu.cfs_quota_us', cpuMillis > 0 ? String(cpuMillis * 100) : '-1']);
  }
  return out;
}

/** True on a host with only the unified cgroup hierarchy. */
export async function unifiedCgroups(): Promise<boolean> {
  return pathExists('/sys/fs/cgroup/cgroup.controllers');
}

/**
 * LXC containers under knarr's own lxcpath (never the system's). Containers are made by writing
 * their config by hand and removed by deleting their directory: lxc-destroy would delete the rootfs,
 * which for a shared base image is everyone's.
 */
export class Lxc {
  constructor(
    private readonly runner: Runner,
    readonly lxcPath: string,
  ) {}

  private dir(name: string): string {
    return `${this.lxcPath}/${name}`;
  }

  /** Writes the container's config (atomically); creating it is just this. */
  async define(name: string, config: string): Promise<void> {
    if (this.runner.plan(['write', `${this.dir(name)}/config`])) return;
    await mkdir(this.dir(name), { recursive: true });
    await writeFile(`${this.dir(name)}/config.tmp`, config);
    await rename(`${this.dir(name)}/config.tmp`, `${this.dir(name)}/config`);
  }

  async defined(name: string): Promise<boolean> {
    return pathExists(`${this.dir(name)}/config`);
  }

  async config(name: string): Promise<string | null> {
    return readFile(`${this.dir(name)}/config`, 'utf8').catch(() => null);
  }

  /** RUNNING, STOPPED, ... or null when there is no such container. */
  async state(name: string): Promise<string | null> {
    if (!(await this.defined(name))) return null;
    const r = await this.runner.run(['lxc-info', '-P', this.lxcPath, '-n', name, '-s', '-H'], { mutates: false, okExitCodes: [1] });
    return r.exitCode === 0 ? r.stdout.trim() : 'STOPPED';
  }

  /** Starts the container; lxc-start -d returns once it runs. Already running is fine. */
  async start(name: string): Promise<void> {
    // No log file on the way that works (it costs lxc-start a tenth of its time); one probe only when it refused.
    const r = await this.runner.run(['lxc-start', '-P', this.lxcPath, '-n', name, '-d'], { okExitCodes: [1] });
    if (r.exitCode === 0 || (await this.state(name)) === 'RUNNING') return;
    // Once more with a log, for the reason.
    const log = `${this.dir(name)}/lxc.log`;
    const again = await this.runner.run(['lxc-start', '-P', this.lxcPath, '-n', name, '-d', '-o', log, '-l', 'INFO'], { okExitCodes: [1] });
    if (again.exitCode === 0) return;
    const lines = (await readFile(log, 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => /ERROR/.test(l))
      .slice(-3);
    throw new FailureError(`lxc-start ${name} failed: ${lines.join(' | ') || again.stderr.trim() || 'no reason given'}`, {
      hint: `its log is ${log}; knarr doctor checks LXC`,
      detail: { argv: again.argv },
    });
  }

  async stop(name: string): Promise<void> {
    const state = await this.state(name);
    if (state === null || state === 'STOPPED') return;
    // A frozen init cannot act on the signal: it would be killed only after the timeout. Thawed, it exits at once.
    if (state === 'FROZEN') await this.unfreeze(name);
    // init exits on SIGTERM at once; -k after 10 s covers an image without knarr-init.
    await this.runner.run(['lxc-stop', '-P', this.lxcPath, '-n', name, '-t', '10'], { okExitCodes: [2] });
  }

  /** Stops the container and deletes its directory; the rootfs layers are the caller's. */
  async remove(name: string): Promise<void> {
    const state = await this.state(name);
    if (state === null) return;
    if (state !== 'STOPPED') await this.runner.run(['lxc-stop', '-P', this.lxcPath, '-n', name, '-k'], { okExitCodes: [2] });
    if (this.runner.plan(['rm', '-rf', this.dir(name)])) return;
    await rm(this.dir(name), { recursive: true, force: true });
  }

  /** Holds every process of the container in the cgroup freezer; lxc-freeze returns once they are held. */
  async freeze(name: string): Promise<void> {
    await this.runner.run(['lxc-freeze', '-P', this.lxcPath, '-n', name]);
  }

  async unfreeze(name: string): Promise<void> {
    await this.runner.run(['lxc-unfreeze', '-P', this.lxcPath, '-n', name]);
  }

  /** Writes one cgroup setting of the running container; the kernel's refusal comes back as the reason, not thrown. */
  async setCgroup(name: string, key: string, value: string): Promise<string | null> {
    const r = await this.runner.run(['lxc-cgroup', '-P', this.lxcPath, '-n', name, key, value], { okExitCodes: [1] });
    return r.exitCode === 0 ? null : r.stderr.trim() || `lxc-cgroup ${key} ${value} failed`;
  }

  /** Names of the containers defined under knarr's lxcpath. */
  async list(): Promise<string[]> {
    const r = await this.runner.run(['lxc-ls', '-P', this.lxcPath, '-1'], { mutates: false, okExitCodes: [1] });
    return r.stdout
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean);
  }

  /** The lxc-attach command that runs argv inside the container, with only vars (and lxc-attach's own PATH) in its environment. */
  attachArgv(name: string, argv: readonly string[], vars: Readonly<Record<string, string>> = {}): string[] {
    const set = Object.entries(vars).flatMap(([k, v]) => ['--set-var', `${k}=${v}`]);
    return ['lxc-attach', '-P', this.lxcPath, '-n', name, '--clear-env', ...set, '--', ...argv];
  }
}
