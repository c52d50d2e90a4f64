#!/usr/bin/env node
// Lists the lines of src/ and test/ longer than the formatter's width: the formatter cannot break strings and comments.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
export const WIDTH = Number(/"lineWidth":\s*(\d+)/.exec(readFileSync(join(root, 'biome.jsonc'), 'utf8'))[1]);

export function longLines(dirs = ['src', 'test']) {
  const found = [];
  for (const dir of dirs) {
    for (const entry of readdirSync(join(root, dir), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !/\.(ts|mjs)$/.test(entry.name)) continue;
      const path = join(entry.parentPath ?? entry.path, entry.name);
      readFileSync(path, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (line.length > WIDTH) found.push(`${path.slice(root.length)}:${i + 1}: ${line.length} columns`);
        });
    }
  }
  return found;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const found = longLines();
  for (const f of found) console.log(f);
  if (found.length > 0) {
    console.log(`${found.length} line(s) longer than ${WIDTH} columns: split the string or shorten the comment`);
    process.exitCode = 1;
  }
}
