import { SETTINGS } from '../core/settings.js';
import { EXIT_CODE_DOCS } from '../core/errors.js';
import { COMMANDS, GLOBAL_OPTIONS, leafCommands, type ArgDef, type CommandDef, type OptionDef } from './commands-table.js';
import { flagText } from './settings-doc.js';

/** Escapes text for roff: backslashes, and a leading dot or quote that would read as a request. */
function esc(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/^([.'])/gm, '\\&$1');
}

function argSynopsis(a: ArgDef): string {
  const name = a.name.toUpperCase() + (a.variadic ? '...' : '');
  return a.required ? name : `[${name}]`;
}

function synopsis(path: string[], def: CommandDef): string {
  const opts = def.options?.length ? ' [OPTIONS]' : '';
  const args = (def.args ?? []).map((a) => ` ${argSynopsis(a)}`).join('');
  return `.B knarr ${esc(path.join(' '))}\n${esc(`${opts}${args}`.trim())}`;
}

function optionItems(opts: OptionDef[]): string[] {
  return opts.flatMap((o) => [
    '.TP',
    `.B ${esc(o.flags)}`,
    esc(
      o.description +
        (o.choices ? ` (one of: ${o.choices.join(', ')})` : '') +
        (o.repeatable ? '; comma-separated or repeated' : '') +
        (o.env ? `; env ${o.env}` : ''),
    ),
  ]);
}

function exampleItems(def: CommandDef): string[] {
  return (def.examples ?? []).flatMap((e) => ['.TP', `.B ${esc(e.command)}`, esc(e.description)]);
}

function leafSection(path: string[], def: CommandDef): string[] {
  const lines = ['.SS ' + esc(`knarr ${path.join(' ')}`), esc(def.description ?? def.summary), '.PP', synopsis(path, def)];
  for (const a of def.args ?? []) lines.push('.TP', `.I ${esc(a.name.toUpperCase())}`, esc(a.description));
  if (def.options?.length) lines.push('.PP', 'Options:', '.RS', ...optionItems(def.options), '.RE');
  if (def.examples?.length) lines.push('.PP', 'Examples:', '.RS', ...exampleItems(def), '.RE');
  return lines;
}

function header(name: string, summary: string): string[] {
  return [
    `.\\" ${name}.1 — generated from the command table by \`npm run gen\`; do not edit`,
    `.TH ${name.toUpperCase()} 1 "" "knarr" "knarr manual"`,
    '.SH NAME',
    `${esc(name)} \\- ${esc(summary)}`,
  ];
}

const COMMON_SEE_ALSO = (except: string) =>
  ['knarr', ...COMMANDS.map((c) => `knarr-${c.name}`)]
    .filter((n) => n !== except)
    .map((n) => `.BR ${n} (1)`)
    .join(',\n');

function mainPage(): string {
  const lines = [
    ...header('knarr', 'storage pools, versioned data volumes, a managed etcd, docker jobs and LXC clusters for a fleet of Linux hosts'),
    '.SH SYNOPSIS',
    '.B knarr',
    '[GLOBAL OPTIONS] COMMAND [SUBCOMMAND] [OPTIONS] [ARGS]',
    '.SH DESCRIPTION',
    esc(
      'knarr brings up storage pools and a managed etcd on a host, and (in later releases) versioned data volumes, docker jobs and LXC clusters ' +
        'across a fleet. Results go to stdout (table, JSON or YAML); progress and errors go to stderr.',
    ),
    '.SH COMMANDS',
  ];
  for (const c of COMMANDS) {
    lines.push(
      '.TP',
      `.B knarr ${esc(c.name)}${c.subcommands ? ' ' + esc(c.subcommands.map((s) => s.name).join('|')) : ''}`,
      esc(c.summary) + ` See \\fBknarr\\-${esc(c.name)}\\fR(1).`,
    );
  }
  lines.push('.SH GLOBAL OPTIONS', ...optionItems(GLOBAL_OPTIONS));
  lines.push(
    '.SH ENVIRONMENT',
    esc(
      "Every setting has a KNARR_* variable. Precedence: flag, then environment, then config file, then default; a boolean flag's --no- form " +
        'switches off what the environment set. Booleans take 1, true, yes, on or 0, false, no, off.',
    ),
  );
  for (const s of SETTINGS) {
    const where = [s.flag ? `flag ${flagText(s)}` : '', s.inFile === false ? '' : `config key ${s.key}`, `default ${s.defaultText}`].filter((w) => w !== '');
    lines.push('.TP', `.B ${esc(s.env)}`, esc(`${s.help} (${where.join('; ')})`));
  }
  lines.push(
    '.SH FILES',
    '.TP',
    '.B /etc/knarr/config.yaml',
    esc(
      `default config file (keys: ${SETTINGS.filter((s) => s.inFile !== false)
        .map((s) => s.key)
        .join(', ')}; see docs/configuration.md)`,
    ),
    '.TP',
    '.B /var/lib/knarr',
    esc('default state directory: pool records, loop files, mountpoints, the managed etcd'),
    '.SH EXIT STATUS',
  );
  for (const e of EXIT_CODE_DOCS) lines.push('.TP', `.B ${e.code}`, esc(e.meaning));
  lines.push('.SH SEE ALSO', COMMON_SEE_ALSO('knarr'), '');
  return lines.join('\n');
}

function groupPage(c: CommandDef): string {
  const lines = [...header(`knarr-${c.name}`, c.summary), '.SH DESCRIPTION', esc(c.description ?? c.summary), '.SH COMMANDS'];
  if (c.subcommands) for (const { path, def } of leafCommands(c.subcommands, [c.name])) lines.push(...leafSection(path, def));
  else lines.push(...leafSection([c.name], c));
  lines.push('.SH GLOBAL OPTIONS', esc('All global options of knarr(1) apply, e.g. --json, --dry-run, --verbose.'));
  lines.push('.SH SEE ALSO', COMMON_SEE_ALSO(`knarr-${c.name}`), '');
  return lines.join('\n');
}

/** Every man page by file name under man/. */
export function manPages(): Record<string, string> {
  const pages: Record<string, string> = { 'knarr.1': mainPage() };
  for (const c of COMMANDS) pages[`knarr-${c.name}.1`] = groupPage(c);
  return pages;
}
