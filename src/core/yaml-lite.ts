/**
 * The plain subset of YAML that config files are written in (nested maps of scalars, lists of scalars, one-line
 * flow lists), read without loading the YAML library: that costs ~20 ms at every start of a command.
 * Anything outside the subset returns undefined, and the caller hands the text to the YAML library instead.
 */

type Scalar = string | number | boolean | null;
type Value = Scalar | Value[] | { [key: string]: Value };

const DECLINE = Symbol('decline');

// YAML 1.2 core schema, as the YAML library resolves plain scalars.
const NULL = /^(?:~|null|Null|NULL)?$/;
const BOOL = /^(?:true|True|TRUE|false|False|FALSE)$/;
const INT = /^[-+]?[0-9]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/;
// Other numeric forms (octal, hex, .inf, .nan) are left to the library.
const OTHER_NUMERIC = /^(?:0o|0x|[-+]?\.(?:inf|Inf|INF)$|\.(?:nan|NaN|NAN)$)/;
const KEY = /^([A-Za-z_][A-Za-z0-9_.-]*):(?:[ ]+|$)/;
// A plain scalar may not start with an indicator character.
const INDICATOR_START = /^[[\]{}&*!|>'"%@`,?:#-]/;

function plain(text: string): Scalar | typeof DECLINE {
  if (text === '') return null;
  if (INDICATOR_START.test(text) && !/^-[0-9.]/.test(text)) return DECLINE;
  if (/: |:$|\t/.test(text)) return DECLINE;
  if (NULL.test(text)) return null;
  if (BOOL.test(text)) return text.toLowerCase() === 'true';
  if (OTHER_NUMERIC.test(text)) return DECLINE;
  if (INT.test(text) || FLOAT.test(text)) {
    const n = Number(text);
    return Number.isSafeInteger(n) || !INT.test(text) ? n : DECLINE;
  }
  return text;
}

/** Splits a value off its trailing comment, resolving quotes; DECLINE when it is not a one-line scalar. */
function scalar(raw: string): Scalar | typeof DECLINE {
  const text = raw.trim();
  if (text.startsWith("'")) {
    const m = /^'((?:[^']|'')*)'(?:[ ]+#.*)?[ ]*$/.exec(text);
    return m ? m[1]!.replace(/''/g, "'") : DECLINE;
  }
  if (text.startsWith('"')) {
    const m = /^"([^"\\]*)"(?:[ ]+#.*)?[ ]*$/.exec(text);
    return m ? m[1]! : DECLINE;
  }
  const hash = text.search(/[ ]#/);
  return plain((hash === -1 ? text : text.slice(0, hash)).trim());
}

function flowList(raw: string): Scalar[] | typeof DECLINE {
  const m = /^\[([^[\]{}]*)\](?:[ ]+#.*)?[ ]*$/.exec(raw.trim());
  if (!m) return DECLINE;
  const body = m[1]!.trim();
  if (body === '') return [];
  const items: Scalar[] = [];
  for (const part of body.split(',')) {
    const item = part.trim();
    // A trailing comma, an empty item or a quoted comma is left to the library.
    if (item === '' || /['"#]/.test(item)) return DECLINE;
    const v = plain(item);
    if (v === DECLINE) return DECLINE;
    items.push(v);
  }
  return items;
}

function value(raw: string): Value | typeof DECLINE {
  return raw.trim().startsWith('[') ? flowList(raw) : scalar(raw);
}

interface Line {
  indent: number;
  text: string;
}

/** Parses text in the subset, or returns undefined when it holds anything else. */
export function parseSimpleYaml(source: string): unknown {
  const text = source.replace(/\r\n/g, '\n');
  // Printable ASCII only: YAML trims spaces and tabs alone, JavaScript's trim() every Unicode space.
  if (/[^\x20-\x7e\n]/.test(text)) return undefined;
  const lines: Line[] = [];
  for (const raw of text.split('\n')) {
    if (/^[ ]*(?:#.*)?$/.test(raw)) continue;
    const indent = raw.length - raw.trimStart().length;
    // Tabs, document markers and directives are the library's.
    if (raw.includes('\t') || /^(?:---|\.\.\.|%)/.test(raw)) return undefined;
    lines.push({ indent, text: raw.slice(indent).trimEnd() });
  }
  let at = 0;

  const block = (indent: number): Value | typeof DECLINE => {
    const first = lines[at]!;
    if (first.text.startsWith('- ') || first.text === '-') {
      const list: Value[] = [];
      while (at < lines.length && lines[at]!.indent === indent) {
        const { text } = lines[at]!;
        if (!(text.startsWith('- ') || text === '-')) return DECLINE;
        const item = value(text.slice(1));
        if (item === DECLINE) return DECLINE;
        list.push(item);
        at++;
      }
      return list;
    }
    const map: { [key: string]: Value } = {};
    while (at < lines.length && lines[at]!.indent === indent) {
      const { text } = lines[at]!;
      const m = KEY.exec(text);
      if (!m) return DECLINE;
      const key = m[1]!;
      // A key the library reads as null, a boolean or a number, or a repeated one, is the library's to judge.
      if (plain(key) !== key || key === '__proto__' || key.length > 1000 || Object.hasOwn(map, key)) return DECLINE;
      const rest = text.slice(m[0].length);
      at++;
      if (rest.trim() === '' || rest.trimStart().startsWith('#')) {
        const next = lines[at];
        if (next && next.indent > indent) {
          const child = block(next.indent);
          if (child === DECLINE) return DECLINE;
          map[key] = child;
        } else {
          map[key] = null;
        }
        continue;
      }
      const v = value(rest);
      if (v === DECLINE) return DECLINE;
      map[key] = v;
    }
    return map;
  };

  if (lines.length === 0) return null;
  if (lines[0]!.indent !== 0) return undefined;
  const doc = block(0);
  // Lines left over sit at an indentation the structure does not explain.
  return doc === DECLINE || at !== lines.length ? undefined : doc;
}

/** The deepest nesting of [ ] and { } in JSON or flow-style YAML text, outside quoted strings and comments. */
export function flowNestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote !== null) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      const end = text.indexOf('\n', i);
      i = end === -1 ? text.length : end;
    } else if (c === '[' || c === '{') deepest = Math.max(deepest, ++depth);
    else if ((c === ']' || c === '}') && depth > 0) depth--;
  }
  return deepest;
}
