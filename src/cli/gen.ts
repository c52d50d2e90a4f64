import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { docsReference } from './docs-reference.js';
import { generatedFiles } from './generated.js';

/** `npm run gen`: rewrites completions/, man/, docs/configuration.md and the command blocks of docs/ from the command and settings tables. */
async function gen(): Promise<void> {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const files = generatedFiles();
  for (const dir of ['completions', 'man']) {
    await mkdir(join(root, dir), { recursive: true });
    for (const f of await readdir(join(root, dir))) if (!(`${dir}/${f}` in files)) await rm(join(root, dir, f));
  }
  await mkdir(join(root, 'docs'), { recursive: true });
  for (const [path, text] of Object.entries(files)) await writeFile(join(root, path), text);
  // The reference pages' command blocks, after docs/configuration.md is written.
  const pages = docsReference(root);
  for (const [path, text] of Object.entries(pages)) await writeFile(join(root, path), text);
  process.stdout.write(`wrote ${Object.keys(files).length + Object.keys(pages).length} files\n`);
}

await gen();
