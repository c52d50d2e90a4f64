import type { BigIntStats } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';

export type ChangeKind = 'added' | 'changed' | 'removed';
export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

/** One path that differs between two trees, relative to their roots. */
export interface TreeChange {
  path: string;
  change: ChangeKind;
  type: EntryType;
}

export interface TreeDiffOptions {
  /**
   * Tree a is a snapshot that tree b went on from (on this host): a file whose ctime is a whole second older than
   * a's copy of it was not written since that copy was made, so it is not read.
   */
  descends?: boolean;
  /** When the older of the two trees was taken, in ns since the epoch (no later than that); 0 or absent: unknown. */
  takenAtNs?: bigint;
}

const SECOND = 1_000_000_000n;
// Timestamps are compared in whole seconds below: zfs-fuse keeps only seconds, so a write in the second a snapshot was taken can show the same ctime.
const floorSecond = (ns: bigint) => ns - (ns % SECOND);

const CHUNK = 1 << 20;
const BATCH = 32;

function typeOf(s: BigIntStats): EntryType {
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'dir';
  if (s.isSymbolicLink()) return 'symlink';
  return 'other';
}

async function stat(path: string): Promise<BigIntStats | null> {
  try {
    return await lstat(path, { bigint: true });
  } catch (e) {
    // A file removed while the tree is walked is simply not there.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

async function names(dir: string | null): Promise<string[]> {
  if (dir === null) return [];
  try {
    return await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw e;
  }
}

/** Byte for byte, stopping at the first difference. */
export async function sameContent(a: string, b: string, size = CHUNK): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    // Small files get small buffers: a tree of many small files is the common case.
    const len = Math.max(1, Math.min(CHUNK, size + 1));
    const ba = Buffer.allocUnsafe(len);
    const bb = Buffer.allocUnsafe(len);
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, len, null), fb.read(bb, 0, len, null)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

async function sameEntry(pa: string, pb: string, a: BigIntStats, b: BigIntStats, opts: TreeDiffOptions): Promise<boolean> {
  if (a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid) return false;
  const type = typeOf(a);
  // A directory's size and mtime follow its entries, which are compared one by one.
  if (type === 'dir') return true;
  if (type === 'symlink') return (await readlink(pa)) === (await readlink(pb));
  if (type === 'other') return a.rdev === b.rdev;
  if (a.size !== b.size || a.mtimeNs !== b.mtimeNs) return false;
  // One inode both snapshots share (zfs, btrfs, thin LVM), last changed a second before the older was taken: nothing wrote it since.
  if (a.ino === b.ino && a.ctimeNs === b.ctimeNs && opts.takenAtNs && a.ctimeNs < floorSecond(opts.takenAtNs)) return true;
  if (opts.descends && b.ctimeNs < floorSecond(a.ctimeNs)) return true;
  // Same size and mtime but written since (an mtime can be set back): only the bytes can tell.
  return sameContent(pa, pb, Number(a.size));
}

/**
 * What differs from tree a (null: nothing) to tree b (null: nothing), sorted by path: entries added, removed,
 * and changed (type, mode, owner; a file's size, mtime or content; a symlink's target). Everything inside an
 * added or removed directory is listed too.
 */
export async function diffTrees(a: string | null, b: string | null, opts: TreeDiffOptions = {}): Promise<TreeChange[]> {
  const out: TreeChange[] = [];
  const walk = async (rel: string, da: string | null, db: string | null): Promise<void> => {
    const [na, nb] = await Promise.all([names(da), names(db)]);
    const all = [...new Set([...na, ...nb])].sort();
    // A batch of entries at a time, stat'ed and compared at once: a big tree is bound by round trips to the filesystem (FUSE most of all).
    const looked: { sa: BigIntStats | null; sb: BigIntStats | null; same: boolean }[] = [];
    for (let i = 0; i < all.length; i += BATCH)
      looked.push(
        ...(await Promise.all(
          all.slice(i, i + BATCH).map(async (name) => {
            const pa = da === null ? null : `${da}/${name}`;
            const pb = db === null ? null : `${db}/${name}`;
            const [sa, sb] = await Promise.all([pa === null ? null : stat(pa), pb === null ? null : stat(pb)]);
            const same = sa !== null && sb !== null && typeOf(sa) === typeOf(sb) && (await sameEntry(pa!, pb!, sa, sb, opts));
            return { sa, sb, same };
          }),
        )),
      );
    for (const [i, name] of all.entries()) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const pa = da === null ? null : `${da}/${name}`;
      const pb = db === null ? null : `${db}/${name}`;
      const { sa, sb, same } = looked[i]!;
      if (!sa && !sb) continue;
      const ta = sa ? typeOf(sa) : null;
      const tb = sb ? typeOf(sb) : null;
      if (!sa) out.push({ path, change: 'added', type: tb! });
      else if (!sb) out.push({ path, change: 'removed', type: ta! });
      else if (ta !== tb) {
        out.push({ path, change: 'removed', type: ta! });
        out.push({ path, change: 'added', type: tb! });
      } else if (!same) out.push({ path, change: 'changed', type: tb! });
      if (ta === 'dir' || tb === 'dir') await walk(path, ta === 'dir' ? pa : null, tb === 'dir' ? pb : null);
    }
  };
  await walk('', a, b);
  return out;
}
