import { validateUser } from './cluster.js';
import { ValidationError } from './errors.js';
import { validateTags } from './hosts.js';
import { validateName } from './names.js';
import { parseAge } from './ops.js';
import { parseSize } from './size.js';

/** Which part of knarr a setting belongs to; docs/configuration.md has a section per area. */
export type SettingArea = 'global' | 'pool' | 'etcd' | 'cluster' | 'scheduler' | 'jobs' | 'dots' | 'daemon';
export type SettingKind = 'string' | 'boolean' | 'number' | 'list';
export type SettingSource = 'flag' | 'env' | 'file' | 'default';

/** One setting: where it can be given and how its value is read. Every one resolves flag > env > file > default. */
export interface SettingDef {
  /** The config-file key (a dot nests: daemon.tags); also the setting's name. */
  readonly key: string;
  readonly area: SettingArea;
  readonly kind: SettingKind;
  readonly env: string;
  /** Commander flags: a global option, or an option of `command` (whose handler applies it) when that is set. */
  readonly flag?: string;
  readonly command?: string;
  /** False when the config file cannot hold it (the file's own name, a secret). */
  readonly inFile?: boolean;
  /** The value when nothing gives it; undefined when it is derived (shown as defaultText). */
  readonly default?: unknown;
  readonly defaultText: string;
  readonly help: string;
  readonly choices?: readonly string[];
  /** A list flag may be given several times. */
  readonly repeatable?: boolean;
  /** A set but empty variable is a value (checked by parse), not "unset". */
  readonly emptyIsValue?: boolean;
  /** Checks and converts the value; field names its source (the flag, the variable, or file: key). */
  readonly parse?: (value: never, field: string, source: SettingSource) => unknown;
}

/** A setting's value with where it came from. */
export interface Picked<T = unknown> {
  readonly value: T;
  readonly field: string;
  readonly source: SettingSource;
}

/** A /16 network written a.b.0.0/16: users' /24 subnets are a.b.N.0/24. */
export function validateClusterNetwork(field: string, v: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.0\.0\/16$/.exec(v);
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255) throw new ValidationError(field, `${JSON.stringify(v)} is not a /16 network such as 10.240.0.0/16`);
  return v;
}

export function validateStrategy(field: string, v: string): 'spread' | 'binpack' {
  if (v !== 'spread' && v !== 'binpack')
    throw new ValidationError(field, `${JSON.stringify(v)} is not a strategy; use spread (the emptiest host) or binpack (the fullest that fits)`);
  return v;
}

/** A Linux interface name: at most 15 characters, no slash or space. */
export function validateBridgeName(field: string, v: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/.test(v))
    throw new ValidationError(field, `${JSON.stringify(v)} is not an interface name (letters, digits, _ . -, at most 15 characters)`);
  return v;
}

/** The URL with its password hidden, for messages. */
function redactUserinfo(url: string): string {
  return url.replace(/\/\/([^/@]*)@/, (_, info: string) => `//${info.includes(':') ? `${info.split(':')[0]}:***` : info}@`);
}

export function validateEndpoint(field: string, url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError(field, `${JSON.stringify(url)} is not a URL; write it like http://10.0.0.1:2379`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ValidationError(field, `${JSON.stringify(url)} must use http:// or https://`);
  }
  // The gateway client speaks to the endpoint's root, without credentials: anything else would fail later as a bare 401 or 404.
  if (parsed.username !== '' || parsed.password !== '') {
    throw new ValidationError(
      field,
      `${JSON.stringify(redactUserinfo(url))} carries a user and password; give http(s)://HOST:PORT, and the user with --etcd-user ` +
        `(its password in --etcd-password-file or KNARR_ETCD_PASSWORD)`,
    );
  }
  if (parsed.pathname !== '/' && parsed.pathname !== '' && parsed.pathname.replace(/\/+$/, '') !== '') {
    throw new ValidationError(field, `${JSON.stringify(url)} has a path (${parsed.pathname}); an etcd endpoint is http(s)://HOST:PORT`);
  }
  if (parsed.search !== '' || parsed.hash !== '')
    throw new ValidationError(field, `${JSON.stringify(url)} has a query or fragment; an etcd endpoint is http(s)://HOST:PORT`);
  return url.replace(/\/+$/, '');
}

