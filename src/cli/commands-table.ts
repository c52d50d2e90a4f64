import type { Handler } from '../commands/types.js';
import { DRIVER_NAMES } from '../core/pool.js';

export interface OptionDef {
  /** Commander flags, e.g. "-o, --output <format>". */
  flags: string;
  description: string;
  /** Values offered by completion and listed in help; the handler validates. */
  choices?: readonly string[];
  /** The flag may be given several times (values are collected, commas split). */
  repeatable?: boolean;
  /** Environment variable documented for this option. */
  env?: string;
}

export interface ArgDef {
  name: string;
  description: string;
  required?: boolean;
  variadic?: boolean;
  choices?: readonly string[];
}

export interface Example {
  command: string;
  description: string;
}

/** One node of the command tree; a leaf has a handler, a group has subcommands. */
export interface CommandDef {
  name: string;
  summary: string;
  description?: string;
  args?: ArgDef[];
  options?: OptionDef[];
  examples?: Example[];
  /** Loaded only when this command runs, so start-up stays light. */
  handler?: () => Promise<Handler>;
  subcommands?: CommandDef[];
}

export const GLOBAL_OPTIONS: OptionDef[] = [
  { flags: '--json', description: 'print results as JSON (same as -o json)', env: 'KNARR_JSON' },
  { flags: '-o, --output <format>', description: 'result format', choices: ['table', 'json', 'yaml'], env: 'KNARR_OUTPUT' },
  { flags: '--dry-run', description: 'print every command that would change the host, one a line, and change nothing', env: 'KNARR_DRY_RUN' },
  { flags: '-v, --verbose', description: 'show each outside command with its duration on stderr', env: 'KNARR_VERBOSE' },
  { flags: '-q, --quiet', description: 'no progress or warnings on stderr', env: 'KNARR_QUIET' },
  { flags: '--config <file>', description: 'YAML config file (default /etc/knarr/config.yaml when present)', env: 'KNARR_CONFIG' },
  { flags: '--state-dir <dir>', description: 'host state directory (default /var/lib/knarr)', env: 'KNARR_STATE_DIR' },
  { flags: '--etcd <urls>', description: 'comma-separated etcd endpoints of the fleet (default: the managed local etcd)', env: 'KNARR_ETCD' },
  { flags: '--fleet <name>', description: 'fleet name, the root of every etcd key (default "default")', env: 'KNARR_FLEET' },
];

const poolArg: ArgDef = { name: 'pool', description: 'pool name (default: the configured pool, or the only one)' };

