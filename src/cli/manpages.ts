import { SETTINGS, type SettingArea } from '../core/settings.js';
import { EXIT_CODE_DOCS } from '../core/errors.js';
import { GLOBAL_OPTIONS, leafCommands, visible, type ArgDef, type CommandDef, type OptionDef } from './commands-table.js';
import { AREAS, flagText } from './settings-doc.js';

/** Escapes text for roff: backslashes, dashes, a leading dot or quote that would read as a request, and non-ASCII characters. */
function esc(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/^([.'])/gm, '\\&$1')
    .replace(/[^\x20-\x7e\n]/g, (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}]`);
}

function argSynopsis(a: ArgDef): string {
  const name = a.name.toUpperCase() + (a.variadic ? '...' : '');
  return a.required ? name : `[${name}]`;
}

function synopsisText(path: string[], def: CommandDef): string {
  const opts = def.options?.length ? ' [OPTIONS]' : '';
  return `knarr ${path.join(' ')}${opts}${(def.args ?? []).map((a) => ` ${argSynopsis(a)}`).join('')}`;
}

function synopsis(path: string[], def: CommandDef): string {
  const rest = synopsisText(path, def)
    .slice(`knarr ${path.join(' ')}`.length)
    .trim();
  return `.B knarr ${esc(path.join(' '))}${rest ? `\n${esc(rest)}` : ''}`;
}

function optionItems(opts: OptionDef[]): string[] {
  return opts.flatMap((o) => [
    '.TP',
    `.B ${esc(o.flags)}`,
    esc(
      o.description +
        (o.choices ? ` (one of: ${o.choices.join(', ')})` : '') +
        (o.repeatable ? '; comma-separated or repeated' : '') +
        (o.required ? '; required' : '') +
        (o.env ? `; env ${o.env}` : ''),
    ),
  ]);
}

function argItems(args: ArgDef[]): string[] {
  return args.flatMap((a) => [
    '.TP',
    `.I ${esc(a.name.toUpperCase() + (a.variadic ? '...' : ''))}`,
    esc(a.description + (a.choices ? ` (one of: ${a.choices.join(', ')})` : '') + (a.required ? '' : ' (optional)')),
  ]);
}

function exampleItems(def: CommandDef): string[] {
  return (def.examples ?? []).flatMap((e) => ['.TP', `.B ${esc(e.command)}`, esc(e.description)]);
}

function leafSection(path: string[], def: CommandDef): string[] {
  const lines = ['.SS ' + esc(`knarr ${path.join(' ')}`), esc(def.description ?? def.summary), '.PP', synopsis(path, def)];
  if (def.aliases?.length) lines.push('.PP', esc(`Also typed as ${def.aliases.map((a) => `knarr ${[...path.slice(0, -1), a].join(' ')}`).join(', ')}.`));
  if (def.args?.length) lines.push('.PP', 'Arguments:', '.RS', ...argItems(def.args), '.RE');
  if (def.options?.length) lines.push('.PP', 'Options:', '.RS', ...optionItems(def.options), '.RE');
  if (def.examples?.length) lines.push('.PP', 'Examples:', '.RS', ...exampleItems(def), '.RE');
  return lines;
}

function header(name: string, summary: string): string[] {
  return [
    `.\\" ${name}.1 - generated from the command table by \`npm run gen\`; do not edit`,
    `.TH ${esc(name.toUpperCase())} 1 "" "knarr" "knarr manual"`,
    '.SH NAME',
    `${esc(name)} \\- ${esc(summary)}`,
  ];
}

const seeAlso = (except: string) =>
  ['knarr', ...visible().map((c) => `knarr-${c.name}`)]
    .filter((n) => n !== except)
    .map((n) => `.BR ${esc(n)} (1)`)
    .join(',\n');

/** Every setting of the table, by area: its variable, flag, config key and default. */
function settingItems(): string[] {
  const lines: string[] = [];
  for (const [area, title] of Object.entries(AREAS) as [SettingArea, string][]) {
    const rows = SETTINGS.filter((s) => s.area === area);
    if (rows.length === 0) continue;
    lines.push(`.SS ${esc(title)}`);
    for (const s of rows) {
      const where = [
        s.flag ? `Flag ${flagText(s)}` : 'No flag',
        s.inFile === false ? 'not in the config file' : `config key ${s.key}`,
        `default ${s.defaultText}`,
      ];
      const text = `${s.help}${s.choices ? ` (one of: ${s.choices.join(', ')})` : ''}. ${where.join('; ')}.`;
      lines.push('.TP', `.B ${esc(s.env)}`, esc(text));
    }
  }
  return lines;
}

function mainPage(): string {
  const lines = [
    ...header('knarr', 'storage pools, versioned data volumes, a managed etcd, docker jobs and LXC clusters for a fleet of Linux hosts'),
    '.SH SYNOPSIS',
    '.B knarr',
    '[GLOBAL OPTIONS] COMMAND [SUBCOMMAND] [OPTIONS] [ARGS]',
    '.SH DESCRIPTION',
    esc(
      'knarr runs a host, or a fleet of them: storage pools (zfs, btrfs, lvm, dir), versioned data volumes called dots (commit, branch, ' +
        'clone, push, pull), a managed etcd that holds the fleet state, docker jobs placed by a scheduler (foreground with pipes, or ' +
        'daemonized), virtual clusters of LXC containers, and the durable operations that drive them. The same commands run as one-shot ' +
        'commands and, under knarr daemon, as the agent of each host.',
    ),
    '.PP',
    esc('Results go to stdout (a table, JSON or YAML); progress, warnings and errors go to stderr. An error is one line with a hint, and an exit code below.'),
    '.SH COMMANDS',
    esc('Each command family has its own page with every subcommand, its arguments, options and examples.'),
  ];
  for (const c of visible()) {
    lines.push(`.SS ${esc(`knarr ${c.name}`)}`, `${esc(c.summary)}; see \\fBknarr\\-${esc(c.name)}\\fR(1).`);
    for (const { path, def } of leafCommands(c.subcommands ?? [c], c.subcommands ? [c.name] : [])) {
      lines.push('.TP', `.B ${esc(synopsisText(path, def))}`, esc(def.summary + (def.aliases?.length ? ` (also ${def.aliases.join(', ')})` : '')));
    }
  }
  lines.push('.SH GLOBAL OPTIONS', esc('Global options go anywhere on the line.'), ...optionItems(GLOBAL_OPTIONS));
  lines.push(
    '.SH CONFIGURATION',
    esc(
      'Every setting is resolved once per command: flag, then its KNARR_* environment variable, then the YAML config file, then the default. ' +
        "A boolean flag's --no- form switches off what the environment or file set. Boolean variables take 1, true, yes, on or 0, " +
        'false, no, off. A bad value is a usage error naming where it came from.',
    ),
    ...settingItems(),
    '.SH ENVIRONMENT',
    esc('Every setting above has its KNARR_* variable. knarr also reads:'),
    '.TP',
    '.B DOCKER_HOST',
    esc("a unix:// socket: the engine of knarr job (with no agent), of knarr daemon, and of knarr doctor's check"),
    '.TP',
    '.B NO_COLOR',
    esc('no colour in errors on a terminal'),
    '.TP',
    '.B CI, TERM=dumb',
    esc('no spinner or progress line on stderr'),
    '.SH FILES',
    '.TP',
    '.B /etc/knarr/config.yaml',
    esc('the config file, when it exists (another with --config or KNARR_CONFIG); its keys are listed under CONFIGURATION'),
    '.TP',
    '.B /var/lib/knarr',
    esc('the default state directory (--state-dir): pool records, loop files, mountpoints, locks, the managed etcd'),
    '.SH EXIT STATUS',
  );
  for (const e of EXIT_CODE_DOCS) lines.push('.TP', `.B ${e.code}`, esc(e.meaning));
  lines.push('.SH EXAMPLES');
  for (const c of visible()) {
    const first = leafCommands([c]).find((l) => l.def.examples?.length);
    if (first) lines.push(...exampleItems({ ...first.def, examples: first.def.examples!.slice(0, 1) }));
  }
  lines.push('.SH SEE ALSO', seeAlso('knarr'), '');
  return lines.join('\n');
}

function groupPage(c: CommandDef): string {
  const lines = [...header(`knarr-${c.name}`, c.summary), '.SH SYNOPSIS'];
  const leaves = c.subcommands ? leafCommands(c.subcommands, [c.name]) : [{ path: [c.name], def: c }];
  for (const { path, def } of leaves) lines.push(synopsis(path, def), '.br');
  lines.push('.SH DESCRIPTION', esc(c.description ?? c.summary), '.SH COMMANDS');
  for (const { path, def } of leaves) lines.push(...leafSection(path, def));
  lines.push('.SH GLOBAL OPTIONS', esc('Every global option of knarr(1) applies: --json, -o, --dry-run, --verbose, --etcd, --state-dir and the others.'));
  lines.push('.SH EXIT STATUS');
  for (const e of EXIT_CODE_DOCS) lines.push('.TP', `.B ${e.code}`, esc(e.meaning));
  lines.push('.SH SEE ALSO', seeAlso(`knarr-${c.name}`), '');
  return lines.join('\n');
}

/** Every man page by file name under man/: knarr.1 and one for each command family. */
export function manPages(): Record<string, string> {
  const pages: Record<string, string> = { 'knarr.1': mainPage() };
  for (const c of visible()) pages[`knarr-${c.name}.1`] = groupPage(c);
  return pages;
}
