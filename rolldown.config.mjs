import { promises, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { defineConfig } from 'rolldown';

// node:fs/promises loads ~10 more of Node's modules (readline among them), ~1 ms at every start, and the start-up
// path calls none of it (it reads synchronously): the bundle binds each function at its first call instead.
const LAZY_FS_PROMISES = '\0lazy-fs-promises';
const lazyFsPromises = {
  name: 'lazy-fs-promises',
  resolveId: (id) => (id === 'node:fs/promises' || id === 'fs/promises' ? LAZY_FS_PROMISES : null),
  load: (id) =>
    id !== LAZY_FS_PROMISES
      ? null
      : [
          "import { promises, constants } from 'node:fs';",
          'export { constants };',
          ...Object.keys(promises)
            .filter((name) => typeof promises[name] === 'function')
            .map((name) => `export function ${name}(...args) { return promises.${name}(...args); }`),
        ].join('\n'),
};

// A chunk with one character past ASCII is read into a string of two bytes a character, twice the young heap: the
// start-up chunk (its spinner frames) alone then took ~730 kB, enough for a scavenge on every start. The few there are
// (in string and template literals) are written as \u escapes.
const asciiOnly = {
  name: 'ascii-only',
  // After minifying, which would turn the escapes back into characters.
  generateBundle(_options, bundle) {
    for (const chunk of Object.values(bundle)) {
      if (chunk.type === 'chunk') chunk.code = chunk.code.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    }
  },
};

// The version main.js reads from package.json at every start (a file read and URL handling, ~0.5 ms) is written in at
// build time; the expression stays as it is wherever it is not this exact form.
const PACKAGE_JSON = resolve('package.json');
const VERSION = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')).version;
const inlineVersion = {
  name: 'inline-version',
  transform: (code, id) =>
    code.replace(/JSON\.parse\(readFileSync\(new URL\('((?:\.\.\/)+)package\.json', import\.meta\.url\), 'utf8'\)\)\.version/g, (expr, up) =>
      resolve(dirname(id), `${up}package.json`) === PACKAGE_JSON ? JSON.stringify(VERSION) : expr,
    ),
};

/** The modules main.js imports statically, directly or not: what every command loads before its handler. */
function startUpModules(entry) {
  const seen = new Set();
  const visit = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)) visit(resolve(dirname(file), spec));
  };
  visit(resolve(entry));
  return seen;
}
const START = startUpModules('dist/cli/main.js');
const AGENT_ONLY = new Set(['etcd3', 'cockatiel']);

// One bundle for the CLI: resolving ~30 modules and commander's files at start-up costs more than the code itself.
// CommonJS: Node 20 loads it synchronously, without the ES module loader's start-up cost.
// Handlers stay lazy: each dynamic import becomes its own chunk. yaml is bundled into one lazy chunk (as ~80 files it
// cost ~25 ms whenever a config file was read); chalk too (terminal only). No import() is left in the output
// (dynamicImportInCjs: false): bin/knarr compiles the chunks itself, with V8's code cache, where import() has no loader.
export default defineConfig({
  input: { knarr: 'dist/cli/main.js' },
  platform: 'node',
  // The agent's store client stays in node_modules: etcd3 reads its .proto files from there, and no command's start loads it.
  external: (id) => (id.startsWith('node:') && id !== 'node:fs/promises') || AGENT_ONLY.has(id),
  plugins: [lazyFsPromises, inlineVersion, asciiOnly],
  output: {
    dir: 'dist/bundle',
    format: 'cjs',
    entryFileNames: '[name].cjs',
    chunkFileNames: '[name]-[hash].cjs',
    minify: { mangle: false },
    dynamicImportInCjs: false,
    // The start-up path's modules in one chunk: each chunk file is one more stat, read and compile at every start.
    codeSplitting: { groups: [{ name: 'start', test: (id) => START.has(id) }] },
  },
});
