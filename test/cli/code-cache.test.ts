import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir, type TempDir } from '../harness/tmp.js';

const root = new URL('../..', import.meta.url).pathname;

let tmp: TempDir;
beforeEach(async () => {
  tmp = await tempDir();
});
afterEach(() => tmp.cleanup());

/** A copy of the built CLI (shim, loader, bundle and its code cache) that a test may change. */
function copyOfCli(): string {
  const copy = `${tmp.path}/knarr`;
  cpSync(`${root}/bin`, `${copy}/bin`, { recursive: true });
  cpSync(`${root}/dist/bundle`, `${copy}/dist/bundle`, { recursive: true, preserveTimestamps: true });
  cpSync(`${root}/package.json`, `${copy}/package.json`);
  return copy;
}

describe('the bundle code cache', () => {
  it('the build writes one that Node takes for every chunk on the start-up path of pool list', async () => {
    const script = `
      const { bundleLoader } = require(${JSON.stringify(`${root}/bin/knarr`)});
      const loader = bundleLoader(${JSON.stringify(`${root}/dist/bundle`)});
      loader.load('knarr.cjs')
        .main(['--state-dir', ${JSON.stringify(`${tmp.path}/state`)}, '--json', 'pool', 'list'],
          { stdout: process.stdout, stderr: process.stderr, env: {}, cwd: '/' })
        .then((code) => console.error(JSON.stringify({ code, cached: [...loader.cached] })));`;
    const r = await execa(process.execPath, ['-e', script], { reject: false });
    expect(r.stdout.trim()).toBe('[]');
    const { code, cached } = JSON.parse(r.stderr) as { code: number; cached: string[] };
    expect(code).toBe(0);
    expect(cached).toContain('knarr.cjs');
    expect(cached.some((c) => c.startsWith('start-'))).toBe(true);
    expect(cached.some((c) => c.startsWith('list-'))).toBe(true);
  });

  it('a chunk changed after the build runs as it is now, not as its cached code (even at the same length)', async () => {
    const copy = copyOfCli();
    const bundle = `${copy}/dist/bundle`;
    const entry = readdirSync(bundle)
      .map((f) => `${bundle}/${f}`)
      .find((f) => f.endsWith('.cjs') && readFileSync(f, 'utf8').includes('hint: add --help for usage'));
    expect(entry).toBeDefined();
    const text = readFileSync(entry!, 'utf8');
    // V8 checks only the source's length: a same-length edit would otherwise run the code cached before it.
    writeFileSync(entry!, text.replaceAll('hint: add --help for usage', 'hint: ADD --HELP FOR USAGE'));
    const r = await execa(process.execPath, [`${copy}/bin/knarr`, 'pool', 'no-such-verb'], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('hint: ADD --HELP FOR USAGE');
  });

  it('without a cache, or with one that cannot be read, knarr runs the same', async () => {
    const copy = copyOfCli();
    for (const cache of [null, 'not a cache', '\xff\xff\xff\x7f[']) {
      if (cache === null) rmSync(`${copy}/dist/bundle/code-cache.bin`);
      else writeFileSync(`${copy}/dist/bundle/code-cache.bin`, cache);
      const r = await execa(process.execPath, [`${copy}/bin/knarr`, '--state-dir', `${tmp.path}/state`, '--json', 'pool', 'list'], { reject: false });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('[]');
    }
  });
});
