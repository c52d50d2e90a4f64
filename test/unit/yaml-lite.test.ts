import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseSimpleYaml } from '../../src/core/yaml-lite.js';

/** The subset reader either declines or reads exactly what the YAML library reads. */
function agrees(text: string): 'read' | 'declined' {
  const fast = parseSimpleYaml(text);
  if (fast === undefined) return 'declined';
  let lib: unknown;
  try {
    lib = parse(text);
  } catch (e) {
    throw new Error(`the library refuses what the subset read as ${JSON.stringify(fast)}:\n${text}\n${(e as Error).message}`);
  }
  expect(fast, text).toStrictEqual(lib);
  return 'read';
}

const READ = [
  '',
  '# only a comment\n',
  'output: json\n',
  'a: 1\nb: -2\nc: 1.5\nd: .5\ne: 1e3\nf: +7\ng: 007\nh: 1.\n',
  'a: true\nb: False\nc: TRUE\nd: null\ne: ~\nf:\ng: Null\n',
  'a: yes\nb: no\nc: on\nd: 2G\ne: 500m\nf: 10.240.0.0/16\ng: 127.0.0.1:7946\nh: http://10.0.0.1:2379\n',
  "a: 'it''s'\nb: \"two words\"\nc: 'x' # note\nd: \"y\"   # note\n",
  'a: b # comment\nc: d#e\nf: "#not a comment"\n',
  'a: [ssd, zone=eu]\nb: []\nc: [ 1, 2.5, true, null ]\nd: [x]   # note\n',
  'pool:\n  name: knarr\n  driver: zfs\n  size: 2G\netcdServer:\n  clientPort: 2379\n  peerPort: 2380\n',
  'a:\n  b:\n    c: 1\n    d: 2\n  e: 3\nf: 4\n',
  'tags:\n  - ssd\n  - zone=eu\n  - 3\nname: h1\n',
  'daemon:\n  tags:\n    - a\n    - b\n  ttl: 10\n',
  'a: x\r\nb: y\r\n',
  '- a\n- b\n',
  'a: -5\nb: -.5\nc: /srv/knarr-share\nd: ./rel\n',
  'a: some words here\nb: trailing spaces   \n',
];

const DECLINED = [
  '---\na: 1\n',
  'a: &x 1\nb: *x\n',
  'a: !!str 1\n',
  'a: |\n  text\n',
  'a: >\n  text\n',
  'a: {b: 1}\n',
  'a: [[1], 2]\n',
  "a: ['x, y']\n",
  'a: [1, 2,]\n',
  'a: "esc\\n"\n',
  "'quoted key': 1\n",
  'a: 1\na: 2\n',
  'true: 1\n',
  '1: x\n',
  '__proto__: 1\n',
  'a: b: c\n',
  'a: b\n  c: d\n',
  'a:\n- x\n- y\n',
  'list:\n  - a: 1\n',
  'a: 0x1F\nb: 0o17\n',
  'a: .inf\n',
  'a: 12345678901234567890\n',
  'a:\tb\n',
  '  a: 1\n',
  'a:\n  b: 1\n c: 2\n',
  'a: plain\n  continued\n',
  'a: ? b\n',
  'a: -x\n',
  // Comments must follow a space; only spaces and tabs are YAML's whitespace.
  "a: 'x'#y\n",
  'a: "x"#y\n',
  'a: [x]#y\n',
  'a: []#\n',
  "- 'a'#c\n",
  'a: b\u00a0\n',
  'a: \u00a0b\n',
  'a: \ufeffb\n',
  'a: b\u3000\n',
  'a: [a\u00a0]\n',
  'x:\n\u00a0\u00a0b: 1\n',
  'a: b\r\r\nc: d\n',
  'a: café\n',
  `${'k'.repeat(1100)}: 1\n`,
];

describe('the YAML subset of config files', () => {
  it.each(READ)('reads what the library reads: %j', (text) => {
    expect(agrees(text)).toBe('read');
  });

  it.each(DECLINED)('leaves the rest to the library: %j', (text) => {
    expect(agrees(text)).toBe('declined');
  });

  it('reads the example config files of the docs itself', () => {
    const docs = new URL('../../docs/', import.meta.url);
    const readme = readdirSync(docs)
      .filter((f) => f.endsWith('.md'))
      .map((f) => readFileSync(new URL(f, docs), 'utf8'))
      .join('\n');
    const configs = [...readme.matchAll(/```yaml\n(# \/etc\/knarr\/config\.yaml\n[\s\S]*?)```/g)].map((m) => m[1]!);
    expect(configs.length).toBeGreaterThan(1);
    for (const text of configs) expect(agrees(text)).toBe('read');
  });

  it('agrees with the library on generated documents', () => {
    // A small deterministic generator: nested maps, lists, flow lists and scalars of every kind.
    let seed = 7;
    const rand = (n: number) => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const scalars = [
      "'x'#y",
      'b\u00a0',
      '[a]#c',
      '1',
      '-3',
      '2.50',
      'true',
      'null',
      '~',
      'x',
      'a b',
      '2G',
      "'q''s'",
      '"dq"',
      '10.0.0.1:80',
      'a#b',
      'v # c',
      '',
      '1e2',
      'no',
      '.5',
      '[]',
      '[a, 1, true]',
      'a: b',
      '0x10',
      '*r',
      '- x',
    ];
    const keys = ['a', 'b', 'c_d', 'e.f', 'g-h', 'k1'];
    const gen = (depth: number, indent: string): string => {
      const used = new Set<string>();
      let out = '';
      for (let i = 0, n = 1 + rand(4); i < n; i++) {
        const key = keys[rand(keys.length)]!;
        if (used.has(key) && rand(2)) continue;
        used.add(key);
        const kind = depth < 3 ? rand(4) : 0;
        if (kind === 1) out += `${indent}${key}:\n${gen(depth + 1, `${indent}  `)}`;
        else if (kind === 2)
          out += `${indent}${key}:\n${Array.from({ length: 1 + rand(3) }, () => `${indent}  - ${scalars[rand(scalars.length)]}\n`).join('')}`;
        else out += `${indent}${key}: ${scalars[rand(scalars.length)]}${rand(4) ? '' : '  # c'}\n`;
      }
      return out;
    };
    const tally = { read: 0, declined: 0 };
    for (let i = 0; i < 2000; i++) tally[agrees(gen(0, ''))]++;
    // Both paths are exercised, so the comparison means something.
    expect(tally.read).toBeGreaterThan(200);
    expect(tally.declined).toBeGreaterThan(200);
  });
});
