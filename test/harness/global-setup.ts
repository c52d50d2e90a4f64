import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { execa } from 'execa';
import { haveTools } from './tools.js';
import { zfsAnswers } from './zfs.js';

const PID_DIR = '/var/run/zfs';
const PID_PREFIX = 'knarr-test-zfs-fuse';
let startedZfsFuse: number | null = null;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** zfs-fuse exits 1 without a word when its pid file exists: drop the files of earlier runs whose daemon is gone. */
function dropStalePidFiles(): void {
  for (const f of readdirSync(PID_DIR)) {
    if (!f.startsWith(PID_PREFIX)) continue;
    const pid = Number(readFileSync(`${PID_DIR}/${f}`, 'utf8').trim());
    if (!pid || !alive(pid)) rmSync(`${PID_DIR}/${f}`, { force: true });
  }
}

/**
 * zfs-fuse serves one fixed socket (/var/run/zfs/zfs_socket) per machine, so the run shares
 * one daemon: started here if none answers, stopped at teardown if we started it.
 */
export async function setup(): Promise<void> {
  if (!haveTools('zfs-fuse', 'zpool') || (await zfsAnswers())) return;
  mkdirSync(PID_DIR, { recursive: true });
  dropStalePidFiles();
  const pidFile = `${PID_DIR}/${PID_PREFIX}-${process.pid}.pid`;
  const started = await execa('zfs-fuse', ['--pidfile', pidFile], { reject: false });
  if (started.exitCode !== 0) {
    console.warn(`zfs-fuse did not start (exit ${started.exitCode}): ${started.stderr || started.stdout}`);
    return;
  }
  for (let i = 0; i < 100 && !(await zfsAnswers()); i++) await new Promise((r) => setTimeout(r, 100));
  try {
    startedZfsFuse = Number(readFileSync(pidFile, 'utf8').trim()) || null;
  } catch {
    startedZfsFuse = null;
  }
}

export async function teardown(): Promise<void> {
  if (!startedZfsFuse) return;
  try {
    process.kill(startedZfsFuse, 'SIGTERM');
  } catch {
    return;
  }
  // zfs-fuse takes a moment to exit: a run started right after must not find a daemon on its way out.
  for (let i = 0; i < 100 && alive(startedZfsFuse); i++) await new Promise((r) => setTimeout(r, 100));
}
