import { isIP } from 'node:net';
import { dirname, resolve as resolvePath } from 'node:path';
import { validatePort } from './config.js';
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
 * Resolves the agent's settings: flag > the config file's `daemon:` section > default. Every error
 * names its flag, or the file and key it came from. Pure: files are only named here, not read.
 */
export function resolveDaemonSettings(
  flags: Record<string, unknown>,
  file: Record<string, unknown> | undefined,
  where: { configFile: string | null; stateDir: string; cwd: string; hostname: string },
): DaemonSettings {
  const section = file ?? {};
  const fileField = (key: string) => `${where.configFile ?? 'config'}: daemon.${key}`;
  // A relative path is taken from the working directory when it is a flag, from the file's directory when it is in the file.
  const pathOf = (p: { value: string; field: string }) => resolvePath(p.field.startsWith('--') || where.configFile === null ? where.cwd : dirname(where.configFile), p.value);
  // The flag's value and its name, else the file's value and its path.
  const pick = (flag: string, key: string): { value: unknown; field: string } | null => {
    if (flags[flag] !== undefined && flags[flag] !== false && !(Array.isArray(flags[flag]) && (flags[flag] as unknown[]).length === 0)) {
      return { value: flags[flag], field: `--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` };
    }
    return section[key] === undefined ? null : { value: section[key], field: fileField(key) };
  };
  const str = (flag: string, key: string): { value: string; field: string } | null => {
    const p = pick(flag, key);
    if (p === null) return null;
    if (typeof p.value !== 'string') throw new ValidationError(p.field, 'must be a string');
    return { value: p.value, field: p.field };
  };

  const nameP = str('name', 'name');
  const name = validateName(nameP?.field ?? '--name', nameP?.value ?? where.hostname, 64);

  const tagsP = pick('tags', 'tags');
  let tags: string[] = [];
  if (tagsP !== null) {
    const raw = typeof tagsP.value === 'string' ? [tagsP.value] : tagsP.value;
    if (!Array.isArray(raw) || !raw.every((t) => typeof t === 'string')) throw new ValidationError(tagsP.field, 'must be a list of tags or one comma-separated string');
    tags = validateTags(tagsP.field, raw.flatMap((t: string) => t.split(',')).map((t) => t.trim()));
  }

  const listenP = str('listen', 'listen');
  const listen = parseListen(listenP?.field ?? '--listen', listenP?.value ?? '127.0.0.1:7946');

  const ttlP = pick('ttl', 'ttl');
  const ttlSeconds = ttlP === null ? 10 : typeof ttlP.value === 'number' ? ttlP.value : /^\d+$/.test(String(ttlP.value)) ? Number(ttlP.value) : NaN;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 2 || ttlSeconds > 300) throw new ValidationError(ttlP?.field ?? '--ttl', 'must be a whole number of seconds from 2 to 300');

  const tokenP = str('tokenFile', 'tokenFile');
  const tokenFile = tokenP ? pathOf(tokenP) : `${where.stateDir}/agent.token`;

  const certP = str('tlsCert', 'tlsCert');
  const keyP = str('tlsKey', 'tlsKey');
  if ((certP === null) !== (keyP === null)) {
    const fromFlag = (certP ?? keyP)!.field.startsWith('--');
    const missing = certP ? (fromFlag ? '--tls-key' : fileField('tlsKey')) : fromFlag ? '--tls-cert' : fileField('tlsCert');
    throw new ValidationError(missing, 'TLS needs both --tls-cert and --tls-key (tlsCert and tlsKey in the config file)');
  }
  const tls = certP && keyP ? { cert: pathOf(certP), key: pathOf(keyP) } : null;

  const advertiseP = str('advertise', 'advertise');
  if (advertiseP && !isIP(advertiseP.value)) throw new ValidationError(advertiseP.field, `${JSON.stringify(advertiseP.value)} is not an IP address`);

  const pruneP = pick('prune', 'prune');
  if (pruneP !== null && typeof pruneP.value !== 'boolean') throw new ValidationError(pruneP.field, 'must be true or false');

  const modeP = str('mode', 'mode');
  const mode = modeP?.value ?? 'recovery';
  if (mode !== 'new' && mode !== 'recovery') throw new ValidationError(modeP!.field, 'use recovery (keep clusters) or new (delete this host\'s clusters)');

  const drainP = pick('drainTimeout', 'drainTimeout');
  const drainSeconds = drainP === null ? 30 : typeof drainP.value === 'number' ? drainP.value : /^\d+$/.test(String(drainP.value)) ? Number(drainP.value) : NaN;
  if (!Number.isInteger(drainSeconds) || drainSeconds < 0 || drainSeconds > 3600) throw new ValidationError(drainP?.field ?? '--drain-timeout', 'must be a whole number of seconds from 0 to 3600');

  const shareP = str('share', 'share');
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
