import { execa } from 'execa';
import { haveTools } from './tools.js';

/** True when zpool answers (kernel ZFS, or the zfs-fuse daemon the global setup started). */
export async function zfsAnswers(): Promise<boolean> {
  if (!haveTools('zpool', 'zfs')) return false;
  const r = await execa('zpool', ['list', '-H', '-o', 'name'], { reject: false, timeout: 10_000 });
  return r.exitCode === 0;
}

/** Destroys a test pool if it is still there; used in afterAll so a failing test leaves nothing behind. */
export async function destroyPoolQuietly(name: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const listed = await execa('zpool', ['list', '-H', '-o', 'name', name], { reject: false });
    if (listed.exitCode !== 0) return;
    const r = await execa('zpool', ['destroy', '-f', name], { reject: false });
    if (r.exitCode === 0) return;
    await new Promise((res) => setTimeout(res, 250));
  }
}

/** Runs a zfs command that zfs-fuse may answer with "busy" for a moment after a mount changed. */
export async function zfsRetrying(args: string[]): Promise<void> {
  for (let i = 0; ; i++) {
    const r = await execa('zfs', args, { reject: false });
    if (r.exitCode === 0) return;
    if (!/busy/.test(r.stderr) || i >= 40) throw new Error(`zfs ${args.join(' ')}: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 250));
  }
}