export function validatePort(field: string, v: unknown): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) {
    throw new ValidationError(field, `${JSON.stringify(v)} is not a port; use a number from 1 to 65535`);
  }
  return n;
}

export function parseListen(field: string, text: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(text);
  if (!m?.[1]) throw new ValidationError(field, `${JSON.stringify(text)} is not ADDRESS:PORT, e.g. 127.0.0.1:7946`);
  return { host: m[1], port: validatePort(field, m[2]!) };
}

const wholeSeconds = (min: number, max: number) => (v: number, field: string) => {
  if (!Number.isInteger(v) || v < min || v > max) throw new ValidationError(field, `must be a whole number of seconds from ${min} to ${max}`);
  return v;
};

/** The settings table: docs/configuration.md, the man page's ENVIRONMENT and the global flags are generated from it. */
export const SETTINGS: readonly SettingDef[] = [
  {
    key: 'json',
    area: 'global',
    kind: 'boolean',
    env: 'KNARR_JSON',
    flag: '--json',
    inFile: false,
    default: false,
    defaultText: 'off',
    help: 'print results as JSON (same as -o json)',
  },
  {
    key: 'output',
    area: 'global',
    kind: 'string',
    env: 'KNARR_OUTPUT',
    flag: '-o, --output <format>',
    default: 'table',
    defaultText: 'table',
    help: 'result format; wide adds the columns lists keep for it',
    choices: ['table', 'json', 'yaml', 'wide'],
    parse: (v: string, field: string) => {
      if (!['table', 'json', 'yaml', 'wide'].includes(v))
        throw new ValidationError(field, `${JSON.stringify(v)} is not a format; use table, wide, json or yaml`);
      return v;
    },
  },
  {
    key: 'headers',
    area: 'global',
    kind: 'boolean',
    env: 'KNARR_HEADERS',
    flag: '--headers',
    default: true,
    defaultText: 'on',
    help: 'tables print a header line; --no-headers (KNARR_HEADERS=0) prints the rows only, for scripts',
  },
  {
    key: 'dryRun',
    area: 'global',
    kind: 'boolean',
    env: 'KNARR_DRY_RUN',
    flag: '--dry-run',
    default: false,
    defaultText: 'off',
    help: 'print every command that would change the host, one a line, and change nothing',
  },
  {
    key: 'verbose',
    area: 'global',
    kind: 'boolean',
    env: 'KNARR_VERBOSE',
    flag: '-v, --verbose',
    default: false,
    defaultText: 'off',
    help: 'show each outside command with its duration on stderr',
  },
  {
    key: 'quiet',
    area: 'global',
    kind: 'boolean',
    env: 'KNARR_QUIET',
    flag: '-q, --quiet',
    default: false,
    defaultText: 'off',
    help: 'no progress or warnings on stderr',
  },
  {
    key: 'wait',
    area: 'global',
    kind: 'boolean',
    env: 'KNARR_WAIT',
    flag: '--wait',
    default: true,
    defaultText: 'on',
    help: 'when another command is changing the same dot (or pushing to the same remote), wait for it; --no-wait (KNARR_WAIT=0) fails at once with exit 4',
  },
  {
    key: 'config',
    area: 'global',
    kind: 'string',
    env: 'KNARR_CONFIG',
    flag: '--config <file>',
    inFile: false,
    defaultText: '/etc/knarr/config.yaml when present',
    help: 'YAML config file; a file named here must exist',
  },
  {
    key: 'stateDir',
    area: 'global',
    kind: 'string',
    env: 'KNARR_STATE_DIR',
    flag: '--state-dir <dir>',
    default: '/var/lib/knarr',
    defaultText: '/var/lib/knarr',
    help: 'host state directory',
  },
  {
    key: 'etcd',
    area: 'global',
    kind: 'list',
    env: 'KNARR_ETCD',
    flag: '--etcd <urls>',
    default: [],
    defaultText: 'the managed local etcd',
    help: 'comma-separated etcd endpoints of the fleet, http(s)://HOST:PORT',
    emptyIsValue: true,
    parse: (items: string[], field: string, source: SettingSource) => {
      const v = items.filter((u) => u !== '');
      // An empty value (a script's unset variable) must not quietly mean a new, empty managed store.
      if (v.length === 0 && source !== 'file')
        throw new ValidationError(
          field,
          `is empty; give the fleet's endpoints (e.g. http://10.0.0.1:2379), or leave ${field} out for this host's managed etcd`,
        );
      return v.map((u) => validateEndpoint(field, u));
    },
  },
  {
    key: 'etcdCa',
    area: 'global',
    kind: 'string',
    env: 'KNARR_ETCD_CA',
    flag: '--etcd-ca <file>',
    defaultText: "the system's CAs",
    help: "PEM CA file that signed the etcd members' certificates (https:// endpoints)",
  },
  {
    key: 'etcdCert',
    area: 'global',
    kind: 'string',
    env: 'KNARR_ETCD_CERT',
    flag: '--etcd-cert <file>',
    defaultText: 'none',
    help: 'PEM client certificate for an etcd that requires one (--client-cert-auth); with --etcd-key',
  },
  {
    key: 'etcdKey',
    area: 'global',
    kind: 'string',
    env: 'KNARR_ETCD_KEY',
    flag: '--etcd-key <file>',
    defaultText: 'none',
    help: 'PEM private key of --etcd-cert',
  },
  {
    key: 'etcdUser',
    area: 'global',
    kind: 'string',
    env: 'KNARR_ETCD_USER',
    flag: '--etcd-user <name>',
    defaultText: 'none: no etcd auth',
    help: 'etcd user to authenticate as (etcd auth); the password comes from --etcd-password-file or KNARR_ETCD_PASSWORD',
  },
  {
    key: 'etcdPasswordFile',
    area: 'global',
    kind: 'string',
    env: 'KNARR_ETCD_PASSWORD_FILE',
    flag: '--etcd-password-file <file>',
    defaultText: 'none',
    help: 'a file holding the password of --etcd-user (its first line)',
  },
  {
    key: 'etcdPassword',
    area: 'global',
    kind: 'string',
    env: 'KNARR_ETCD_PASSWORD',
    inFile: false,
    defaultText: 'read from etcdPasswordFile',
    help: 'the password of --etcd-user (a variable, never a flag: flags show in ps)',
  },
  {
    key: 'fleet',
    area: 'global',
    kind: 'string',
    env: 'KNARR_FLEET',
    flag: '--fleet <name>',
    default: 'default',
    defaultText: '"default"',
    help: 'fleet name, the root of every etcd key',
    parse: (v: string, field: string) => validateName(field, v),
  },
  {
    key: 'opRetention',
    area: 'global',
    kind: 'string',
    env: 'KNARR_OP_RETENTION',
    default: '7d',
    defaultText: '7d',
    help: 'agents remove ended operations and job history older than this (0: never)',
    parse: (v: string, field: string) => (parseAge(field, v), v),
  },
  {
    key: 'pool.name',
    area: 'pool',
    kind: 'string',
    env: 'KNARR_POOL_NAME',
    flag: '--name <name>',
    command: 'pool init',
    default: 'knarr',
    defaultText: 'knarr',
    help: 'the pool of pool init, and the default pool of other commands (their --pool wins)',
  },
  {
    key: 'pool.driver',
    area: 'pool',
    kind: 'string',
    env: 'KNARR_POOL_DRIVER',
    flag: '--driver <driver>',
    command: 'pool init',
    default: 'zfs',
    defaultText: 'zfs',
    help: 'driver of a new pool',
    choices: ['zfs', 'btrfs', 'lvm', 'dir'],
  },
  {
    key: 'pool.size',
    area: 'pool',
    kind: 'string',
    env: 'KNARR_POOL_SIZE',
    flag: '--size <size>',
    command: 'pool init',
    default: '2G',
    defaultText: '2G',
    help: 'size of a new loop file',
  },
  {
    key: 'etcdServer.clientPort',
    area: 'etcd',
    kind: 'number',
    env: 'KNARR_ETCD_CLIENT_PORT',
    flag: '--client-port <port>',
    command: 'etcd up',
    default: 2379,
    defaultText: '2379',
    help: 'client port of the managed etcd',
    parse: (v: number, field: string) => validatePort(field, v),
  },
  {
    key: 'etcdServer.peerPort',
    area: 'etcd',
    kind: 'number',
    env: 'KNARR_ETCD_PEER_PORT',
    flag: '--peer-port <port>',
    command: 'etcd up',
    default: 2380,
    defaultText: '2380',
    help: 'peer port of the managed etcd',
    parse: (v: number, field: string) => validatePort(field, v),
  },
  {
    key: 'cluster.network',
    area: 'cluster',
    kind: 'string',
    env: 'KNARR_CLUSTER_NETWORK',
    default: '10.240.0.0/16',
    defaultText: '10.240.0.0/16',
    help: "the /16 each user's /24 cluster subnet comes from",
    parse: (v: string, field: string) => validateClusterNetwork(field, v),
  },
  {
    key: 'cluster.bridge',
    area: 'cluster',
    kind: 'string',
    env: 'KNARR_CLUSTER_BRIDGE',
    default: 'knarrbr0',
    defaultText: 'knarrbr0',
    help: "the clusters' bridge on every host",
    parse: (v: string, field: string) => validateBridgeName(field, v),
  },
  {
    key: 'cluster.user',
    area: 'cluster',
    kind: 'string',
    env: 'KNARR_USER',
    flag: '--user <user>',
    command: 'cluster COMMAND',
    defaultText: 'the login name',
    help: 'owner of clusters',
    parse: (v: string, field: string) => validateUser(field, v),
  },
  {
    key: 'scheduler.strategy',
    area: 'scheduler',
    kind: 'string',
    env: 'KNARR_SCHEDULER_STRATEGY',
    default: 'spread',
    defaultText: 'spread',
    help: 'how hosts that fit are ranked: spread (the emptiest) or binpack (the fullest)',
    choices: ['spread', 'binpack'],
    parse: (v: string, field: string) => validateStrategy(field, v),
  },
  {
    key: 'jobs.agentToken',
    area: 'jobs',
    kind: 'string',
    env: 'KNARR_AGENT_TOKEN',
    inFile: false,
    defaultText: 'read from jobs.agentTokenFile',
    help: "the agents' API token, for the CLI",
  },
  {
    key: 'jobs.agentTokenFile',
    area: 'jobs',
    kind: 'string',
    env: 'KNARR_AGENT_TOKEN_FILE',
    defaultText: '<state-dir>/agent.token',
    help: "a file holding the agents' API token",
  },
  {
    key: 'jobs.agentCa',
    area: 'jobs',
    kind: 'string',
    env: 'KNARR_AGENT_CA',
    defaultText: 'none',
    help: 'a PEM CA file to trust when agents speak https (then only https agents get the token)',
  },
  {
    key: 'dots.author',
    area: 'dots',
    kind: 'string',
    env: 'KNARR_AUTHOR',
    flag: '--author <name>',
    command: 'dot commit',
    defaultText: 'user@host',
    help: 'author of dot commits',
  },
  {
    key: 'dots.sshConfig',
    area: 'dots',
    kind: 'string',
    env: 'KNARR_SSH_CONFIG',
    defaultText: "ssh's own",
    help: 'ssh_config file for ssh:// remotes (ssh -F)',
  },
  {
    key: 'dots.remoteKnarr',
    area: 'dots',
    kind: 'string',
    env: 'KNARR_REMOTE_KNARR',
    default: 'knarr',
    defaultText: 'knarr',
    help: 'the knarr command on the other host of an ssh:// remote; several words (sudo knarr) are split as a shell would',
  },
  {
    key: 'dots.hubTokenFile',
    area: 'dots',
    kind: 'string',
    env: 'KNARR_HUB_TOKEN_FILE',
    defaultText: 'none (public dots only)',
    help: 'a file holding a hub token (knh_...) for hub URLs given in place of a remote name and hub remotes added without --token-file',
  },
  {
    key: 'dots.hubCaFile',
    area: 'dots',
    kind: 'string',
    env: 'KNARR_HUB_CA_FILE',
    defaultText: "the system's CAs",
    help: 'a PEM CA file to trust for https hub URLs given in place of a remote name and hub remotes added without --ca-file',
  },
  {
    key: 'daemon.name',
    area: 'daemon',
    kind: 'string',
    env: 'KNARR_DAEMON_NAME',
    flag: '--name <host>',
    command: 'daemon',
    defaultText: 'the hostname',
    help: 'host name',
    parse: (v: string, field: string) => validateName(field, v, 64),
  },
  {
    key: 'daemon.tags',
    area: 'daemon',
    kind: 'list',
    env: 'KNARR_DAEMON_TAGS',
    flag: '--tags <tags>',
    command: 'daemon',
    repeatable: true,
    default: [],
    defaultText: 'none',
    help: 'comma-separated tags',
    parse: (v: string[], field: string) => validateTags(field, v),
  },
  {
    key: 'daemon.listen',
    area: 'daemon',
    kind: 'string',
    env: 'KNARR_DAEMON_LISTEN',
    flag: '--listen <addr:port>',
    command: 'daemon',
    default: '127.0.0.1:7946',
    defaultText: '127.0.0.1:7946',
    help: 'API address',
    parse: (v: string, field: string) => parseListen(field, v),
  },
  {
    key: 'daemon.ttl',
    area: 'daemon',
    kind: 'number',
    env: 'KNARR_DAEMON_TTL',
    flag: '--ttl <seconds>',
    command: 'daemon',
    default: 10,
    defaultText: '10',
    help: 'lease time to live, 2 to 300 seconds',
    parse: wholeSeconds(2, 300),
  },
  {
    key: 'daemon.tokenFile',
    area: 'daemon',
    kind: 'string',
    env: 'KNARR_DAEMON_TOKEN_FILE',
    flag: '--token-file <file>',
    command: 'daemon',
    defaultText: '<state-dir>/agent.token',
    help: 'API token file',
  },
  {
    key: 'daemon.tlsCert',
    area: 'daemon',
    kind: 'string',
    env: 'KNARR_DAEMON_TLS_CERT',
    flag: '--tls-cert <file>',
    command: 'daemon',
    defaultText: 'none: http',
    help: 'PEM certificate: serve the API over https (with --tls-key)',
  },
  {
    key: 'daemon.tlsKey',
    area: 'daemon',
    kind: 'string',
    env: 'KNARR_DAEMON_TLS_KEY',
    flag: '--tls-key <file>',
    command: 'daemon',
    defaultText: 'none',
    help: 'PEM private key of --tls-cert',
  },
  {
    key: 'daemon.maxConnections',
    area: 'daemon',
    kind: 'number',
    env: 'KNARR_DAEMON_MAX_CONNECTIONS',
    flag: '--max-connections <n>',
    command: 'daemon',
    default: 1024,
    defaultText: '1024',
    help: 'open API connections at most; past it the oldest idle one is closed for the new one',
    parse: (v: number, field: string) => {
      if (!Number.isInteger(v) || v < 8 || v > 65536) throw new ValidationError(field, 'must be a whole number of connections from 8 to 65536');
      return v;
    },
  },
  {
    key: 'daemon.allowHostMounts',
    area: 'daemon',
    kind: 'boolean',
    env: 'KNARR_DAEMON_ALLOW_HOST_MOUNTS',
    flag: '--allow-host-mounts',
    command: 'daemon',
    default: true,
    defaultText: 'on',
    help: "let jobs bind any host path; --no-allow-host-mounts refuses paths outside this host's pools and the docker socket",
  },
  {
    key: 'daemon.advertise',
    area: 'daemon',
    kind: 'string',
    env: 'KNARR_DAEMON_ADVERTISE',
    flag: '--advertise <ip>',
    command: 'daemon',
    defaultText: 'the --listen address',
    help: "address other hosts reach this host's services at",
  },
  {
    key: 'daemon.prune',
    area: 'daemon',
    kind: 'boolean',
    env: 'KNARR_DAEMON_PRUNE',
    flag: '--prune',
    command: 'daemon',
    default: false,
    defaultText: 'off: report them in host show',
    help: 'remove containers knarr has no job for',
  },
  {
    key: 'daemon.mode',
    area: 'daemon',
    kind: 'string',
    env: 'KNARR_DAEMON_MODE',
    flag: '--mode <mode>',
    command: 'daemon',
    default: 'recovery',
    defaultText: 'recovery',
    help: "fleet start mode: recovery (start this host's clusters again) or new (delete them)",
    choices: ['recovery', 'new'],
    parse: (v: string, field: string) => {
      if (v !== 'new' && v !== 'recovery') throw new ValidationError(field, "use recovery (keep clusters) or new (delete this host's clusters)");
      return v;
    },
  },
  {
    key: 'daemon.share',
    area: 'daemon',
    kind: 'string',
    env: 'KNARR_DAEMON_SHARE',
    flag: '--share <dir>',
    command: 'daemon',
    defaultText: 'none',
    help: "the fleet's shared data directory; joining proves this host sees it",
  },
  {
    key: 'daemon.drainTimeout',
    area: 'daemon',
    kind: 'number',
    env: 'KNARR_DAEMON_DRAIN_TIMEOUT',
    flag: '--drain-timeout <seconds>',
    command: 'daemon',
    default: 30,
    defaultText: '30',
    help: 'on SIGTERM, how long running foreground jobs and the operation in progress get to end',
    parse: wholeSeconds(0, 3600),
  },
  {
    key: 'daemon.restartGrace',
    area: 'daemon',
    kind: 'number',
    env: 'KNARR_DAEMON_RESTART_GRACE',
    flag: '--restart-grace <seconds>',
    command: 'daemon',
    default: 30,
    defaultText: '30',
    help: "how long the fleet waits for this host's agent to start again before it moves the host's jobs (SIGTERM or a crash; 0: at once)",
    parse: wholeSeconds(0, 3600),
  },
  {
    key: 'daemon.collectEvery',
    area: 'daemon',
    kind: 'number',
    env: 'KNARR_DAEMON_COLLECT_EVERY',
    flag: '--collect-every <seconds>',
    command: 'daemon',
    default: 300,
    defaultText: '300',
    help: 'how often the agent removes cluster containers, volumes and hosts files that no cluster owns (0: never)',
    parse: wholeSeconds(0, 86400),
  },
  {
    key: 'daemon.leaveOnStop',
    area: 'daemon',
    kind: 'boolean',
    env: 'KNARR_DAEMON_LEAVE_ON_STOP',
    flag: '--leave-on-stop',
    command: 'daemon',
    default: false,
    defaultText: 'off: SIGTERM keeps the jobs for --restart-grace',
    help: "on SIGTERM, give the lease back at once: the host's jobs move without waiting for the restart grace",
  },
  {
    key: 'daemon.etcdDefragCheck',
    area: 'daemon',
    kind: 'number',
    env: 'KNARR_DAEMON_ETCD_DEFRAG_CHECK',
    command: 'daemon',
    default: 300,
    defaultText: '300',
    help: "how often (seconds) the agent checks whether this host's managed etcd member is worth defragmenting (0: never)",
    parse: wholeSeconds(0, 86400),
  },
  {
    key: 'daemon.etcdDefragMinFree',
    area: 'daemon',
    kind: 'string',
    env: 'KNARR_DAEMON_ETCD_DEFRAG_MIN_FREE',
    command: 'daemon',
    default: '64M',
    defaultText: '64M',
    help: "space freed inside this host's etcd database (by compaction) that makes a defragmentation worth it; a quarter of the file at least",
    parse: (v: string, field: string) => (parseSize(field, v), v),
  },
  {
    key: 'hub.dir',
    area: 'dots',
    kind: 'string',
    env: 'KNARR_HUB_DIR',
    flag: '--hub <dir>',
    command: 'daemon',
    defaultText: 'none: no hub',
    help: "serve a dots hub from this directory on the agent's API under /hub/v1/ (knarr hub token create makes its tokens)",
  },
];

