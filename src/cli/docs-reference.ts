import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { leafCommands, type CommandDef } from './commands-table.js';

export const BEGIN = '<!-- generated from the command table by `npm run gen`: edit src/commands/<noun>/index.ts, not this block -->';
export const END = '<!-- end of generated block -->';
/** A heading that documents one command: `## knarr pool init` (anything after the command path is ignored). */
const HEADING = /^#{2,4} knarr ([a-z][a-z -]*?)\s*(?:[[(<`].*)?$/;

const DRY_RUN = {
  reads: 'it only reads, and runs as usual',
  plans: 'prints each command that would change the host, one a line, and changes nothing',
  refuses: 'refused (exit 2)',
} as const;

/** Prose from the table as markdown: `<name>` would be read as an HTML tag. */
function prose(text: string): string {
  return text.replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function cell(text: string): string {
  return prose(text).replace(/\|/g, '\\|');
}

function usage(path: string[], def: CommandDef): string {
  const args = (def.args ?? []).map((a) => {
    const n = `${a.name.toUpperCase()}${a.variadic ? '...' : ''}`;
    return a.required ? n : `[${n}]`;
  });
  return ['knarr', ...path, ...(def.options?.length ? ['[options]'] : []), ...args].join(' ');
}

/** The generated reference of one command: summary, usage, arguments, options and examples. */
export function commandBlock(path: string[], def: CommandDef): string {
  const out = [BEGIN, '', prose(def.description ?? `${def.summary[0]!.toUpperCase()}${def.summary.slice(1)}.`), '', '```', usage(path, def), '```'];
  if (def.aliases?.length) out.push('', `Also: ${def.aliases.map((a) => `\`${['knarr', ...path.slice(0, -1), a].join(' ')}\``).join(', ')}.`);
  if (def.args?.length) {
    out.push('', '| argument | meaning |', '|---|---|');
    for (const a of def.args) out.push(`| \`${a.name.toUpperCase()}\` | ${cell(a.description)}${a.choices ? ` (one of: ${a.choices.join(', ')})` : ''} |`);
  }
  if (def.options?.length) {
    out.push('', '| option | meaning |', '|---|---|');
    for (const o of def.options) {
      const extra = [o.choices && `one of: ${o.choices.join(', ')}`, o.repeatable && 'repeatable', o.required && 'required', o.env && `env \`${o.env}\``];
      const more = extra.filter(Boolean).join('; ');
      out.push(`| \`${o.flags.replace(/\|/g, '\\|')}\` | ${cell(o.description)}${more ? ` (${more})` : ''} |`);
    }
  }
  if (def.examples?.length) {
    out.push('', '```sh');
    const width = Math.max(...def.examples.map((e) => e.command.length));
    for (const e of def.examples) out.push(`${e.command.padEnd(width)}  # ${e.description}`);
    out.push('```');
  }
  if (def.dryRun) out.push('', `Under \`--dry-run\`: ${DRY_RUN[def.dryRun]}.`);
  out.push(END);
  return out.join('\n');
}

/** The leaf command a heading names, if any. */
export function headingCommand(line: string): string | null {
  return HEADING.exec(line)?.[1]?.trim() ?? null;
}

/** Rewrites the generated block under every command heading of a page (inserting it where missing). */
export function renderDocsPage(text: string, leaves = leafCommands()): string {
  const byPath = new Map(leaves.map((l) => [l.path.join(' '), l]));
  const lines = text.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    out.push(line);
    const name = headingCommand(line);
    const leaf = name === null ? undefined : byPath.get(name);
    if (!leaf) continue;
    let j = i + 1;
    while (j < lines.length && lines[j]!.trim() === '') j++;
    if (lines[j] === BEGIN) {
      const end = lines.indexOf(END, j);
      if (end < 0) throw new Error(`${name}: generated block has no end marker`);
      i = end;
    }
    out.push('', commandBlock(leaf.path, leaf.def));
    if (lines[i + 1] !== undefined && lines[i + 1]!.trim() !== '') out.push('');
  }
  return out.join('\n');
}

/** `docs/*.md` with their generated blocks brought up to date, keyed by path from the repository root. */
export function docsReference(root: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const f of readdirSync(join(root, 'docs')).sort()) {
    if (!f.endsWith('.md')) continue;
    const text = readFileSync(join(root, 'docs', f), 'utf8');
    const next = renderDocsPage(text);
    if (next !== text || text.includes(BEGIN)) files[`docs/${f}`] = next;
  }
  return files;
}
