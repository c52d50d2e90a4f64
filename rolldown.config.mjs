import { defineConfig } from 'rolldown';

// One bundle for the CLI: resolving ~30 modules and commander's files at start-up costs more than the code itself.
// Handlers stay lazy: each dynamic import becomes its own chunk; heavy libraries (ora, yaml, chalk) stay external.
export default defineConfig({
  input: { knarr: 'dist/cli/main.js' },
  platform: 'node',
  external: [/^node:/, 'ora', 'yaml', 'chalk'],
  output: { dir: 'dist/bundle', format: 'esm', entryFileNames: '[name].mjs', chunkFileNames: '[name]-[hash].mjs' },
});