const BY_KEY = new Map(SETTINGS.map((s) => [s.key, s]));

export function setting(key: string): SettingDef {
  const s = BY_KEY.get(key);
  if (!s) throw new Error(`no setting ${key}`);
  return s;
}

/** The long flag without its value ("--state-dir"). */
export function longFlag(s: SettingDef): string | undefined {
  return s.flag?.split(/[ ,]+/).find((f) => f.startsWith('--'));
}

const FLAG_KEYS = new Map<SettingDef, string | undefined>();

/** The name commander gives the flag's value ("stateDir"). */
export function flagKey(s: SettingDef): string | undefined {
  if (!FLAG_KEYS.has(s))
    FLAG_KEYS.set(
      s,
      longFlag(s)
        ?.slice(2)
        .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()),
    );
  return FLAG_KEYS.get(s);
}

/** Comma-separated items, trimmed; empty ones are kept for the setting's parser to refuse or drop. */
export function splitList(v: string): string[] {
  return v.split(',').map((s) => s.trim());
}

function parseBool(field: string, v: string): boolean {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ValidationError(field, `${JSON.stringify(v)} is not a boolean; use 1 or 0`);
}

/** A flag's or variable's text as the setting's kind. */
function fromText(s: SettingDef, field: string, v: string): unknown {
  if (s.kind === 'boolean') return parseBool(field, v);
  if (s.kind === 'list') return splitList(v);
  if (s.kind === 'number') {
    if (!/^-?\d+(\.\d+)?$/.test(v.trim())) throw new ValidationError(field, `${JSON.stringify(v)} is not a number`);
    return Number(v);
  }
  return v;
}

