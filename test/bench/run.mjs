// Runs every benchmark in test/bench (each *.mjs but this one), one after another.
// `node test/bench/run.mjs startup` runs only those whose file name contains "startup".
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const self = basename(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const benches = readdirSync(here)
  .filter((f) => f.endsWith('.mjs') && f !== self)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();

if (benches.length === 0) {
  console.error(`bench: nothing to run${filters.length ? ` matching ${filters.join(', ')}` : ''}`);
  process.exit(1);
}

const failed = [];
for (const f of benches) {
  console.log(`== ${f}`);
  const r = spawnSync(process.execPath, [join(here, f)], { stdio: 'inherit' });
  if (r.status !== 0) failed.push(`${f} (${r.error?.message ?? `exit ${r.status ?? r.signal}`})`);
}
// Benchmarks report their targets themselves; a non-zero exit here means one could not measure.
if (failed.length > 0) {
  console.error(`bench: ${failed.length} of ${benches.length} did not finish: ${failed.join(', ')}`);
  process.exit(1);
}
