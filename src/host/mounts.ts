import type { Dirent } from 'node:fs';
import { readdir, readFile, rmdir, stat, statfs } from 'node:fs/promises';
import type { Runner } from './runner.js';

export interface MountEntry {
  source: string;
  target: string;
  fstype: string;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses /proc/self/mountinfo text (see proc(5)); pure, unit-tested. */
export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    const target = left[4];
    const fstype = right[0];
    const source = right[1];
    if (target === undefined || fstype === undefined || source === undefined) continue;
    entries.push({ source: unescapeMountField(source), target: unescapeMountField(target), fstype });
  }
  return entries;
}

export async function readMounts(): Promise<MountEntry[]> {
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** The last mount on target wins, as the kernel shows it. */
export async function mountAt(target: string): Promise<MountEntry | undefined> {
  const all = await readMounts();
  return all.filter((m) => m.target === target).pop();
}

/** The mounts among entries whose FUSE daemon is gone (statfs fails with ENOTCONN, or ECONNABORTED while it dies), outermost only. */
export async function staleMounts(entries: MountEntry[]): Promise<MountEntry[]> {
  const stale: MountEntry[] = [];
  for (const m of [...entries].sort((a, b) => a.target.length - b.target.length)) {
    if (stale.some((s) => m.target.startsWith(`${s.target}/`))) continue;
    // statfs, not stat: FUSE serves a mount point's attributes from its cache for a while after the daemon died; statfs always asks it.
    const err = await statfs(m.target).then(
      () => null,
      (e: NodeJS.ErrnoException) => e.code,
    );
    if (err === 'ENOTCONN' || err === 'ECONNABORTED') stale.push(m);
  }
  return stale;
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Removes path and the directories under it, deepest first, as far as they are empty: never a file, never a mount point (rmdir refuses both). */
export async function removeEmptyDirs(path: string): Promise<void> {
  let entries: Dirent[];
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) await removeEmptyDirs(`${path}/${e.name}`);
  await rmdir(path).catch(() => undefined);
}

/** Same directory by device and inode: a bind mount shows its source's; false when either is absent. */
export async function sameDirectory(a: string, b: string): Promise<boolean> {
  try {
    const [x, y] = await Promise.all([stat(a), stat(b)]);
    return x.isDirectory() && x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** What is at path: a directory, something else (a file, a socket), or nothing. */
export async function pathKind(path: string): Promise<'directory' | 'other' | null> {
  try {
    return (await stat(path)).isDirectory() ? 'directory' : 'other';
  } catch {
    return null;
  }
}

/** Entries directly in a directory; none when it is absent. */
export async function entriesOf(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch {
    return [];
  }
}

/** True when path holds nothing but folders that are empty all the way down (what a mkdir -p left). */
export async function onlyEmptyFolders(path: string): Promise<boolean> {
  let entries: Dirent[];
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch {
    return false;
  }
  for (const e of entries) {
    if (!e.isDirectory() || !(await onlyEmptyFolders(`${path}/${e.name}`))) return false;
  }
  return true;
}

/** Bytes of the regular files under path (not following links); what vanishes meanwhile counts as nothing. */
export async function treeBytes(path: string): Promise<number> {
  let entries: Dirent[];
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch {
    return 0;
  }
  let total = 0;
  for (const e of entries) {
    const p = `${path}/${e.name}`;
    if (e.isDirectory()) total += await treeBytes(p);
    else if (e.isFile())
      total += await stat(p).then(
        (st) => st.size,
        () => 0,
      );
  }
  return total;
}

export interface Space {
  sizeBytes: number;
  usedBytes: number;
  freeBytes: number;
}

export async function spaceOf(path: string): Promise<Space> {
  const s = await statfs(path);
  const size = s.blocks * s.bsize;
  return { sizeBytes: size, usedBytes: (s.blocks - s.bfree) * s.bsize, freeBytes: s.bavail * s.bsize };
}

export interface Signature {
  type: string;
  label: string | null;
  /** The filesystem's or pool's id (the zpool guid, the btrfs fsid): the same on every device of it. */
  uuid: string | null;
}

/** Parses `blkid -p -o export` output into the filesystem type and label. */
export function parseBlkidExport(text: string): Signature | null {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const type = fields.get('TYPE') ?? fields.get('PTTYPE');
  if (!type) return null;
  return { type, label: fields.get('LABEL') ?? null, uuid: fields.get('UUID') ?? null };
}

/** What a device or image file already holds, by its on-disk signature; null for blank. */
export async function probeSignature(runner: Runner, path: string): Promise<Signature | null> {
  const r = await runner.run(['blkid', '-p', '-o', 'export', path], { mutates: false, okExitCodes: [2] });
  return r.exitCode === 2 ? null : parseBlkidExport(r.stdout);
}
