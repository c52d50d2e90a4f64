import { COMMANDS, GLOBAL_OPTIONS, longName, shortName, takesValue, type CommandDef, type OptionDef } from './commands-table.js';
import type { Shell } from './completion-files.js';

const HEADER = 'completion for knarr, generated from the command table by `npm run gen`; do not edit';
const PATH_VALUE = /<(path|file|dir|dev)>/;

interface Node {
  path: string[];
  def: CommandDef;
}

/** Every node of the tree with its path (groups and leaves). */
function nodes(defs: CommandDef[] = COMMANDS, prefix: string[] = []): Node[] {
  return defs.flatMap((d) => [{ path: [...prefix, d.name], def: d }, ...nodes(d.subcommands ?? [], [...prefix, d.name])]);
}

const groups = () => nodes().filter((n) => n.def.subcommands);
const leaves = () => nodes().filter((n) => !n.def.subcommands);

function words(opt: OptionDef): string[] {
  const s = shortName(opt.flags);
  return [...(s ? [`-${s}`] : []), `--${longName(opt.flags)}`];
}

interface ValueCase {
  words: string[];
  choices?: readonly string[];
  files: boolean;
}

function allOptions(): OptionDef[] {
  return [...GLOBAL_OPTIONS, ...nodes().flatMap((n) => n.def.options ?? [])];
}

