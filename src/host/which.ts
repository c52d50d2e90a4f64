import { accessSync, constants } from 'node:fs';

/** Finds an executable on PATH without running anything; null when absent. */
export function findExecutable(name: string, pathEnv: string | undefined): string | null {
  for (const dir of (pathEnv ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (!dir) continue;
    const candidate = `${dir}/${name}`;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  return null;
}
