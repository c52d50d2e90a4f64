'use strict';
// Writes dist/bundle/code-cache.bin after the bundle is built: runs `pool list` (json and table, with a config file)
// against an empty state directory, the path every command's start shares, then saves the compiled code.
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join, resolve } = require('node:path');
const { Writable } = require('node:stream');
const { bundleLoader } = require('../bin/knarr');

async function main() {
  const loader = bundleLoader(resolve(__dirname, '../dist/bundle'));
  const cli = loader.load('knarr.cjs');
  const state = mkdtempSync(join(tmpdir(), 'knarr-code-cache-'));
  try {
    writeFileSync(`${state}/config.yaml`, `output: table\nstateDir: ${state}\n`);
    const sink = new Writable({ write: (_chunk, _enc, done) => done() });
    const io = { stdout: sink, stderr: sink, env: { PATH: process.env.PATH ?? '' }, cwd: state, stderrIsTTY: false };
    for (const argv of [['--json', 'pool', 'list'], ['pool', 'list']]) {
      const code = await cli.main(['--config', `${state}/config.yaml`, ...argv], io);
      if (code !== 0) throw new Error(`knarr ${argv.join(' ')} exited ${code}`);
    }
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
  const { chunks, bytes } = loader.writeCache();
  console.log(`code cache: ${chunks} chunks, ${(bytes / 1024).toFixed(0)} kB`);
}

main().catch((e) => {
  console.error(`code-cache: ${e.stack ?? e}`);
  process.exit(1);
});
