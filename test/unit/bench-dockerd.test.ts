import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const bench = new URL('../bench/', import.meta.url).pathname;
const files = readdirSync(bench, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.mjs'));

describe('benchmarks never break the host', () => {
  it("start every private dockerd through lib/dockerd.mjs, on a bridge of its own (--bridge=none in the host's namespace deletes docker0)", () => {
    const offenders: string[] = [];
    for (const f of files) {
      const text = readFileSync(`${bench}${f}`, 'utf8');
      if (text.includes('--bridge=none')) offenders.push(`${f}: --bridge=none`);
      if (f !== 'lib/dockerd.mjs' && /spawn(Sync)?\(\s*['"]dockerd['"]\s*,\s*\[\s*['"]-H/.test(text)) offenders.push(`${f}: starts dockerd itself`);
    }
    expect(offenders).toEqual([]);
    expect(readFileSync(`${bench}lib/dockerd.mjs`, 'utf8')).toMatch(/--bridge=\$\{bridge\}/);
  });
});
