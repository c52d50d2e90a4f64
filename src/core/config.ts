import { ValidationError } from './errors.js';
import { validateName, validatePath } from './names.js';
import { parseAge } from './ops.js';

export type OutputFormat = 'table' | 'json' | 'yaml';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'json', 'yaml'];

/** The resolved, frozen configuration every handler reads from ctx.config. */
export interface Config {
  readonly output: OutputFormat;
  readonly dryRun: boolean;
  readonly verbose: boolean;
  readonly quiet: boolean;
  readonly configFile: string | null;
  readonly stateDir: string;
  /** External etcd endpoints; empty means the knarr-managed local etcd. */
  readonly etcd: readonly string[];
  readonly fleet: string;
  readonly pool: { readonly name: string; readonly driver: string; readonly size: string };
  readonly etcdServer: { readonly clientPort: number; readonly peerPort: number };
  /** LXC clusters: the /16 users' /24 subnets come from, and the bridge on every host. */
  readonly cluster: { readonly network: string; readonly bridge: string };
  /** How the scheduler ranks the hosts that fit a job. */
  readonly scheduler: { readonly strategy: 'spread' | 'binpack' };
  /** The file's `daemon:` section, checked for keys and types; `knarr daemon` resolves it with its flags. */
  readonly daemon: Readonly<Record<string, unknown>>;
  /** How long ended operations and job history are kept before the agent removes them (0: kept for ever). */
  readonly opRetentionMs: number;
}

export const DEFAULT_CONFIG_FILE = '/etc/knarr/config.yaml';

export const DEFAULTS: Config = Object.freeze({
  output: 'table',
  dryRun: false,
  verbose: false,
  quiet: false,
  configFile: null,
  stateDir: '/var/lib/knarr',
  etcd: [],
  fleet: 'default',
  pool: Object.freeze({ name: 'knarr', driver: 'zfs', size: '2G' }),
  etcdServer: Object.freeze({ clientPort: 2379, peerPort: 2380 }),
  cluster: Object.freeze({ network: '10.240.0.0/16', bridge: 'knarrbr0' }),
  scheduler: Object.freeze({ strategy: 'spread' as const }),
  daemon: Object.freeze({}),
  opRetentionMs: 7 * 86_400_000,
});

/** Global flags as commander hands them over; undefined means "not given". */
export interface GlobalFlags {
  json?: boolean;
  output?: string;
  dryRun?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  config?: string;
  stateDir?: string;
  etcd?: string;
  fleet?: string;
}

/** Each global setting's environment variable; documented in the README and man page. */
export const ENV_VARS = {
  output: 'KNARR_OUTPUT',
  json: 'KNARR_JSON',
  dryRun: 'KNARR_DRY_RUN',
  verbose: 'KNARR_VERBOSE',
  quiet: 'KNARR_QUIET',
  config: 'KNARR_CONFIG',
  stateDir: 'KNARR_STATE_DIR',
  etcd: 'KNARR_ETCD',
  fleet: 'KNARR_FLEET',
} as const;

const FILE_KEYS: Record<string, 'string' | 'boolean' | 'list' | 'object'> = {
  output: 'string',
  dryRun: 'boolean',
  verbose: 'boolean',
  quiet: 'boolean',
  stateDir: 'string',
  etcd: 'list',
  fleet: 'string',
  pool: 'object',
  etcdServer: 'object',
  cluster: 'object',
  scheduler: 'object',
  daemon: 'object',
  opRetention: 'string',
};
/** The keys of the config file's `daemon:` section and the type of each. */
export const DAEMON_FILE_KEYS: Record<string, 'string' | 'boolean' | 'number' | 'list'> = {
  name: 'string',
  tags: 'list',
  listen: 'string',
  ttl: 'number',
  tokenFile: 'string',
  tlsCert: 'string',
  tlsKey: 'string',
  advertise: 'string',
  prune: 'boolean',
  mode: 'string',
  share: 'string',
  drainTimeout: 'number',
};

const POOL_KEYS = new Set(['name', 'driver', 'size']);
const ETCD_SERVER_KEYS = new Set(['clientPort', 'peerPort']);
const CLUSTER_KEYS = new Set(['network', 'bridge']);
const SCHEDULER_KEYS = new Set(['strategy']);

/** A /16 network written a.b.0.0/16: users' /24 subnets are a.b.N.0/24. */
export function validateClusterNetwork(field: string, v: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.0\.0\/16$/.exec(v);
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255) throw new ValidationError(field, `${JSON.stringify(v)} is not a /16 network such as 10.240.0.0/16`);
  return v;
}

export function validateStrategy(field: string, v: string): 'spread' | 'binpack' {
  if (v !== 'spread' && v !== 'binpack') throw new ValidationError(field, `${JSON.stringify(v)} is not a strategy; use spread (the emptiest host) or binpack (the fullest that fits)`);
  return v;
}

