import { lstat, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ConflictError } from '../../../core/errors.js';
import type { Runner } from '../../runner.js';

/**
 * A tar stream of a commit on top of a base: GNU tar whose first member, DELTA_MEMBER, says which base it applies
 * to and which paths the commit no longer has; the members after it are the files added or changed since the base.
 */
export const DELTA_MEMBER = '.knarr-delta';
const DELTA_VERSION = 1;
/** The delta member is read into memory: more than this is not a list of removed paths. */
const MAX_DELTA_BYTES = 64 * 1024 * 1024;
const BLOCK = 512;

export interface Delta {
  version: number;
  base: string;
  /** Paths relative to the tree's root ("a/b"), deleted before the files are extracted. */
  removed: string[];
}

export interface TreeChanges {
  /** Tar member names ("./a/b") of what the commit has new or changed, parents before children. */
  changed: string[];
  removed: string[];
  /** Bytes of the changed regular files: about what the stream will hold. */
  bytes: number;
}

interface Entry {
  kind: 'file' | 'dir' | 'link' | 'other';
  size: number;
  mtimeNs: bigint;
  mode: number;
  uid: number;
  gid: number;
  target: string | null;
}

async function entryOf(path: string): Promise<Entry | null> {
  const s = await lstat(path, { bigint: true }).catch(() => null);
  if (!s) return null;
  const kind = s.isFile() ? 'file' : s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'link' : 'other';
  return {
    kind,
    size: Number(s.size),
    mtimeNs: s.mtimeNs,
    mode: Number(s.mode),
    uid: Number(s.uid),
    gid: Number(s.gid),
    target: kind === 'link' ? await readlink(path) : null,
  };
}

/** The same as far as a quick check tells (type, size, mtime, owner, mode, link target), as rsync decides without reading contents. */
const same = (a: Entry, b: Entry) =>
  a.kind === b.kind && a.size === b.size && a.mtimeNs === b.mtimeNs && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.target === b.target;