export const COMMANDS: CommandDef[] = [
  {
    name: 'pool',
    summary: 'storage pools: zfs, btrfs, lvm or dir, on devices or loop files',
    description:
      'A pool is the storage a host keeps its data on. Drivers: zfs and btrfs (copy-on-write clones, snapshots, send/receive), lvm (thin pool; no send/receive), dir (a plain directory). With no --device a sparse loop file under the state directory is used.',
    subcommands: [
      {
        name: 'init',
        summary: 'create, import or reuse a pool (idempotent)',
        description:
          'Creates the pool, or imports it when its devices already carry it, or reports that it exists. Never recreates a pool. Refuses a device holding another filesystem unless --force.',
        options: [
          { flags: '--name <name>', description: 'pool name (default "knarr", or pool.name in the config file)' },
          { flags: '--driver <driver>', description: 'storage driver (default zfs)', choices: DRIVER_NAMES },
          { flags: '--device <dev>', description: 'block device(s) to build the pool on', repeatable: true },
          { flags: '--loop-file <path>', description: 'sparse image file to build the pool on (default <state-dir>/pools/<name>.img)' },
          { flags: '--size <size>', description: 'size of a new loop file, e.g. 512M, 2G (default 2G)' },
          { flags: '--path <dir>', description: 'directory of a dir pool (default <state-dir>/mnt/<name>)' },
          { flags: '--mountpoint <path>', description: 'where the pool is mounted (default <state-dir>/mnt/<name>)' },
          { flags: '--force', description: 'overwrite a device or file that holds another filesystem' },
        ],
        examples: [
          { command: 'knarr pool init', description: 'a zfs pool "knarr" on a 2G loop file' },
          { command: 'knarr pool init --name data --device /dev/nvme0n1,/dev/nvme1n1', description: 'a zfs pool on two disks' },
          { command: 'knarr pool init --name scratch --driver btrfs --loop-file /srv/scratch.img --size 10G', description: 'btrfs on a loop file' },
          { command: 'knarr --dry-run pool init --name p --device /dev/sdz', description: 'print the zpool commands, change nothing' },
        ],
        handler: () => import('../commands/pool/init.js').then((m) => m.poolInit),
      },
      {
        name: 'status',
        summary: 'health, size and free space of a pool',
        args: [poolArg],
        examples: [{ command: 'knarr --json pool status knarr', description: 'status as JSON' }],
        handler: () => import('../commands/pool/status.js').then((m) => m.poolStatus),
      },
      {
        name: 'list',
        summary: 'pools on this host',
        examples: [{ command: 'knarr pool list', description: 'a table of pools with health and space' }],
        handler: () => import('../commands/pool/list.js').then((m) => m.poolList),
      },
      {
        name: 'destroy',
        summary: 'destroy a pool and all data on it (needs --yes)',
        args: [{ name: 'pool', description: 'pool name', required: true }],
        options: [{ flags: '--yes', description: 'confirm that all data on the pool is to be destroyed' }],
        examples: [{ command: 'knarr pool destroy scratch --yes', description: 'destroy the pool "scratch"' }],
        handler: () => import('../commands/pool/destroy.js').then((m) => m.poolDestroy),
      },
    ],
  },
  {
    name: 'etcd',
    summary: 'the knarr-managed local etcd (the embedded default store)',
    description:
      'knarr keeps fleet state in etcd. With no --etcd, commands use a local etcd that knarr runs itself, with its data on the pool (volume knarr-etcd) or, when there is no pool, under the state directory. It listens on 127.0.0.1 and on a unix socket in <state-dir>/etcd.',
    subcommands: [
      {
        name: 'up',
        summary: 'start the managed etcd and wait until healthy (idempotent)',
        options: [
          { flags: '--pool <name>', description: 'pool whose knarr-etcd volume holds the data (default: the default pool, if any)' },
          { flags: '--client-port <port>', description: 'client port on 127.0.0.1 (default 2379)' },
          { flags: '--peer-port <port>', description: 'peer port on 127.0.0.1 (default 2380)' },
        ],
        examples: [
          { command: 'knarr etcd up', description: 'start etcd with its data on the default pool' },
          { command: 'knarr etcd up --client-port 12379 --peer-port 12380', description: 'on other ports' },
        ],
        handler: () => import('../commands/etcd/up.js').then((m) => m.etcdUp),
      },
      {
        name: 'down',
        summary: 'stop the managed etcd; its data stays',
        examples: [{ command: 'knarr etcd down', description: 'stop etcd' }],
        handler: () => import('../commands/etcd/down.js').then((m) => m.etcdDown),
      },
      {
        name: 'status',
        summary: 'process, health and data place of the etcd in use',
        examples: [{ command: 'knarr --json etcd status', description: 'status as JSON' }],
        handler: () => import('../commands/etcd/status.js').then((m) => m.etcdStatus),
      },
    ],
  },
  {
    name: 'doctor',
    summary: 'check host prerequisites; --fix installs and starts what is missing',
    description:
      'Checks zfs, btrfs, lvm, lxc, a reachable dockerd, etcd, overlayfs, loop devices and cgroups, naming the Debian package for each. Exits 5 when something is missing.',
    options: [{ flags: '--fix', description: 'apt-get install the missing packages and start zfs-fuse and dockerd if needed' }],
    examples: [
      { command: 'knarr doctor', description: 'report what is present' },
      { command: 'knarr doctor --fix', description: 'install and start what is missing' },
    ],
    handler: () => import('../commands/doctor.js').then((m) => m.doctor),
  },
  {
    name: 'completion',
    summary: 'print a shell completion script',
    args: [{ name: 'shell', description: 'bash, zsh or fish', required: true, choices: ['bash', 'zsh', 'fish'] }],
    examples: [
      { command: 'knarr completion bash > /etc/bash_completion.d/knarr', description: 'install bash completion' },
      { command: 'knarr completion fish > ~/.config/fish/completions/knarr.fish', description: 'install fish completion' },
    ],
    handler: () => import('./completion-command.js').then((m) => m.completion),
  },
];

/** Every leaf command with its path, for generators and tests. */
export function leafCommands(defs: CommandDef[] = COMMANDS, prefix: string[] = []): { path: string[]; def: CommandDef }[] {
  return defs.flatMap((d) =>
    d.subcommands ? leafCommands(d.subcommands, [...prefix, d.name]) : [{ path: [...prefix, d.name], def: d }],
  );
}

/** Long option name without dashes or argument: "--loop-file <path>" -> "loop-file". */
export function longName(flags: string): string {
  const m = /--([a-z0-9-]+)/.exec(flags);
  return m ? m[1]! : flags;
}

export function shortName(flags: string): string | null {
  const m = /(?:^|\s)-([a-zA-Z])\b/.exec(flags);
  return m ? m[1]! : null;
}

export function takesValue(flags: string): boolean {
  return /[<[]/.test(flags);
}
