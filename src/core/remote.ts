import type { CommitRecord } from './dots.js';
import { ValidationError } from './errors.js';
import { HOST_RE, validateHubUser, validateName } from './names.js';

export type RemoteUrl =
  | { kind: 'file'; url: string; path: string }
  | { kind: 'ssh'; url: string; user: string | null; host: string; port: number | null; path: string | null }
  /** A hub served by a knarr agent: base is scheme://host:port, user the account the URL's path names. */
  | { kind: 'hub'; url: string; base: string; user: string | null };

/** The port a hub host given without a scheme (dothub.com/USER/DOT) is reached on, over https. */
export const HUB_DEFAULT_PORT = 7946;

/** The hub URL a bare host (dothub.com) names: https on the hub's default port. */
export function hubHostUrl(host: string, user: string | null): string {
  return `https://${host}:${HUB_DEFAULT_PORT}${user ? `/${user}` : ''}`;
}

function parseHubUrl(field: string, text: string, u: URL): RemoteUrl {
  const shown = JSON.stringify(text);
  if (!u.hostname) throw new ValidationError(field, `${shown} has no host; write https://HOST[:PORT][/USER]`);
  if (u.username || u.password)
    throw new ValidationError(field, `${shown} carries a user name or password; a hub takes a token file instead (--token-file, or KNARR_HUB_TOKEN_FILE)`);
  if (u.search || u.hash) throw new ValidationError(field, `${shown} has a query or fragment; write https://HOST[:PORT][/USER]`);
  const bracketed = u.hostname.startsWith('[') && u.hostname.endsWith(']');
  if (!bracketed && !HOST_RE.test(u.hostname)) throw new ValidationError(field, `${JSON.stringify(u.hostname)} is not a host name`);
  const segments = u.pathname.split('/').filter((s) => s !== '');
  if (segments.length > 1)
    throw new ValidationError(
      field,
      `${shown} has more than one path segment; a hub URL is https://HOST[:PORT][/USER] (the dot comes after it: URL/USER/DOT in a pull)`,
    );
  const user = segments.length === 1 ? validateHubUser(field, decodeURIComponent(segments[0]!)) : null;
  const port = u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
  if (port < 1) throw new ValidationError(field, `${shown} has port 0; give the hub's port, e.g. https://${u.hostname}:${HUB_DEFAULT_PORT}`);
  const base = `${u.protocol}//${u.hostname}:${port}`;
  return { kind: 'hub', url: user ? `${base}/${user}` : base, base, user };
}

/** Parses a remote URL: file:///dir (a directory of streams), ssh://[user@]host[:port][/path] or a hub, http(s)://host[:port][/user]. */
export function parseRemoteUrl(field: string, text: string): RemoteUrl {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new ValidationError(field, `${JSON.stringify(text)} is not a URL; use file:///path/to/dir, ssh://user@host or https://hub:7946`);
  }
  if (u.protocol === 'https:' || u.protocol === 'http:') return parseHubUrl(field, text, u);
  if (u.protocol === 'file:') {
    if (u.host !== '') throw new ValidationError(field, `${JSON.stringify(text)} names a host; a file remote is file:///absolute/dir`);
    const path = decodeURIComponent(u.pathname).replace(/\/+$/, '') || '/';
    if (/[\0\n]/.test(path)) throw new ValidationError(field, 'the path contains a NUL or newline');
    // file:// and file:/// name the root filesystem: a push would write <dot>/manifest.json straight under /.
    if (path === '/')
      throw new ValidationError(
        field,
        `${JSON.stringify(text)} names no directory (the root filesystem /); a file remote is file:///absolute/dir, e.g. file:///mnt/usb/dots`,
      );
    return { kind: 'file', url: `file://${path}`, path };
  }
  if (u.protocol === 'ssh:') {
    if (!u.hostname) throw new ValidationError(field, `${JSON.stringify(text)} has no host; write ssh://user@host`);
    const user = u.username ? decodeURIComponent(u.username) : null;
    // ssh reads a destination starting with "-" as an option (-oProxyCommand=... runs a command here).
    if (!/^[A-Za-z0-9_.:[\]-]+$/.test(u.hostname) || u.hostname.startsWith('-'))
      throw new ValidationError(field, `${JSON.stringify(u.hostname)} is not a host name`);
    if (user !== null && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(user)) throw new ValidationError(field, `${JSON.stringify(user)} is not a user name`);
    return {
      kind: 'ssh',
      url: text,
      user,
      host: u.hostname,
      port: u.port ? Number(u.port) : null,
      path: u.pathname && u.pathname !== '/' ? decodeURIComponent(u.pathname) : null,
    };
  }
  throw new ValidationError(field, `${JSON.stringify(u.protocol.replace(/:$/, ''))} remotes are not supported; use file://, ssh:// or https://`);
}

export function validateRemoteName(field: string, name: string): string {
  return validateName(field, name, 64);
}

/** Stream formats: zfs send streams, btrfs send streams, or tar for plain directories. */
export type StreamFormat = 'zfs' | 'btrfs' | 'tar';

export interface ManifestCommit {
  record: CommitRecord;
  /** Commit this stream is incremental from; null for a full stream. */
  base: string | null;
  file: string;
  bytes: number;
  /** Checksum of streams stored by manifest version 1; '' where crc32 is recorded or no stream is stored (ssh). */
  sha256: string;
  /** Checksum of streams stored from manifest version 2 on: CRC-32 (zlib's), 8 hex digits. */
  crc32?: string;
}

export type ChecksumAlgorithm = 'sha256' | 'crc32';