async function names(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

/** What tree has that base lacks or has otherwise, and what base has that tree lacks; skip names ignored at the root. */
export async function treeChanges(base: string, tree: string, skipAtRoot: readonly string[] = []): Promise<TreeChanges> {
  const out: TreeChanges = { changed: [], removed: [], bytes: 0 };
  const walk = async (rel: string, baseDir: string | null) => {
    const here = rel === '' ? tree : `${tree}/${rel}`;
    const theirs = baseDir === null ? new Set<string>() : new Set(await names(baseDir));
    const ours = new Set(await names(here));
    for (const n of theirs) if (!ours.has(n) && !(rel === '' && skipAtRoot.includes(n))) out.removed.push(rel === '' ? n : `${rel}/${n}`);
    for (const n of ours) {
      if (rel === '' && skipAtRoot.includes(n)) continue;
      const path = rel === '' ? n : `${rel}/${n}`;
      const now = (await entryOf(`${tree}/${path}`))!;
      const was = theirs.has(n) ? await entryOf(`${baseDir}/${n}`) : null;
      // A path that changed its type goes first: tar would not put a file where a directory is.
      if (was && was.kind !== now.kind) out.removed.push(path);
      if (!was || !same(was, now)) {
        out.changed.push(`./${path}`);
        if (now.kind === 'file') out.bytes += now.size;
      }
      if (now.kind === 'dir') await walk(path, was?.kind === 'dir' ? `${baseDir}/${n}` : null);
    }
  };
  await walk('', base);
  return out;
}

/** Writes the delta member and the list of changed members (NUL-separated, for tar -T) into dir. */
export async function writeDeltaFiles(dir: string, base: string, changes: TreeChanges): Promise<{ member: string; list: string }> {
  const delta: Delta = { version: DELTA_VERSION, base, removed: changes.removed };
  await writeFile(`${dir}/${DELTA_MEMBER}`, JSON.stringify(delta));
  await writeFile(`${dir}/changed.list`, changes.changed.map((p) => `${p}\0`).join(''));
  return { member: `${dir}/${DELTA_MEMBER}`, list: `${dir}/changed.list` };
}

/** tar writing the delta member from metaDir, then the listed members from tree (no recursion: the list names each one). */
export function deltaTarArgv(metaDir: string, tree: string): string[] {
  return ['tar', '-cf', '-', '-C', metaDir, DELTA_MEMBER, '-C', tree, '--no-recursion', '--null', '-T', `${metaDir}/changed.list`];
}

const bad = (source: string, why: string) =>
  new ConflictError(`stream ${source} is not an incremental tree stream: ${why}`, { hint: 'push the dot again from a host that has it' });

function octal(field: Buffer): number {
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  return /^[0-7]+$/.test(text) ? parseInt(text, 8) : NaN;
}

/** Reads the delta member off the front of input; rest is the tar archive that follows it, errors of input passed on. */
export async function readDelta(input: Readable, source: string): Promise<{ delta: Delta; rest: Readable }> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let buf = Buffer.alloc(0);
  const fill = async (n: number) => {
    while (buf.length < n) {
      const r = await it.next();
      if (r.done) throw bad(source, 'it ends before its delta member does');
      buf = Buffer.concat([buf, Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value)]);
    }
  };
  await fill(BLOCK);
  const name = buf.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
  const type = String.fromCharCode(buf[156]!);
  const size = octal(buf.subarray(124, 136));
  if (name !== DELTA_MEMBER || (type !== '0' && type !== '\0')) throw bad(source, `its first member is ${JSON.stringify(name)}`);
  if (!Number.isFinite(size) || size > MAX_DELTA_BYTES) throw bad(source, 'its delta member has no sane size');
  const end = BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  await fill(end);
  let delta: Delta;
  try {
    delta = JSON.parse(buf.subarray(BLOCK, BLOCK + size).toString('utf8')) as Delta;
  } catch {
    throw bad(source, 'its delta member is not JSON');
  }
  if (delta?.version !== DELTA_VERSION || typeof delta.base !== 'string' || !Array.isArray(delta.removed) || !delta.removed.every((p) => typeof p === 'string'))
    throw bad(source, `its delta member is not version ${DELTA_VERSION}`);
  const head = buf.subarray(end);
  async function* remaining(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { delta, rest: Readable.from(remaining(), { objectMode: false }) };
}

/**
 * Deletes the removed paths under root. Each comes from a stream, so it is checked as input: relative, no "." or
 * ".." parts, and no parent that is a symlink (which would reach outside the tree).
 */
export async function applyRemovals(runner: Runner, root: string, removed: string[], source: string): Promise<void> {
  for (const p of removed) {
    const parts = p.split('/');
    if (p === '' || parts.some((x) => x === '' || x === '.' || x === '..')) throw bad(source, `it removes ${JSON.stringify(p)}`);
    let dir = root;
    let inside = true;
    for (const part of parts.slice(0, -1)) {
      dir = `${dir}/${part}`;
      const s = await lstat(dir).catch(() => null);
      if (!s?.isDirectory()) {
        // A parent that is gone took the path with it; a parent that is a symlink is never followed.
        inside = false;
        break;
      }
    }
    if (inside && !runner.dryRun) await rm(`${root}/${p}`, { recursive: true, force: true });
  }
}

/** Applies an incremental tree stream onto root, which holds the base's tree: removals first, then the files. */
export async function applyDelta(runner: Runner, root: string, base: string, input: Readable, source: string): Promise<void> {
  const { delta, rest } = await readDelta(input, source);
  if (delta.base !== base) throw bad(source, `it applies on top of ${delta.base}, not ${base}`);
  await applyRemovals(runner, root, delta.removed, source);
  await runner.pipe(['tar', '-C', root, '-xpf', '-'], { stdin: rest, redirect: `< ${source}` });
}
