import { ValidationError } from './errors.js';
import { looksLikeHubHost, validateHubUser, validateName, whitespaceIn } from './names.js';

/** The subdirectory of a dot's filesystem that a bare DOT (no ".subdot") names, as dotmesh's __default__. */
export const DEFAULT_SUBDOT = '__default__';
export const DEFAULT_BRANCH = 'master';
export const DOT_NAME_MAX = 200;

const PART_RE = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

function checkPart(field: string, whole: string, part: string, what: string): void {
  const shown = JSON.stringify(whole);
  if (whole.length > DOT_NAME_MAX)
    throw new ValidationError(field, `${shown.slice(0, 40)}..." is ${whole.length} characters long; use at most ${DOT_NAME_MAX}`);
  if (whole.startsWith('-')) throw new ValidationError(field, `${shown} starts with "-"; start with a letter or digit`);
  if (whole.includes('/')) throw new ValidationError(field, `${shown} contains "/"; use "-" or "_" instead`);
  if (whole.includes('@')) throw new ValidationError(field, `${shown} contains "@"; "@" separates a branch only in REMOTE/DOT@BRANCH`);
  const blank = whitespaceIn(whole);
  if (blank) throw new ValidationError(field, `${shown} contains ${blank}; use "-" or "_" instead`);
  if (whole.includes('..')) throw new ValidationError(field, `${shown} contains ".."; a single "." separates a dot from its subdot`);
  if (part === '') throw new ValidationError(field, `${shown} has an empty ${what} name`);
  if (!PART_RE.test(part)) {
    throw new ValidationError(
      field,
      `${shown}: the ${what} name ${JSON.stringify(part)} may use only letters, digits, "-" and "_", starting with a letter or digit`,
    );
  }
}

export interface DotRef {
  dot: string;
  /** Null for the bare dot, which is its __default__ subdot. */
  subdot: string | null;
}

/** Parses DOT or DOT.SUBDOT ("myapp.postgres"), naming the field in every error. */
export function parseDotRef(field: string, text: string): DotRef {
  if (text === '') throw new ValidationError(field, 'must not be empty; give a dot name like myapp or myapp.postgres');
  const dotAt = text.indexOf('.');
  const dot = dotAt < 0 ? text : text.slice(0, dotAt);
  const subdot = dotAt < 0 ? null : text.slice(dotAt + 1);
  checkPart(field, text, dot, 'dot');
  if (subdot !== null) {
    if (subdot.includes('.')) throw new ValidationError(field, `${JSON.stringify(text)} has more than one "."; write DOT or DOT.SUBDOT`);
    // Subdot names start with a letter or digit, so none can be the bare dot's __default__.
    checkPart(field, text, subdot, 'subdot');
  }
  return { dot, subdot };
}

/** A dot name without a subdot (commands that act on the whole dot). */
export function parseDotName(field: string, text: string): string {
  const ref = parseDotRef(field, text);
  if (ref.subdot !== null) throw new ValidationError(field, `${JSON.stringify(text)} names a subdot; this command takes the whole dot (${ref.dot})`);
  return ref.dot;
}

export function validateBranch(field: string, text: string): string {
  if (text === '') throw new ValidationError(field, 'must not be empty');
  checkPart(field, text, text, 'branch');
  return text;
}

export function subdotDir(subdot: string | null): string {
  return subdot ?? DEFAULT_SUBDOT;
}

export interface RemoteDotRef {
  /** A remote's name, a URL, or a hub host (dothub.com) that is no remote's name. */
  remote: string;
  /** The hub account of REMOTE/USER/DOT; null where the remote's URL (or the hub token) tells it. */
  user: string | null;
  dot: string;
  branch: string | null;
}

/** Splits TEXT@BRANCH at an "@" after the last "/". */
function splitBranch(field: string, text: string): { body: string; branch: string | null } {
  const at = text.lastIndexOf('@');
  if (at < 0 || at < text.lastIndexOf('/')) return { body: text, branch: null };
  return { body: text.slice(0, at), branch: validateBranch(field, text.slice(at + 1)) };
}