/** A Linux interface name: at most 15 characters, no slash or space. */
export function validateBridgeName(field: string, v: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/.test(v)) throw new ValidationError(field, `${JSON.stringify(v)} is not an interface name (letters, digits, _ . -, at most 15 characters)`);
  return v;
}

function envBool(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ValidationError(name, `${JSON.stringify(v)} is not a boolean; use 1 or 0`);
}

function splitList(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** The URL with its password hidden, for messages. */
function redactUserinfo(url: string): string {
  return url.replace(/\/\/([^/@]*)@/, (_, info: string) => `//${info.includes(':') ? `${info.split(':')[0]}:***` : info}@`);
}

function validateEndpoint(field: string, url: string): string {
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
    throw new ValidationError(field, `${JSON.stringify(redactUserinfo(url))} carries a user and password; knarr does not log in to etcd: give http(s)://HOST:PORT (secure the fleet's etcd with TLS and a firewall)`);
  }
  if (parsed.pathname !== '/' && parsed.pathname !== '' && parsed.pathname.replace(/\/+$/, '') !== '') {
    throw new ValidationError(field, `${JSON.stringify(url)} has a path (${parsed.pathname}); an etcd endpoint is http(s)://HOST:PORT`);
  }
  if (parsed.search !== '' || parsed.hash !== '') throw new ValidationError(field, `${JSON.stringify(url)} has a query or fragment; an etcd endpoint is http(s)://HOST:PORT`);
  return url.replace(/\/+$/, '');
}

function validatePort(field: string, v: unknown): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) {
    throw new ValidationError(field, `${JSON.stringify(v)} is not a port; use a number from 1 to 65535`);
  }
  return n;
}

function checkDaemonValue(field: string, kind: 'string' | 'boolean' | 'number' | 'list', v: unknown): void {
  if (kind === 'string' && typeof v !== 'string') throw new ValidationError(field, 'must be a string');
  if (kind === 'boolean' && typeof v !== 'boolean') throw new ValidationError(field, 'must be true or false');
  if (kind === 'number' && typeof v !== 'number') throw new ValidationError(field, 'must be a number');
  if (kind === 'list' && typeof v !== 'string' && !(Array.isArray(v) && v.every((t) => typeof t === 'string'))) throw new ValidationError(field, 'must be a list of strings or one comma-separated string');
}

/** Checks the parsed YAML config file; every unknown key or wrong type names its path. */
export function validateConfigFile(file: string, raw: unknown): Record<string, unknown> {
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ValidationError(file, 'must be a YAML mapping of settings (for example "stateDir: /var/lib/knarr")');
  }
  const obj = raw as Record<string, unknown>;
  for (const [key, value] of Object.entries(obj)) {
    // Own keys only: "__proto__" or "constructor" must not pass as known through the prototype.
    const kind = Object.hasOwn(FILE_KEYS, key) ? FILE_KEYS[key] : undefined;
    const field = `${file}: ${key}`;
    if (!kind) throw new ValidationError(field, `unknown setting; known settings are ${Object.keys(FILE_KEYS).join(', ')}`);
    if (kind === 'string' && typeof value !== 'string') throw new ValidationError(field, 'must be a string');
    if (kind === 'boolean' && typeof value !== 'boolean') throw new ValidationError(field, 'must be true or false');
    if (kind === 'list' && typeof value !== 'string' && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
      throw new ValidationError(field, 'must be a list of URLs or one comma-separated string');
    }
    if (kind === 'object') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationError(field, 'must be a mapping');
      const allowed = key === 'pool' ? POOL_KEYS : key === 'cluster' ? CLUSTER_KEYS : key === 'daemon' ? new Set(Object.keys(DAEMON_FILE_KEYS)) : key === 'scheduler' ? SCHEDULER_KEYS : ETCD_SERVER_KEYS;
      for (const [sub, subValue] of Object.entries(value)) {
        if (!allowed.has(sub)) {
          throw new ValidationError(`${field}.${sub}`, `unknown setting; known settings are ${[...allowed].join(', ')}`);
        }
        if (key === 'daemon') checkDaemonValue(`${field}.${sub}`, DAEMON_FILE_KEYS[sub]!, subValue);
      }
    }
  }
  return obj;
}