/** Unique value-taking options across the tree, merged by their words. */
function valueCases(): ValueCase[] {
  const seen = new Map<string, ValueCase>();
  for (const o of allOptions().filter((x) => takesValue(x.flags))) {
    const w = words(o);
    if (!seen.has(w.join('|'))) seen.set(w.join('|'), { words: w, choices: o.choices, files: PATH_VALUE.test(o.flags) });
  }
  return [...seen.values()];
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const globalValueWords = () =>
  GLOBAL_OPTIONS.filter((o) => takesValue(o.flags))
    .flatMap(words)
    .join('|');
/** The words completed after a command path: subcommand names for a group, first-argument choices and options for a leaf. */
function offered(n: Node | null): { names: { word: string; text: string }[]; options: OptionDef[] } {
  const def = n?.def;
  if (!def) return { names: COMMANDS.map((c) => ({ word: c.name, text: c.summary })), options: [] };
  if (def.subcommands) return { names: def.subcommands.map((s) => ({ word: s.name, text: s.summary })), options: [] };
  return { names: (def.args?.[0]?.choices ?? []).map((c) => ({ word: c, text: c })), options: def.options ?? [] };
}

const groupPaths = () => ['', ...groups().map((g) => g.path.join('/'))];

function bash(): string {
  const l: string[] = [
    `# bash ${HEADER}`,
    '_knarr() {',
    '  local cur prev path="" i w',
    '  cur="${COMP_WORDS[COMP_CWORD]}"',
    '  prev="${COMP_WORDS[COMP_CWORD-1]}"',
  ];
  l.push(
    `  local groups=${q(
      ` ${groupPaths()
        .map((p) => `[${p}]`)
        .join(' ')} `,
    )}`,
  );
  l.push('  for ((i = 1; i < COMP_CWORD; i++)); do', '    w="${COMP_WORDS[i]}"', '    case "$w" in');
  l.push(`      ${globalValueWords()}) ((i++)); continue ;;`, '      -*) continue ;;', '    esac');
  l.push(
    '    # Words after a leaf command are its arguments, not more of the path.',
    '    [[ $groups == *" [$path] "* ]] || break',
    '    path="${path:+$path/}$w"',
    '  done',
  );
  l.push('  case "$prev" in');
  for (const v of valueCases()) {
    if (v.choices) l.push(`    ${v.words.join('|')}) COMPREPLY=($(compgen -W ${q(v.choices.join(' '))} -- "$cur")); return ;;`);
    else if (v.files) l.push(`    ${v.words.join('|')}) COMPREPLY=($(compgen -f -- "$cur")); return ;;`);
    else l.push(`    ${v.words.join('|')}) return ;;`);
  }
  l.push('  esac', `  local globals=${q(GLOBAL_OPTIONS.flatMap(words).join(' '))}`, '  case "$path" in');
  for (const n of [null, ...nodes()]) {
    const o = offered(n);
    const list = [...o.names.map((x) => x.word), ...o.options.flatMap(words)].join(' ');
    l.push(`    ${q(n ? n.path.join('/') : '')}) COMPREPLY=($(compgen -W ${q(list)}" $globals" -- "$cur")) ;;`);
  }
  l.push('  esac', '}', 'complete -F _knarr knarr', '');
  return l.join('\n');
}

function zsh(): string {
  const desc = (name: string, text: string) => q(`${name.replace(/:/g, '\\:')}:${text}`);
  const l: string[] = ['#compdef knarr', `# zsh ${HEADER}`, '_knarr() {', '  local path= i w prev=${words[CURRENT-1]}'];
  l.push(
    `  local groups=${q(
      ` ${groupPaths()
        .map((p) => `[${p}]`)
        .join(' ')} `,
    )}`,
  );
  l.push('  for (( i = 2; i < CURRENT; i++ )); do', '    w=${words[i]}', '    case $w in');
  l.push(`      ${globalValueWords()}) (( i++ )); continue ;;`, '      -*) continue ;;', '    esac');
  l.push('    [[ $groups == *" [$path] "* ]] || break', '    path=${path:+$path/}$w', '  done', '  case $prev in');
  for (const v of valueCases()) {
    if (v.choices) l.push(`    ${v.words.join('|')}) compadd -- ${v.choices.join(' ')}; return ;;`);
    else if (v.files) l.push(`    ${v.words.join('|')}) _files; return ;;`);
    else l.push(`    ${v.words.join('|')}) return ;;`);
  }
  l.push('  esac');
  const optDescs = (opts: OptionDef[]) => opts.flatMap((o) => words(o).map((w) => desc(w, o.description)));
  l.push(`  local -a globals=(${optDescs(GLOBAL_OPTIONS).join(' ')})`, '  local -a items', '  case "$path" in');
  for (const n of [null, ...nodes()]) {
    const o = offered(n);
    l.push(`    ${q(n ? n.path.join('/') : '')}) items=(${[...o.names.map((x) => desc(x.word, x.text)), ...optDescs(o.options)].join(' ')}) ;;`);
  }
  l.push('  esac', "  _describe -t commands 'knarr' items -- globals", '}', '_knarr "$@"', '');
  return l.join('\n');
}

function fish(): string {
  const l: string[] = [`# fish ${HEADER}`, 'complete -c knarr -f'];
  const opt = (cond: string, o: OptionDef) => {
    const s = shortName(o.flags);
    const parts = ['complete -c knarr'];
    if (cond) parts.push(`-n ${q(cond)}`);
    if (s) parts.push(`-s ${s}`);
    parts.push(`-l ${longName(o.flags)}`);
    if (takesValue(o.flags)) parts.push(o.choices ? `-x -a ${q(o.choices.join(' '))}` : PATH_VALUE.test(o.flags) ? '-r -F' : '-x');
    parts.push(`-d ${q(o.description)}`);
    l.push(parts.join(' '));
  };
  for (const g of GLOBAL_OPTIONS) opt('', g);
  // fish matches a node by the words seen so far, and by none of its children yet.
  const seen = (path: string[]) => path.map((p) => `__fish_seen_subcommand_from ${p}`);
  for (const n of [null, ...groups()]) {
    const path = n ? n.path : [];
    const o = offered(n);
    const kids = o.names.map((x) => x.word).join(' ');
    const cond = [...(path.length ? seen(path) : []), `not __fish_seen_subcommand_from ${kids}`].join('; and ');
    for (const x of o.names) l.push(`complete -c knarr -n ${q(cond)} -a ${x.word} -d ${q(x.text)}`);
  }
  for (const n of leaves()) {
    const cond = seen(n.path).join('; and ');
    for (const ch of n.def.args?.[0]?.choices ?? []) l.push(`complete -c knarr -n ${q(cond)} -a ${ch}`);
    for (const o of n.def.options ?? []) opt(cond, o);
  }
  l.push('');
  return l.join('\n');
}

export function completionScript(shell: Shell): string {
  return shell === 'bash' ? bash() : shell === 'zsh' ? zsh() : fish();
}
