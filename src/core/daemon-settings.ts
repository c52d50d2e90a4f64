import { isIP } from 'node:net';
import { dirname, resolve as resolvePath } from 'node:path';
import { longFlag, parseListen, parsePicked, pickSetting, setting, type Picked } from './settings.js';
import { ValidationError } from './errors.js';
import type { StartMode } from './hosts.js';
import { validateName } from './names.js';
import { parseSize } from './size.js';

/** The agent's settings: each from its flag, else KNARR_DAEMON_*, else the config file's `daemon:` section, else its default. */
export interface DaemonSettings {
  name: string;
  tags: string[];
  listen: { host: string; port: number };
  ttlSeconds: number;
  tokenFile: string;
  /** Paths of the PEM certificate and key; both or neither. */
  tls: { cert: string; key: string } | null;
  /** Open API connections at most: past it the oldest idle one is closed. */
  maxConnections: number;
  /** False: jobs may bind only paths inside this host's pools, never the docker socket. */
  allowHostMounts: boolean;
  /** Given explicitly; null means the listen address, or the first outward IPv4 when it listens on all. */
  advertise: string | null;
  prune: boolean;
  mode: StartMode;
  share: string | null;
  /** On SIGTERM, how long running foreground jobs and the operation in progress get to end. */
  drainSeconds: number;
  /** How long the fleet waits for this host's agent to come back before moving its jobs. */
  restartGraceSeconds: number;
  /** SIGTERM gives the lease back and marks the host left: its jobs move at once. */
  leaveOnStop: boolean;
  /** How often the collector looks for cluster parts no cluster owns; 0: never. */
  collectSeconds: number;
  /** How often the agent checks this host's managed etcd member for space to give back (0: never), and how much makes it worth a defrag. */
  etcdDefrag: { checkSeconds: number; minFreeBytes: number };
  /** The dots hub's directory, served under /hub/v1/; null for no hub. */
  hubDir: string | null;
}

export { parseListen };

/** What SIGHUP applies to a running agent; a change to any other setting needs a restart. */
export const LIVE_SETTINGS: readonly (keyof DaemonSettings)[] = ['tags', 'tokenFile', 'tls', 'prune', 'restartGraceSeconds', 'leaveOnStop'];

/**
 * Resolves the agent's settings: flag > KNARR_DAEMON_* > the config file's `daemon:` section > default.
 * layer holds what env and file give (config.daemon). Every error names its flag, variable, or the file
 * and key it came from. Pure: files are only named here, not read.
 */
export function resolveDaemonSettings(
  flags: Record<string, unknown>,
  layer: Readonly<Record<string, Picked>>,
  where: { configFile: string | null; stateDir: string; cwd: string; hostname: string; hubDir?: string | null },
): DaemonSettings {
  const fileField = (key: string) => `${where.configFile ?? 'config'}: daemon.${key}`;
  // A relative path is taken from the file's directory when it is in the file, else from the working directory.
  const pathOf = (p: Picked<string>) => resolvePath(p.source !== 'file' || where.configFile === null ? where.cwd : dirname(where.configFile), p.value);
  // The flag, else what env or the file gave, each checked by its table entry; the checks that join settings stay here.
  const pick = (key: string): Picked | null => {
    const s = setting(`daemon.${key}`);
    const given = layer[key];
    return pickSetting(s, { flags, command: 'daemon' }) ?? (given ? parsePicked(s, given) : null);
  };
  const str = (key: string): Picked<string> | null => pick(key) as Picked<string> | null;
  const fallback = <T>(key: string) => setting(`daemon.${key}`).default as T;

  const name = str('name')?.value ?? validateName('--name', where.hostname, 64);
  const tags = (pick('tags')?.value as string[] | undefined) ?? [...fallback<string[]>('tags')];
  const listen = (pick('listen')?.value as { host: string; port: number } | undefined) ?? parseListen('--listen', fallback<string>('listen'));
  const ttlSeconds = (pick('ttl')?.value as number | undefined) ?? fallback<number>('ttl');

  const tokenP = str('tokenFile');
  const tokenFile = tokenP ? pathOf(tokenP) : `${where.stateDir}/agent.token`;

  const certP = str('tlsCert');
  const keyP = str('tlsKey');
  if ((certP === null) !== (keyP === null)) {
    const given = (certP ?? keyP)!.source;
    const other = setting(certP ? 'daemon.tlsKey' : 'daemon.tlsCert');
    const missing = given === 'flag' ? longFlag(other)! : given === 'env' ? other.env : fileField(certP ? 'tlsKey' : 'tlsCert');
    throw new ValidationError(missing, 'TLS needs both --tls-cert and --tls-key (tlsCert and tlsKey in the config file)');
  }
  const tls = certP && keyP ? { cert: pathOf(certP), key: pathOf(keyP) } : null;

  const maxConnections = (pick('maxConnections')?.value as number | undefined) ?? fallback<number>('maxConnections');
  const allowHostMounts = (pick('allowHostMounts')?.value as boolean | undefined) ?? fallback<boolean>('allowHostMounts');

  const advertiseP = str('advertise');
  if (advertiseP && !isIP(advertiseP.value)) throw new ValidationError(advertiseP.field, `${JSON.stringify(advertiseP.value)} is not an IP address`);

  const pruneP = pick('prune');
  const mode = (str('mode')?.value ?? fallback<string>('mode')) as StartMode;
  const drainSeconds = (pick('drainTimeout')?.value as number | undefined) ?? fallback<number>('drainTimeout');
  const restartGraceSeconds = (pick('restartGrace')?.value as number | undefined) ?? fallback<number>('restartGrace');
  const leaveOnStop = (pick('leaveOnStop')?.value as boolean | undefined) ?? fallback<boolean>('leaveOnStop');
  const collectSeconds = (pick('collectEvery')?.value as number | undefined) ?? fallback<number>('collectEvery');

  const shareP = str('share');
  const minFree = str('etcdDefragMinFree');
  const etcdDefrag = {
    checkSeconds: (pick('etcdDefragCheck')?.value as number | undefined) ?? fallback<number>('etcdDefragCheck'),
    minFreeBytes: parseSize(minFree?.field ?? 'daemon.etcdDefragMinFree', minFree?.value ?? fallback<string>('etcdDefragMinFree')),
  };
  // --hub, else KNARR_HUB_DIR or the file's hub: section (resolved with the config).
  const hubFlag = pickSetting(setting('hub.dir'), { flags, command: 'daemon' }) as Picked<string> | null;
  const hubDir = hubFlag ? resolvePath(where.cwd, hubFlag.value) : (where.hubDir ?? null);
  if (hubDir !== null && /[\0\n]/.test(hubDir)) throw new ValidationError(hubFlag?.field ?? 'hub.dir', 'the path contains a NUL or newline');
  return {
    name,
    tags,
    listen,
    ttlSeconds,
    tokenFile,
    tls,
    maxConnections,
    allowHostMounts,
    advertise: advertiseP?.value ?? null,
    prune: pruneP?.value === true,
    mode,
    share: shareP ? pathOf(shareP) : null,
    drainSeconds,
    restartGraceSeconds,
    leaveOnStop,
    collectSeconds,
    etcdDefrag,
    hubDir,
  };
}

/** The settings that differ between two resolutions and that only a restart of the agent applies. */
export function restartNeeded(running: DaemonSettings, next: DaemonSettings): string[] {
  const keys = Object.keys(running) as (keyof DaemonSettings)[];
  return keys.filter((k) => !LIVE_SETTINGS.includes(k) && JSON.stringify(running[k]) !== JSON.stringify(next[k]));
}
