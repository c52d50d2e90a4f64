import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { opHandlers } from '../commands/op-handlers.js';
import type { Context } from '../commands/types.js';
import { DEFAULT_CONFIG_FILE, ENV_VARS, resolveConfig, validateConfigFile, type Config, type GlobalFlags } from '../core/config.js';
import { StoreUnavailableError, UserError, ValidationError } from '../core/errors.js';
import { Runner } from '../host/runner.js';
import { drivers } from '../host/storage/index.js';
import type { EtcdConnectOptions, Store } from '../state/store.js';
import { createReporter } from './reporter.js';
import { flowNestingDepth, parseSimpleYaml } from '../core/yaml-lite.js';

export interface ContextIo {
  stderr: NodeJS.WritableStream;
  stderrIsTTY: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  signal: AbortSignal;
  /** Called only when a command reads stdin: making process.stdin costs a few ms at every start. */
  stdin?: () => import('node:stream').Readable;
}

/** Reads the YAML config file: the one named (which must exist), else the default one if present. */
async function loadConfigFile(flags: GlobalFlags, env: NodeJS.ProcessEnv, cwd: string): Promise<{ path: string | null; data: Record<string, unknown> }> {
  const named = flags.config ?? (env[ENV_VARS.config] || undefined);
  const path = named === undefined ? DEFAULT_CONFIG_FILE : named.startsWith('/') ? named : `${cwd}/${named}`;
  let text: string;
  try {
    // Sync: the first asynchronous fs call starts libuv's thread pool, ~6 ms on the start-up path of every command.
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && named === undefined) return { path: null, data: {} };
    throw new ValidationError('--config', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // A config file nests three levels; far deeper text would overflow the YAML parser's stack.
  if (flowNestingDepth(text) > 32) throw new ValidationError('--config', `${path} is nested too deeply to be a config file`);
  let raw: unknown = parseSimpleYaml(text);
  try {
    if (raw === undefined) raw = (await import('yaml')).parse(text);
  } catch (e) {
    if (e instanceof RangeError) throw new ValidationError('--config', `${path} is nested too deeply to be a config file`);
    throw new UserError(`${path} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  return { path, data: validateConfigFile(path, raw) };
}

export async function loadConfig(flags: GlobalFlags, env: NodeJS.ProcessEnv, cwd: string): Promise<Config> {
  const file = await loadConfigFile(flags, env, cwd);
  return resolveConfig(flags, env, file.data, file.path, cwd);
}

/** The composition root: one Context per command run (the daemon builds one for its life). */
export function createContext(config: Config, io: ContextIo, reload: () => Promise<Config> = async () => config): Context {
  const events = createReporter(io, config.quiet);
  const runner = new Runner({
    dryRun: config.dryRun,
    verbose: config.verbose,
    env: io.env,
    log: (line) => events.log(line),
    signal: io.signal,
  });
  let stdin: import('node:stream').Readable | undefined;
  const ctx: Context = {
    config,
    runner,
    drivers,
    events,
    signal: io.signal,
    env: io.env,
    cwd: io.cwd,
    get stdin() {
      return (stdin ??= io.stdin?.() ?? Readable.from([]));
    },
    opHandlers,
    reloadConfig: reload,
    async openStore(use?: 'agent'): Promise<Store> {
      const { connectEtcd, readOnlyStore } = await import('../state/store.js');
      // Under --dry-run every handler sees a store that refuses writes: nothing reaches etcd, whatever a handler forgets.
      const guard = async (store: Store) => {
        if (config.dryRun) return readOnlyStore(store);
        // A fleet of an older layout is moved by its first writer of this version (one read once it is current); the agent does it at its start.
        if (use !== 'agent') {
          const { migrateFleet } = await import('../state/migrate.js');
          await migrateFleet(store, config.fleet).catch((e: Error) => ctx.events.warn(`the fleet's keys were not moved to the current layout: ${e.message}`));
        }
        return store;
      };
      // The agent's client is loaded only here: gRPC costs ~100 ms of start-up, which a daemon pays once.
      const connect = async (urls: readonly string[], opts: Pick<EtcdConnectOptions, 'ca' | 'cert' | 'key' | 'user' | 'password' | 'passwordFile'> = {}) =>
        use === 'agent' ? (await import('../state/etcd3-store.js')).connectEtcd3(urls, opts) : connectEtcd(urls, opts);
      if (config.etcd.length > 0) return guard(await connect(config.etcd, config.etcdClient));
      const { ensureLocalEtcd } = await import('../commands/etcd/local.js');
      const local = await ensureLocalEtcd(ctx, { forStore: true });
      if (local.action === 'planned') {
        throw new StoreUnavailableError('the local etcd is not running, and --dry-run does not start it', { hint: 'start it with: knarr etcd up' });
      }
      // A cluster member: every member's client URL, with knarr's client certificate.
      const { storeOptions } = await import('../commands/etcd/cluster.js');
      // This host's member did not answer its probe (frozen): the agent asks the others first, and opens its streams there.
      const own = local.state.clientUrl;
      const ownLast = (urls: readonly string[]) => (local.health.healthy ? [...urls] : [...urls.filter((u) => u !== own), ...urls.filter((u) => u === own)]);
      // The agent lives long: it starts from the members the cluster has now, not the ones this host last recorded.
      const state =
        use === 'agent' && local.state.tls
          ? await (await import('../commands/etcd/members.js')).refreshEndpoints(ctx, { ...local.state, endpoints: ownLast(local.state.endpoints ?? [own]) })
          : local.state;
      return guard(
        await connect(use === 'agent' ? ownLast(state.endpoints ?? [state.clientUrl]) : (state.endpoints ?? [state.clientUrl]), storeOptions(state)),
      );
    },
  };
  return ctx;
}
