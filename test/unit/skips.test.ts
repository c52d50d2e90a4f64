import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('../', import.meta.url).pathname;
const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.test.ts'));

/** The text between the parenthesis at open and its match. */
function argumentAt(text: string, open: number): string {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return text.slice(open + 1, i);
  }
  return text.slice(open + 1);
}

/** A condition passes through integration() when it calls it, or is a name (or an entry of a table) the file assigns from it. */
function viaIntegration(text: string, condition: string): boolean {
  if (condition.includes('integration(')) return true;
  const name = /^!\s*([A-Za-z_$][\w$]*)(?:\[[\w$]+\])?$/.exec(condition.trim())?.[1];
  if (!name) return false;
  return new RegExp(`\\b${name}\\s*[:=][^=][^\\n]*\\n?[^\\n]*integration\\(`).test(text);
}

describe('skipped tests', () => {
  it('every skip goes through integration(), so KNARR_REQUIRE_INTEGRATION=1 turns a missing tool into a failure', () => {
    const offenders: string[] = [];
    for (const file of files) {
      const text = readFileSync(`${root}${file}`, 'utf8');
      for (const m of text.matchAll(/\b(?:it|test|describe)\.(skipIf|runIf|skip|todo)\b\s*\(/g)) {
        const condition = argumentAt(text, m.index + m[0].length - 1);
        if (m[1] !== 'skipIf' || !viaIntegration(text, condition)) offenders.push(`${file}: ${m[0]}${condition.slice(0, 80)})`);
      }
    }
    expect(offenders).toEqual([]);
  });
});