const KIND_WANTED: Record<SettingKind, string> = {
  string: 'must be a string',
  boolean: 'must be true or false',
  number: 'must be a number',
  list: 'must be a list of strings or one comma-separated string',
};

/** A config-file value as the setting's kind; a wrong type names the file and key. */
function fromFile(s: SettingDef, field: string, v: unknown): unknown {
  if (s.kind === 'string' && typeof v === 'string') return v;
  if (s.kind === 'boolean' && typeof v === 'boolean') return v;
  if (s.kind === 'number' && (typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v)))) return Number(v);
  if (s.kind === 'list' && typeof v === 'string') return splitList(v);
  if (s.kind === 'list' && Array.isArray(v) && v.every((t) => typeof t === 'string')) return v.flatMap((t: string) => splitList(t));
  throw new ValidationError(field, KIND_WANTED[s.kind]);
}

function fileValue(file: Readonly<Record<string, unknown>>, key: string): unknown {
  let v: unknown = file;
  for (const part of key.split('.')) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** Where each layer comes from: flags as commander hands them over, the environment, the parsed config file. */
export interface SettingLayers {
  readonly flags?: Readonly<Record<string, unknown>>;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly file?: Readonly<Record<string, unknown>>;
  readonly configFile?: string | null;
  /** Flags apply to the settings of this command (none: the global ones). */
  readonly command?: string;
}

/** Runs the setting's parser on a value a layer gave. */
export function parsePicked(s: SettingDef, picked: Picked): Picked {
  return s.parse
    ? { ...picked, value: (s.parse as (v: unknown, f: string, src: SettingSource) => unknown)(picked.value, picked.field, picked.source) }
    : picked;
}

/** The setting's value from the first layer that gives it (flag > env > file), checked and converted; null when none does. */
export function pickSetting(s: SettingDef, layers: SettingLayers, parse = true): Picked | null {
  const key = flagKey(s);
  const flag = key === undefined || s.command !== layers.command ? undefined : layers.flags?.[key];
  let picked: Picked | null = null;
  // A negatable boolean's false (--no-x) is a value: it switches off what env or file switched on.
  if (flag !== undefined && !(Array.isArray(flag) && flag.length === 0)) {
    const field = longFlag(s)!;
    const value = typeof flag === 'string' ? fromText(s, field, flag) : Array.isArray(flag) ? flag.flatMap((t: string) => splitList(String(t))) : flag;
    picked = { value, field, source: 'flag' };
  } else {
    const text = layers.env?.[s.env];
    if (text !== undefined && (text !== '' || s.emptyIsValue)) picked = { value: fromText(s, s.env, text), field: s.env, source: 'env' };
    else if (s.inFile !== false && layers.file) {
      const v = fileValue(layers.file, s.key);
      const field = `${layers.configFile ?? 'config'}: ${s.key}`;
      if (v !== undefined) picked = { value: fromFile(s, field, v), field, source: 'file' };
    }
  }
  if (picked === null || !parse) return picked;
  return parsePicked(s, picked);
}

/** The setting's value, or its default when no layer gives it. */
export function resolveSetting<T>(key: string, layers: SettingLayers): Picked<T> {
  const s = setting(key);
  return (pickSetting(s, layers) ?? { value: s.default, field: longFlag(s) ?? s.env, source: 'default' }) as Picked<T>;
}

/**
 * The settings of one config-file section (daemon) that env or file give, by their key in the section;
 * of the kind the table says, but not yet parsed: the command's flags, applied later, may set them aside.
 */
export function sectionLayer(section: string, layers: SettingLayers): Readonly<Record<string, Picked>> {
  const out: Record<string, Picked> = {};
  for (const s of SETTINGS) {
    if (!s.key.startsWith(`${section}.`)) continue;
    const p = pickSetting(s, layers, false);
    if (p !== null) out[s.key.slice(section.length + 1)] = p;
  }
  return Object.freeze(out);
}

/** Checks the parsed YAML config file against the table; every unknown key or wrong type names its path. */
export function validateConfigFile(file: string, raw: unknown): Record<string, unknown> {
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ValidationError(file, 'must be a YAML mapping of settings (for example "stateDir: /var/lib/knarr")');
  }
  const obj = raw as Record<string, unknown>;
  const inFile = SETTINGS.filter((s) => s.inFile !== false);
  const top = [...new Set(inFile.map((s) => s.key.split('.')[0]!))];
  for (const [key, value] of Object.entries(obj)) {
    const field = `${file}: ${key}`;
    if (!top.includes(key)) throw new ValidationError(field, `unknown setting; known settings are ${top.join(', ')}`);
    const subs = inFile.filter((s) => s.key.startsWith(`${key}.`)).map((s) => s.key.slice(key.length + 1));
    if (subs.length === 0) continue;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationError(field, 'must be a mapping');
    for (const sub of Object.keys(value)) {
      if (!subs.includes(sub)) throw new ValidationError(`${field}.${sub}`, `unknown setting; known settings are ${subs.join(', ')}`);
    }
  }
  // Types are checked here too, so a wrong one is reported even when a flag or variable overrides it.
  for (const s of inFile) {
    const v = fileValue(obj, s.key);
    if (v !== undefined) fromFile(s, `${file}: ${s.key}`, v);
  }
  return obj;
}