/** The checksum a stored stream is verified against, or null where no stream is stored (an ssh remote's manifest). */
export function streamChecksum(c: ManifestCommit): { algorithm: ChecksumAlgorithm; value: string } | null {
  if (c.crc32) return { algorithm: 'crc32', value: c.crc32 };
  return c.sha256 ? { algorithm: 'sha256', value: c.sha256 } : null;
}

/** Version 2 only where an entry carries crc32: a knarr that knows version 1 then refuses the manifest instead of calling its streams damaged. */
export function manifestVersion(m: Manifest): 1 | 2 {
  return Object.values(m.commits).some((c) => c.crc32) ? 2 : 1;
}

/** A dot on a file remote: what each branch holds and the stream of every commit. */
export interface Manifest {
  version: 1 | 2;
  dot: string;
  format: StreamFormat;
  subdots: string[];
  branches: Record<string, { commits: string[] }>;
  commits: Record<string, ManifestCommit>;
  updatedAt: string;
}

/** How one commit's stream is made: the command, and a way to run it into a stream. */
export interface StreamSender {
  argv: string[];
  produce(out: import('node:stream').Writable): Promise<void>;
  /** Told each piece of the stream as it travels, for a progress line. */
  progress?(bytes: number): void;
}

/** A place dots are pushed to and pulled from: a directory of streams, knarr on another host over ssh, or a hub. */
export interface RemoteEndpoint {
  readonly url: string;
  /** Fails with a clear error when the remote cannot be reached. */
  ensureReachable(): Promise<void>;
  readManifest(dot: string): Promise<Manifest | null>;
  /** Push side: hands over one commit's stream, made by produce; returns what the manifest records. */
  putCommit(dot: string, branch: string, record: CommitRecord, base: string | null, format: StreamFormat, sender: StreamSender): Promise<ManifestCommit>;
  /** Push side: records progress after each commit, so an interrupted push resumes. */
  saveManifest(manifest: Manifest): Promise<void>;
  /**
   * Push side: runs fn holding the remote's lock on the dot, so two pushes to one remote take turns
   * (the second then sees the first's commits). Absent where the remote serialises by itself (ssh).
   */
  withPushLock?<T>(dot: string, how: RemoteLockWait, fn: () => Promise<T>): Promise<T>;
  /** Bytes of a commit's stream the remote held already when putCommit sent it (a resumed upload); absent where uploads do not resume. */
  resumedFrom?(commit: string): number;
  /** Pull side: feeds one commit's stream to consume (checked first where a checksum is stored). */
  fetchCommit(dot: string, entry: ManifestCommit, consume: (input: import('node:stream').Readable, source: string) => Promise<void>): Promise<void>;
}

/** How a push meets a remote that another push holds: wait (told once) or fail at once. */
export interface RemoteLockWait {
  wait: boolean;
  signal: AbortSignal;
  onWait(message: string): void;
}

export function emptyManifest(dot: string, format: StreamFormat, subdots: string[]): Manifest {
  return { version: 1, dot, format, subdots, branches: {}, commits: {}, updatedAt: new Date(0).toISOString() };
}

/** Checks a manifest read from a remote before trusting any of it. */
export function validateManifest(where: string, raw: unknown): Manifest {
  const m = raw as Manifest;
  if (!m || typeof m !== 'object' || (m.version !== 1 && m.version !== 2) || typeof m.dot !== 'string' || !m.branches || !m.commits) {
    throw new ValidationError(where, 'is not a knarr dot manifest (version 1 or 2)');
  }
  for (const [b, br] of Object.entries(m.branches)) {
    for (const id of br.commits) {
      const c = m.commits[id];
      // sha256 is empty where the stream is made on demand (an ssh remote), never stored, or where crc32 is recorded.
      if (!c || !/^([0-9a-f]{64})?$/.test(c.sha256) || (c.crc32 !== undefined && !/^[0-9a-f]{8}$/.test(c.crc32)) || !/^[A-Za-z0-9._-]+$/.test(c.file)) {
        throw new ValidationError(where, `branch ${b} lists commit ${id} without a valid stream entry`);
      }
    }
  }
  return m;
}

/** True when every commit of head, in order, starts line. */
function startsWith(line: string[], head: string[]): boolean {
  return head.length <= line.length && head.every((id, i) => line[i] === id);
}

/** Why two pushes' manifests of one dot cannot be merged: a branch each moved its own way. */
export interface ManifestDivergence {
  branch: string;
  oursOnly: string[];
  theirsOnly: string[];
}

/**
 * Merges the manifest a push holds with the one another push landed meanwhile: each branch takes the
 * longer line where one starts the other, commits and subdots are joined; a branch where both added
 * their own commits is a divergence (nothing is merged then).
 */
export function mergeManifests(ours: Manifest, theirs: Manifest): { merged: Manifest } | { diverged: ManifestDivergence } {
  const branches: Manifest['branches'] = {};
  for (const b of [...new Set([...Object.keys(theirs.branches), ...Object.keys(ours.branches)])].sort()) {
    const a = ours.branches[b]?.commits ?? [];
    const t = theirs.branches[b]?.commits ?? [];
    if (startsWith(a, t)) branches[b] = { commits: [...a] };
    else if (startsWith(t, a)) branches[b] = { commits: [...t] };
    else {
      let common = 0;
      while (a[common] === t[common]) common++;
      return { diverged: { branch: b, oursOnly: a.slice(common), theirsOnly: t.slice(common) } };
    }
  }
  return {
    merged: {
      ...ours,
      subdots: [...new Set([...theirs.subdots, ...ours.subdots])].sort(),
      branches,
      commits: { ...theirs.commits, ...ours.commits },
    },
  };
}
