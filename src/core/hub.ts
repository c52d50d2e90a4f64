import { parseDotName } from './dots.js';
import { HUB_USER_RE, validateHubUser } from './names.js';
import { ValidationError } from './errors.js';
import { checkManifestNames } from './manifest-names.js';
import { validateManifest, type Manifest } from './remote.js';

export { HUB_USER_RE, validateHubUser };

/** What a hub token lets its holder do with its user's dots. */
export type HubAccess = 'read' | 'write';

/** A token as tokens.json keeps it: the secret only as the sha256 of the whole token. */
export interface HubTokenRecord {
  id: string;
  user: string;
  access: HubAccess;
  sha256: string;
  createdAt: string;
}

/** A dot on a hub, as GET /hub/v1/dots and knarr hub list show it. */
export interface HubDotSummary {
  user: string;
  dot: string;
  format: string;
  branches: Record<string, string | null>;
  private: boolean;
  bytes: number;
  updatedAt: string;
}

export const HUB_TOKEN_RE = /^knh_([0-9a-f]{16})_([0-9a-f]{64})$/;
export const HUB_TOKEN_ID_RE = /^[0-9a-f]{16}$/;
export const UPLOAD_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;
export const SHA256_RE = /^[0-9a-f]{64}$/;

/** A dot name as a hub path holds it: a whole dot (no subdot). */
export function validateHubDot(field: string, dot: string): string {
  return parseDotName(field, dot);
}

export function validateUploadId(field: string, id: string): string {
  // "." and ".." are path parts, not files.
  if (!UPLOAD_ID_RE.test(id) || /^\.+$/.test(id))
    throw new ValidationError(field, `${JSON.stringify(id)} is not an upload id; use 1 to 128 letters, digits, ".", "_" and "-"`);
  return id;
}

export function validateTokenId(field: string, id: string): string {
  if (!HUB_TOKEN_ID_RE.test(id)) throw new ValidationError(field, `${JSON.stringify(id)} is not a hub token id (16 hex digits, as knarr hub token list shows)`);
  return id;
}

/** The token's id, or null when the text is not a hub token at all. */
export function hubTokenId(token: string): string | null {
  return HUB_TOKEN_RE.exec(token)?.[1] ?? null;
}

/** The token an `Authorization: Bearer knh_...` header carries; null for no header; 'bad' for a header that carries none. */
export function bearerOf(header: string | undefined): string | null | 'bad' {
  if (header === undefined || header === '') return null;
  const m = /^Bearer (\S+)$/.exec(header);
  return m ? m[1]! : 'bad';
}

/** A byte range request `bytes=N-` or `bytes=N-M` against a blob of size bytes: the first and last byte, null for none, 'bad' for one it cannot serve. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'bad' {
  if (header === undefined) return null;
  const m = /^bytes=(\d+)-(\d*)$/.exec(header.trim());
  if (!m) return 'bad';
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || end < start) return 'bad';
  return { start, end };
}

/** A manifest a push PUTs: a knarr manifest of that dot whose every commit names its blob by sha256 (file = sha256) and its size. */
export function checkHubManifest(raw: unknown, user: string, dot: string): Manifest {
  const m = validateManifest(`manifest of ${user}/${dot}`, raw);
  if (typeof m.format !== 'string' || !['zfs', 'btrfs', 'tar'].includes(m.format))
    throw new ValidationError('manifest.format', `${JSON.stringify(m.format)} is not a stream format (zfs, btrfs or tar)`);
  if (typeof m.updatedAt !== 'string') throw new ValidationError('manifest.updatedAt', 'must be a time (ISO 8601)');
  for (const [b, br] of Object.entries(m.branches))
    if (!br || !Array.isArray(br.commits)) throw new ValidationError(`manifest.branches.${b}`, 'must hold a list of commits');
  checkManifestNames(m, dot, `${user}/${dot}`);
  for (const [id, c] of Object.entries(m.commits)) {
    if (!SHA256_RE.test(c.sha256) || c.file !== c.sha256)
      throw new ValidationError(`manifest.commits.${id}`, "must name its blob by sha256 (file and sha256 both the blob's sha256 hex)");
    if (!Number.isSafeInteger(c.bytes) || c.bytes < 0) throw new ValidationError(`manifest.commits.${id}.bytes`, 'must be a whole number of bytes');
  }
  return m;
}

/** The blobs a manifest names, each with the size it says. */
export function manifestBlobs(m: Manifest): Map<string, number> {
  const out = new Map<string, number>();
  for (const c of Object.values(m.commits)) out.set(c.sha256, c.bytes);
  return out;
}

/** The listing of one dot: each branch's newest commit, and the bytes of its blobs. */
export function summarizeDot(user: string, m: Manifest, isPrivate: boolean): HubDotSummary {
  const branches: Record<string, string | null> = {};
  for (const [b, { commits }] of Object.entries(m.branches)) branches[b] = commits.at(-1) ?? null;
  let bytes = 0;
  for (const size of manifestBlobs(m).values()) bytes += size;
  return { user, dot: m.dot, format: m.format, branches, private: isPrivate, bytes, updatedAt: m.updatedAt };
}
