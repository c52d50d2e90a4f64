import { validatePath } from './names.js';
import { parseAge } from './ops.js';
import { pickSetting, resolveSetting, sectionLayer, setting, validateConfigFile, validatePort, type Picked } from './settings.js';

export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'wide', 'json', 'yaml'];

/** The resolved, frozen configuration every handler reads from ctx.config. */
export interface Config {
  readonly output: OutputFormat;
  /** Tables print their header line. */
  readonly headers: boolean;
  readonly dryRun: boolean;
  readonly verbose: boolean;
  readonly quiet: boolean;
  /** A command finding its dot (or a remote) in use by another fails at once (exit 4) instead of waiting. */
  readonly noWait: boolean;
  readonly configFile: string | null;
  readonly stateDir: string;
  /** External etcd endpoints; empty means the knarr-managed local etcd. */
  readonly etcd: readonly string[];
  /** How clients reach the fleet's etcd: TLS files (paths) and etcd auth; nulls when not given. */
  readonly etcdClient: EtcdClientSettings;
  readonly fleet: string;
  readonly pool: { readonly name: string; readonly driver: string; readonly size: string };
  readonly etcdServer: { readonly clientPort: number; readonly peerPort: number };
  /** LXC clusters: the /16 users' /24 subnets come from, the bridge on every host, and the default owner. */
  readonly cluster: { readonly network: string; readonly bridge: string; readonly user: string | null };
  /** How the scheduler ranks the hosts that fit a job. */
  readonly scheduler: { readonly strategy: 'spread' | 'binpack' };
  /** How the CLI reaches agents: their token (or the file holding it) and the CA of their https. */
  readonly jobs: { readonly agentToken: string | null; readonly agentTokenFile: string; readonly agentCa: string | null };
  /** Dot commits' author and ssh:// remotes: the ssh_config and the knarr command on the other host. */
  readonly dots: {
    readonly author: string | null;
    readonly sshConfig: string | null;
    readonly remoteKnarr: string;
    readonly hubTokenFile: string | null;
    readonly hubCaFile: string | null;
  };
  /** The dots hub directory KNARR_HUB_DIR or the file's `hub:` section gives (knarr daemon --hub sets it aside); null for none. */
  readonly hub: { readonly dir: string | null };
  /** The agent's settings that KNARR_DAEMON_* or the file's `daemon:` section give; `knarr daemon` puts its flags on top. */
  readonly daemon: Readonly<Record<string, Picked>>;
  /** How long ended operations and job history are kept before the agent removes them (0: kept for ever). */
  readonly opRetentionMs: number;
}

/** The store client's TLS and auth settings; the files are read when the store is opened. */
export interface EtcdClientSettings {
  readonly ca: string | null;
  readonly cert: string | null;
  readonly key: string | null;
  readonly user: string | null;
  readonly password: string | null;
  readonly passwordFile: string | null;
}

export const DEFAULT_CONFIG_FILE = '/etc/knarr/config.yaml';

/** Global flags as commander hands them over; undefined means "not given", false a --no-x. */
export interface GlobalFlags {
  json?: boolean;
  output?: string;
  dryRun?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  wait?: boolean;
  headers?: boolean;
  config?: string;
  stateDir?: string;
  etcd?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
  fleet?: string;
}

/** Each global setting's environment variable, from the settings table. */
export const ENV_VARS = {
  output: setting('output').env,
  json: setting('json').env,
  dryRun: setting('dryRun').env,
  verbose: setting('verbose').env,
  quiet: setting('quiet').env,
  wait: setting('wait').env,
  headers: setting('headers').env,
  config: setting('config').env,
  stateDir: setting('stateDir').env,
  etcd: setting('etcd').env,
  fleet: setting('fleet').env,
} as const;

