import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url).pathname;

interface Diagnostic {
  category: string;
  message: string;
  location: { path: string; start: { line: number } };
}

describe('code habits (fix with `npm run format`, then by hand what it reports)', () => {
  it('biome finds no lint warning and no unformatted file', async () => {
    const r = await execa(`${root}node_modules/.bin/biome`, ['check', '--error-on-warnings', '--max-diagnostics=none', '--reporter=json'], {
      cwd: root,
      reject: false,
    });
    const found = (JSON.parse(r.stdout) as { diagnostics: Diagnostic[] }).diagnostics.map(
      (d) => `${d.location.path}${d.category === 'format' ? '' : `:${d.location.start.line}`} ${d.category}: ${d.message}`,
    );
    expect(found, r.stderr).toEqual([]);
    expect(r.exitCode, r.stderr).toBe(0);
  });

  it("no line in src/ or test/ is longer than the formatter's width", async () => {
    const r = await execa('node', [`${root}scripts/long-lines.mjs`], { reject: false });
    expect(r.stdout.split('\n').filter(Boolean)).toEqual([]);
    expect(r.exitCode).toBe(0);
  });
});
