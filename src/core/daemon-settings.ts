import { isIP } from 'node:net';
import { dirname, resolve as resolvePath } from 'node:path';
import { longFlag, pickSetting, setting, validatePort, type Picked } from './settings.js';
import { ValidationError } from './errors.js';
import { validateTags, type StartMode } from './hosts.js';
import { validateName } from './names.js';

/** The agent's settings: each from its flag, else the config file's `daemon:` section, else its default. */
export interface DaemonSettings {
  name: string;
  tags: string[];
  listen: { host: string; port: number };
  ttlSeconds: number;
  tokenFile: string;
  /** Paths of the PEM certificate and key; both or neither. */
  tls: { cert: string; key: string } | null;
  /** Given explicitly; null means the listen address, or the first outward IPv4 when it listens on all. */
  advertise: string | null;
  prune: boolean;
  mode: StartMode;
  share: string | null;
  /** On SIGTERM, how long running foreground jobs and the operation in progress get to end. */
  drainSeconds: number;
}


/** What SIGHUP applies to a running agent; a change to any other setting needs a restart. */
export const LIVE_SETTINGS: readonly (keyof DaemonSettings)[] = ['tags', 'tokenFile', 'tls', 'prune'];

export function parseListen(field: string, text: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(text);
  if (!m || !m[1]) throw new ValidationError(field, `${JSON.stringify(text)} is not ADDRESS:PORT, e.g. 127.0.0.1:7946`);
  return { host: m[1], port: validatePort(field, m[2]!) };
}


/**
 * Resolves the agent's settings: flag > KNARR_DAEMON_* > the config file's `daemon:` section > default.
 * layer holds what env and file give (config.daemon). Every error names its flag, variable, or the file
 * and key it came from. Pure: files are only named here, not read.
 */
export function resolveDaemonSettings(
  flags: Record<string, unknown>,
  layer: Readonly<Record<string, Picked>>,
  where: { configFile: string | null; stateDir: string; cwd: string; hostname: string },
): DaemonSettings {
  const fileField = (key: string) => `${where.configFile ?? 'config'}: daemon.${key}`;
  // A relative path is taken from the file's directory when it is in the file, else from the working directory.
  const pathOf = (p: Picked<string>) => resolvePath(p.source !== 'file' || where.configFile === null ? where.cwd : dirname(where.configFile), p.value);
  // The flag, else what env or the file gave (kinds already checked: a string is a string, a number a number).
  const pick = (key: string): Picked | null => pickSetting(setting(`daemon.${key}`), { flags, command: 'daemon' }) ?? layer[key] ?? null;
  const str = (key: string): Picked<string> | null => pick(key) as Picked<string> | null;
  const fallback = <T>(key: string) => setting(`daemon.${key}`).default as T;

  const nameP = str('name');
  const name = validateName(nameP?.field ?? '--name', nameP?.value ?? where.hostname, 64);

  const tagsP = pick('tags');
  const tags = tagsP === null ? [...fallback<string[]>('tags')] : validateTags(tagsP.field, tagsP.value as string[]);

  const listenP = str('listen');
  const listen = parseListen(listenP?.field ?? '--listen', listenP?.value ?? fallback<string>('listen'));

  const ttlP = pick('ttl');
  const ttlSeconds = ttlP === null ? fallback<number>('ttl') : (ttlP.value as number);
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 2 || ttlSeconds > 300) throw new ValidationError(ttlP?.field ?? '--ttl', 'must be a whole number of seconds from 2 to 300');

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

  const advertiseP = str('advertise');
  if (advertiseP && !isIP(advertiseP.value)) throw new ValidationError(advertiseP.field, `${JSON.stringify(advertiseP.value)} is not an IP address`);

  const pruneP = pick('prune');

  const modeP = str('mode');
  const mode = modeP?.value ?? fallback<string>('mode');
  if (mode !== 'new' && mode !== 'recovery') throw new ValidationError(modeP!.field, 'use recovery (keep clusters) or new (delete this host\'s clusters)');

  const drainP = pick('drainTimeout');
  const drainSeconds = drainP === null ? fallback<number>('drainTimeout') : (drainP.value as number);
  if (!Number.isInteger(drainSeconds) || drainSeconds < 0 || drainSeconds > 3600) throw new ValidationError(drainP?.field ?? '--drain-timeout', 'must be a whole number of seconds from 0 to 3600');

  const shareP = str('share');
  return {
    name,
    tags,
    listen,
    ttlSeconds,
    tokenFile,
    tls,
    advertise: advertiseP?.value ?? null,
    prune: pruneP?.value === true,
    mode,
    share: shareP ? pathOf(shareP) : null,
    drainSeconds,
  };
}

/** The settings that differ between two resolutions and that only a restart of the agent applies. */
export function restartNeeded(running: DaemonSettings, next: DaemonSettings): string[] {
  const keys = Object.keys(running) as (keyof DaemonSettings)[];
  return keys.filter((k) => !LIVE_SETTINGS.includes(k) && JSON.stringify(running[k]) !== JSON.stringify(next[k]));
}
