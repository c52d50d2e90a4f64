import { dir } from 'tmp-promise';

export interface TempDir {
  path: string;
  cleanup(): Promise<void>;
}

/** A private directory removed at cleanup, even when it holds files. */
export async function tempDir(prefix = 'knarr-test-'): Promise<TempDir> {
  const d = await dir({ prefix, unsafeCleanup: true });
  return { path: d.path, cleanup: () => d.cleanup() };
}

let counter = 0;
/** A pool or dataset name no other test run on this machine uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}${(counter++).toString(36)}`;
}
