import { accessSync, constants } from 'node:fs';

/** True when every binary is on PATH. */
export function haveTools(...names: string[]): boolean {
  return names.every((n) => whichSync(n) !== null);
}

export function whichSync(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      return `${dir}/${name}`;
    } catch {
      /* next */
    }
  }
  return null;
}

export const REQUIRE_INTEGRATION = process.env.KNARR_REQUIRE_INTEGRATION === '1';

/**
 * Decides whether an integration suite runs. Missing tools skip it with a printed reason,
 * or fail the run under KNARR_REQUIRE_INTEGRATION=1 (CI).
 */
export function integration(suite: string, ready: boolean, reason: string): boolean {
  if (ready) return true;
  if (REQUIRE_INTEGRATION) throw new Error(`${suite}: ${reason} (KNARR_REQUIRE_INTEGRATION=1 forbids skipping)`);
  console.warn(`skipping ${suite}: ${reason}`);
  return false;
}