/** Resolves flag > KNARR_* env > config file > default, validates, and freezes. */
export function resolveConfig(
  flags: GlobalFlags,
  env: NodeJS.ProcessEnv,
  file: Record<string, unknown>,
  configFile: string | null,
  cwd: string,
): Config {
  const pick = <T>(flag: T | undefined, envValue: T | undefined, fileValue: T | undefined, def: T): T =>
    flag !== undefined ? flag : envValue !== undefined ? envValue : fileValue !== undefined ? fileValue : def;

  const envJson = envBool(env, ENV_VARS.json);
  const flagOutput = flags.json ? 'json' : flags.output;
  const envOutput = envJson ? 'json' : env[ENV_VARS.output] || undefined;
  const output = pick(flagOutput, envOutput, file.output as string | undefined, DEFAULTS.output);
  if (!OUTPUT_FORMATS.includes(output as OutputFormat)) {
    throw new ValidationError('--output', `${JSON.stringify(output)} is not a format; use json, yaml or table`);
  }

  const stateDirRaw = pick(flags.stateDir, env[ENV_VARS.stateDir] || undefined, file.stateDir as string | undefined, DEFAULTS.stateDir);
  const stateDir = validatePath('--state-dir', stateDirRaw.startsWith('/') ? stateDirRaw : `${cwd}/${stateDirRaw}`).replace(/\/+$/, '') || '/';

  const fileEtcd = file.etcd === undefined ? undefined : typeof file.etcd === 'string' ? splitList(file.etcd) : (file.etcd as string[]);
  // An empty value (a script's unset variable) must not quietly mean a new, empty managed store.
  const endpoints = (field: string, v: string | undefined): string[] | undefined => {
    if (v === undefined) return undefined;
    const list = splitList(v);
    if (list.length === 0) throw new ValidationError(field, `is empty; give the fleet's endpoints (e.g. http://10.0.0.1:2379), or leave ${field} out for this host's managed etcd`);
    return list;
  };
  const etcdField = flags.etcd !== undefined ? '--etcd' : env[ENV_VARS.etcd] !== undefined ? ENV_VARS.etcd : `${configFile ?? 'config'}: etcd`;
  const etcdRaw = pick(endpoints('--etcd', flags.etcd), endpoints(ENV_VARS.etcd, env[ENV_VARS.etcd]), fileEtcd, [...DEFAULTS.etcd]);
  const etcd = etcdRaw.map((u) => validateEndpoint(etcdField, u));

  const fleet = validateName('--fleet', pick(flags.fleet, env[ENV_VARS.fleet] || undefined, file.fleet as string | undefined, DEFAULTS.fleet));

  const filePool = (file.pool ?? {}) as Record<string, unknown>;
  const fileEtcdServer = (file.etcdServer ?? {}) as Record<string, unknown>;
  const fileCluster = (file.cluster ?? {}) as Record<string, unknown>;
  const str = (field: string, v: unknown, def: string): string => {
    if (v === undefined) return def;
    if (typeof v !== 'string') throw new ValidationError(field, 'must be a string');
    return v;
  };

  return Object.freeze({
    output: output as OutputFormat,
    dryRun: pick(flags.dryRun || undefined, envBool(env, ENV_VARS.dryRun), file.dryRun as boolean | undefined, DEFAULTS.dryRun),
    verbose: pick(flags.verbose || undefined, envBool(env, ENV_VARS.verbose), file.verbose as boolean | undefined, DEFAULTS.verbose),
    quiet: pick(flags.quiet || undefined, envBool(env, ENV_VARS.quiet), file.quiet as boolean | undefined, DEFAULTS.quiet),
    configFile,
    stateDir,
    etcd: Object.freeze(etcd),
    fleet,
    pool: Object.freeze({
      name: str('pool.name', filePool.name, DEFAULTS.pool.name),
      driver: str('pool.driver', filePool.driver, DEFAULTS.pool.driver),
      size: str('pool.size', filePool.size, DEFAULTS.pool.size),
    }),
    etcdServer: Object.freeze({
      clientPort: fileEtcdServer.clientPort === undefined ? DEFAULTS.etcdServer.clientPort : validatePort('etcdServer.clientPort', fileEtcdServer.clientPort),
      peerPort: fileEtcdServer.peerPort === undefined ? DEFAULTS.etcdServer.peerPort : validatePort('etcdServer.peerPort', fileEtcdServer.peerPort),
    }),
    cluster: Object.freeze({
      network: validateClusterNetwork('cluster.network', env.KNARR_CLUSTER_NETWORK || str('cluster.network', fileCluster.network, DEFAULTS.cluster.network)),
      bridge: validateBridgeName('cluster.bridge', env.KNARR_CLUSTER_BRIDGE || str('cluster.bridge', fileCluster.bridge, DEFAULTS.cluster.bridge)),
    }),
    scheduler: Object.freeze({ strategy: validateStrategy('scheduler.strategy', env.KNARR_SCHEDULER_STRATEGY || str('scheduler.strategy', ((file.scheduler ?? {}) as Record<string, unknown>).strategy, DEFAULTS.scheduler.strategy)) }),
    daemon: Object.freeze({ ...((file.daemon ?? {}) as Record<string, unknown>) }),
    opRetentionMs: env.KNARR_OP_RETENTION
      ? parseAge('KNARR_OP_RETENTION', env.KNARR_OP_RETENTION)
      : file.opRetention === undefined
        ? DEFAULTS.opRetentionMs
        : parseAge(`${configFile ?? 'config'}: opRetention`, file.opRetention as string),
  });
}

export { validatePort, validateEndpoint };
