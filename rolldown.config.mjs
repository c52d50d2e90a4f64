import { defineConfig } from 'rolldown';

// One bundle for the CLI: resolving ~30 modules and commander's files at start-up costs more than the code itself.
// CommonJS: Node 20 loads it synchronously, without the ES module loader's start-up cost.
// Handlers stay lazy: each dynamic import becomes its own chunk; heavy libraries (ora, yaml, chalk) stay external.
export default defineConfig({
  input: { knarr: 'dist/cli/main.js' },
  platform: 'node',
  external: [/^node:/, 'ora', 'yaml', 'chalk'],
  output: { dir: 'dist/bundle', format: 'cjs', entryFileNames: '[name].cjs', chunkFileNames: '[name]-[hash].cjs', minify: { mangle: false } },
});