/** The first segment of REMOTE/...: a remote's name, or a host name with a "." (a hub, when no remote has that name). */
function checkRemoteSegment(field: string, remote: string): void {
  if (looksLikeHubHost(remote)) return;
  validateName(field, remote, 64);
}

/**
 * Parses REMOTE/DOT[@BRANCH], REMOTE/USER/DOT[@BRANCH] (a hub remote, or a hub host like dothub.com)
 * and URL/DOT[@BRANCH] for pull and seeds (a URL's last path segment is the dot).
 */
export function parseRemoteDotRef(field: string, text: string): RemoteDotRef {
  if (text.includes('://')) {
    const { body, branch } = splitBranch(field, text);
    const cut = body.lastIndexOf('/');
    const remote = body.slice(0, cut);
    if (cut < 0 || remote.endsWith(':/') || remote.endsWith(':'))
      throw new ValidationError(field, `${JSON.stringify(text)} names no dot; write URL/DOT, e.g. file:///mnt/usb/dots/myapp or https://hub:7946/USER/DOT`);
    return { remote, user: null, dot: parseDotName(field, body.slice(cut + 1)), branch };
  }
  const { body, branch } = splitBranch(field, text);
  const parts = body.split('/');
  if (parts.length < 2 || parts.length > 3 || parts[0] === '')
    throw new ValidationError(
      field,
      `${JSON.stringify(text)} is not REMOTE/DOT[@BRANCH] or REMOTE/USER/DOT[@BRANCH]; add a remote with: knarr dot remote add NAME URL`,
    );
  checkRemoteSegment(field, parts[0]!);
  const user = parts.length === 3 ? validateHubUser(field, parts[1]!) : null;
  return { remote: parts[0]!, user, dot: parseDotName(field, parts[parts.length - 1]!), branch };
}

export interface PushTarget {
  remote: string;
  /** The hub account of REMOTE/USER/NAME; null where the remote's URL (or the hub token) tells it. */
  user: string | null;
  /** The name the dot gets there; null for the local dot's own. */
  dot: string | null;
}

/** Parses where `dot push` sends: REMOTE, REMOTE/USER/NAME (a hub), a URL, or a hub URL https://HOST[:PORT]/USER/NAME. */
export function parsePushTarget(field: string, text: string): PushTarget {
  if (text === '') throw new ValidationError(field, 'must not be empty; give a remote name or URL');
  if (text.includes('://')) {
    const m = /^(https?:\/\/[^/]+\/[^/]+)\/([^/]+)\/?$/.exec(text);
    return m ? { remote: m[1]!, user: null, dot: parseDotName(field, m[2]!) } : { remote: text, user: null, dot: null };
  }
  if (text.includes('@')) throw new ValidationError(field, `${JSON.stringify(text)} names a branch; push one with --branch`);
  const parts = text.split('/');
  if (parts.length === 1) {
    checkRemoteSegment(field, text);
    return { remote: text, user: null, dot: null };
  }
  if (parts.length !== 3 || parts[0] === '')
    throw new ValidationError(field, `${JSON.stringify(text)} is neither REMOTE nor REMOTE/USER/NAME (a hub account and the name the dot gets there)`);
  checkRemoteSegment(field, parts[0]!);
  return { remote: parts[0]!, user: validateHubUser(field, parts[1]!), dot: parseDotName(field, parts[2]!) };
}

/** `--meta k=v` pairs; keys are simple identifiers so they survive every on-disk format. */
export function parseMeta(field: string, pairs: string[]): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    const key = eq < 0 ? p : p.slice(0, eq);
    if (eq < 0 || !/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(key)) {
      throw new ValidationError(field, `${JSON.stringify(p)} is not KEY=VALUE with a key of letters, digits, "_", "-" or "."`);
    }
    meta[key] = p.slice(eq + 1);
  }
  return meta;
}

export function validateMessage(field: string, message: string | undefined): string {
  if (message === undefined || message.trim() === '') throw new ValidationError(field, 'a commit needs a message: -m "what changed"');
  if (message.length > 4096) throw new ValidationError(field, `the message is ${message.length} characters long; use at most 4096`);
  return message;
}

/** Commit ids sort by creation time: 10 base-36 digits of milliseconds, then 8 random hex digits (from 4 random bytes the caller draws). */
export function newCommitId(now: number, random: Buffer): string {
  return `${now.toString(36).padStart(10, '0')}${random.toString('hex')}`;
}

