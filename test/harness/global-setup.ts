import { mkdirSync } from 'node:fs';
import { execa } from 'execa';
import { haveTools } from './tools.js';
import { zfsAnswers } from './zfs.js';

let startedZfsFuse: number | null = null;

/**
 * zfs-fuse serves one fixed socket (/var/run/zfs/zfs_socket) per machine, so the run shares
 * one daemon: started here if none answers, stopped at teardown if we started it.
 */
export async function setup(): Promise<void> {
  if (!haveTools('zfs-fuse', 'zpool') || (await zfsAnswers())) return;
  mkdirSync('/var/run/zfs', { recursive: true });
  const pidFile = `/var/run/zfs/knarr-test-zfs-fuse.pid`;
  await execa('zfs-fuse', ['--pidfile', pidFile], { reject: false });
  for (let i = 0; i < 100 && !(await zfsAnswers()); i++) await new Promise((r) => setTimeout(r, 100));
  try {
    const { readFileSync } = await import('node:fs');
    startedZfsFuse = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    startedZfsFuse = null;
  }
}

export async function teardown(): Promise<void> {
  if (!startedZfsFuse) return;
  try {
    process.kill(startedZfsFuse, 'SIGTERM');
  } catch {
    /* already gone */
  }
}