/** Resolves every setting of the table flag > KNARR_* env > config file > default, validates, and freezes. */
export function resolveConfig(flags: GlobalFlags, env: NodeJS.ProcessEnv, file: Record<string, unknown>, configFile: string | null, cwd: string): Config {
  const layers = { flags: flags as Record<string, unknown>, env, file, configFile };
  const get = <T>(key: string): T => resolveSetting<T>(key, layers).value;
  const optional = (key: string): string | null => get<string | undefined>(key) ?? null;
  // A relative path in the file is taken from the file's directory, one in a flag or variable from the working directory.
  const path = (key: string): string | null => {
    const p = resolveSetting<string | undefined>(key, layers);
    if (p.value === undefined || p.value.startsWith('/')) return p.value ?? null;
    return `${p.source === 'file' && configFile !== null ? configFile.replace(/\/[^/]*$/, '') : cwd}/${p.value}`;
  };

  // --json wins over an output given at the same level or below; --no-json sets aside KNARR_JSON.
  const json = pickSetting(setting('json'), layers);
  const output = resolveSetting<string>('output', layers);
  const rank = { flag: 0, env: 1, file: 2, default: 3 } as const;
  const format = json?.value === true && rank[json.source] <= rank[output.source] ? 'json' : (output.value as OutputFormat);

  const dir = resolveSetting<string>('stateDir', layers);
  const stateDir = validatePath(dir.field, dir.value.startsWith('/') ? dir.value : `${cwd}/${dir.value}`).replace(/\/+$/, '') || '/';

  return Object.freeze({
    output: format,
    headers: get<boolean>('headers'),
    dryRun: get<boolean>('dryRun'),
    verbose: get<boolean>('verbose'),
    quiet: get<boolean>('quiet'),
    noWait: !get<boolean>('wait'),
    configFile,
    stateDir,
    etcd: Object.freeze([...get<string[]>('etcd')]),
    etcdClient: Object.freeze({
      ca: path('etcdCa'),
      cert: path('etcdCert'),
      key: path('etcdKey'),
      user: optional('etcdUser'),
      password: optional('etcdPassword'),
      passwordFile: path('etcdPasswordFile'),
    }),
    fleet: get<string>('fleet'),
    pool: Object.freeze({ name: get<string>('pool.name'), driver: get<string>('pool.driver'), size: get<string>('pool.size') }),
    etcdServer: Object.freeze({ clientPort: get<number>('etcdServer.clientPort'), peerPort: get<number>('etcdServer.peerPort') }),
    cluster: Object.freeze({ network: get<string>('cluster.network'), bridge: get<string>('cluster.bridge'), user: optional('cluster.user') }),
    scheduler: Object.freeze({ strategy: get<'spread' | 'binpack'>('scheduler.strategy') }),
    jobs: Object.freeze({
      agentToken: optional('jobs.agentToken'),
      agentTokenFile: path('jobs.agentTokenFile') ?? `${stateDir}/agent.token`,
      agentCa: path('jobs.agentCa'),
    }),
    dots: Object.freeze({
      author: optional('dots.author'),
      sshConfig: path('dots.sshConfig'),
      remoteKnarr: get<string>('dots.remoteKnarr'),
      hubTokenFile: path('dots.hubTokenFile'),
      hubCaFile: path('dots.hubCaFile'),
    }),
    hub: Object.freeze({ dir: path('hub.dir') }),
    daemon: sectionLayer('daemon', layers),
    opRetentionMs: parseAge('opRetention', get<string>('opRetention')),
  });
}

/** The etcd client settings as KNARR_* variables, for a knarr process this one starts. */
export function etcdClientEnv(c: EtcdClientSettings): Record<string, string> {
  const keys = { ca: 'etcdCa', cert: 'etcdCert', key: 'etcdKey', user: 'etcdUser', password: 'etcdPassword', passwordFile: 'etcdPasswordFile' } as const;
  const env: Record<string, string> = {};
  for (const [field, key] of Object.entries(keys)) {
    const v = c[field as keyof EtcdClientSettings];
    if (v !== null) env[setting(key).env] = v;
  }
  return env;
}

/** Every setting at its default (no flag, variable or file); made on first use, off the start-up path. */
export const defaults = (): Config => resolveConfig({}, {}, {}, null, '/');

export { validatePort, validateConfigFile };