export const COMMIT_ID_RE = /^[0-9a-z]{10}[0-9a-f]{8}$/;

export interface CommitRecord {
  id: string;
  dot: string;
  branch: string;
  parent: string | null;
  message: string;
  author: string;
  time: string;
  meta: Record<string, string>;
}

export interface BranchRecord {
  head: string | null;
  /** Where the branch was made from; null for master. */
  from: { branch: string; commit: string } | null;
  createdAt: string;
}

export interface DotRecord {
  name: string;
  pool: string;
  subdots: string[];
  branches: Record<string, BranchRecord>;
  activeBranch: string;
  /** Mount targets by subdot directory name. */
  mounts: Record<string, string>;
  /** Set on a clone or a pulled dot. */
  origin: { dot?: string; commit?: string; remote?: string; branch?: string } | null;
  createdAt: string;
}

/** A branch's history, newest first, following parents from its head. */
export function chain(commits: Map<string, CommitRecord>, head: string | null): CommitRecord[] {
  const out: CommitRecord[] = [];
  const seen = new Set<string>();
  for (let id = head; id && !seen.has(id); ) {
    seen.add(id);
    const c = commits.get(id);
    if (!c) break;
    out.push(c);
    id = c.parent;
  }
  return out;
}

/** Resolves a commit given by id or unique id prefix among candidates. */
export function resolveCommit(field: string, candidates: CommitRecord[], text: string): CommitRecord {
  const matches = candidates.filter((c) => c.id === text || (text.length >= 4 && c.id.startsWith(text)));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw new ValidationError(field, `${JSON.stringify(text)} matches ${matches.length} commits; give more of the id`);
  throw new ValidationError(field, `no commit ${JSON.stringify(text)} on this branch; see: knarr dot log`);
}

export type TransferPlan =
  | { kind: 'up-to-date' }
  | { kind: 'send'; base: string | null; commits: string[] }
  | { kind: 'diverged'; common: string | null; fromOnly: string[]; toOnly: string[] };

/**
 * What must travel so `to` gets every commit of `from` (each chain oldest first): only the commits
 * `to` lacks, sent on top of the newest commit both have. Refuses when `to` has commits `from` lacks.
 */
export function planTransfer(from: string[], to: string[]): TransferPlan {
  let common = -1;
  while (common + 1 < from.length && common + 1 < to.length && from[common + 1] === to[common + 1]) common++;
  const fromOnly = from.slice(common + 1);
  const toOnly = to.slice(common + 1);
  if (toOnly.length > 0) return { kind: 'diverged', common: common >= 0 ? from[common]! : null, fromOnly, toOnly };
  if (fromOnly.length === 0) return { kind: 'up-to-date' };
  return { kind: 'send', base: common >= 0 ? from[common]! : null, commits: fromOnly };
}

/** Checks a commit record received from another host (`dot receive --record`) before trusting it. */
export function parseCommitRecordJson(field: string, text: string | undefined, dot: string, branch: string): CommitRecord {
  let raw: Partial<CommitRecord>;
  try {
    raw = JSON.parse(text ?? '') as Partial<CommitRecord>;
  } catch {
    throw new ValidationError(field, 'is not a JSON commit record');
  }
  if (typeof raw !== 'object' || raw === null || typeof raw.id !== 'string' || !COMMIT_ID_RE.test(raw.id))
    throw new ValidationError(field, 'has no valid commit id');
  if (raw.parent !== null && (typeof raw.parent !== 'string' || !COMMIT_ID_RE.test(raw.parent))) throw new ValidationError(field, 'has an invalid parent');
  if (typeof raw.message !== 'string' || typeof raw.author !== 'string' || typeof raw.time !== 'string')
    throw new ValidationError(field, 'needs message, author and time');
  const meta = raw.meta && typeof raw.meta === 'object' ? Object.fromEntries(Object.entries(raw.meta).map(([k, v]) => [k, String(v)])) : {};
  return { id: raw.id, dot, branch, parent: raw.parent ?? null, message: raw.message, author: raw.author, time: raw.time, meta };
}
