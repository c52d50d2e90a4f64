import { defineConfig } from 'rolldown';

// One bundle for the CLI: resolving ~30 modules and commander's files at start-up costs more than the code itself.
// CommonJS: Node 20 loads it synchronously, without the ES module loader's start-up cost.
// Handlers stay lazy: each dynamic import becomes its own chunk. yaml is bundled into one lazy chunk (as ~80 files it
// cost ~25 ms whenever a config file was read); chalk too (terminal only). No import() is left in the output
// (dynamicImportInCjs: false): bin/knarr compiles the chunks itself, with V8's code cache, where import() has no loader.
export default defineConfig({
  input: { knarr: 'dist/cli/main.js' },
  platform: 'node',
  external: [/^node:/],
  output: {
    dir: 'dist/bundle',
    format: 'cjs',
    entryFileNames: '[name].cjs',
    chunkFileNames: '[name]-[hash].cjs',
    minify: { mangle: false },
    dynamicImportInCjs: false,
  },
});
