import { COMMANDS, GLOBAL_OPTIONS, longName, shortName, takesValue, type CommandDef, type OptionDef } from './commands-table.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

const HEADER = 'completion for knarr, generated from the command table by `npm run gen`; do not edit';
const PATH_VALUE = /<(path|file|dir|dev)>/;

function words(opt: OptionDef): string[] {
  const s = shortName(opt.flags);
  return [...(s ? [`-${s}`] : []), `--${longName(opt.flags)}`];
}

function valueOptions(opts: OptionDef[]): { words: string[]; choices?: readonly string[]; files: boolean }[] {
  return opts.filter((o) => takesValue(o.flags)).map((o) => ({ words: words(o), choices: o.choices, files: PATH_VALUE.test(o.flags) }));
}

function allOptions(): OptionDef[] {
  const collect = (defs: CommandDef[]): OptionDef[] => defs.flatMap((d) => [...(d.options ?? []), ...collect(d.subcommands ?? [])]);
  return [...GLOBAL_OPTIONS, ...collect(COMMANDS)];
}

/** Unique value-taking options across the tree, merged by their words. */
function valueCases(): { words: string[]; choices?: readonly string[]; files: boolean }[] {
  const seen = new Map<string, { words: string[]; choices?: readonly string[]; files: boolean }>();
  for (const v of valueOptions(allOptions())) {
    const key = v.words.join('|');
    if (!seen.has(key)) seen.set(key, v);
  }
  return [...seen.values()];
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function globalValueWords(): string {
  return valueOptions(GLOBAL_OPTIONS).flatMap((v) => v.words).join('|');
}

function leafTopLevel(): string[] {
  return COMMANDS.filter((c) => !c.subcommands).map((c) => c.name);
}

function bash(): string {
  const lines: string[] = [`# bash ${HEADER}`, '_knarr() {', '  local cur prev cmd="" sub="" i w', '  cur="${COMP_WORDS[COMP_CWORD]}"', '  prev="${COMP_WORDS[COMP_CWORD-1]}"'];
  lines.push('  for ((i = 1; i < COMP_CWORD; i++)); do', '    w="${COMP_WORDS[i]}"', '    case "$w" in');
  lines.push(`      ${globalValueWords()}) ((i++)); continue ;;`, '      -*) continue ;;', '    esac');
  lines.push('    if [[ -z $cmd ]]; then cmd=$w');
  lines.push(`    elif [[ -z $sub && ! " ${leafTopLevel().join(' ')} " =~ " $cmd " ]]; then sub=$w`);
  lines.push('    fi', '  done', '  case "$prev" in');
  for (const v of valueCases()) {
    if (v.choices) lines.push(`    ${v.words.join('|')}) COMPREPLY=($(compgen -W ${q(v.choices.join(' '))} -- "$cur")); return ;;`);
    else if (v.files) lines.push(`    ${v.words.join('|')}) COMPREPLY=($(compgen -f -- "$cur")); return ;;`);
    else lines.push(`    ${v.words.join('|')}) return ;;`);
  }
  lines.push('  esac');
  const globals = GLOBAL_OPTIONS.flatMap(words).join(' ');
  lines.push(`  local globals=${q(globals)}`, '  case "$cmd/$sub" in');
  lines.push(`    /) COMPREPLY=($(compgen -W ${q(COMMANDS.map((c) => c.name).join(' '))}" $globals" -- "$cur")) ;;`);
  for (const c of COMMANDS) {
    if (c.subcommands) {
      lines.push(`    ${c.name}/) COMPREPLY=($(compgen -W ${q(c.subcommands.map((s) => s.name).join(' '))}" $globals" -- "$cur")) ;;`);
      for (const s of c.subcommands) {
        lines.push(`    ${c.name}/${s.name}) COMPREPLY=($(compgen -W ${q((s.options ?? []).flatMap(words).join(' '))}" $globals" -- "$cur")) ;;`);
      }
    } else {
      const choices = c.args?.[0]?.choices ?? [];
      lines.push(`    ${c.name}/) COMPREPLY=($(compgen -W ${q([...choices, ...(c.options ?? []).flatMap(words)].join(' '))}" $globals" -- "$cur")) ;;`);
    }
  }
  lines.push('  esac', '}', 'complete -F _knarr knarr', '');
  return lines.join('\n');
}

function zsh(): string {
  const desc = (name: string, text: string) => q(`${name.replace(/:/g, '\\:')}:${text}`);
  const lines: string[] = ['#compdef knarr', `# zsh ${HEADER}`, '_knarr() {', '  local cmd= sub= i w prev=${words[CURRENT-1]}'];
  lines.push('  for (( i = 2; i < CURRENT; i++ )); do', '    w=${words[i]}', '    case $w in');
  lines.push(`      ${globalValueWords()}) (( i++ )); continue ;;`, '      -*) continue ;;', '    esac');
  lines.push('    if [[ -z $cmd ]]; then cmd=$w');
  lines.push(`    elif [[ -z $sub && ! " ${leafTopLevel().join(' ')} " == *" $cmd "* ]]; then sub=$w`);
  lines.push('    fi', '  done', '  case $prev in');
  for (const v of valueCases()) {
    if (v.choices) lines.push(`    ${v.words.join('|')}) compadd -- ${v.choices.join(' ')}; return ;;`);
    else if (v.files) lines.push(`    ${v.words.join('|')}) _files; return ;;`);
    else lines.push(`    ${v.words.join('|')}) return ;;`);
  }
  lines.push('  esac');
  const optDescs = (opts: OptionDef[]) => opts.flatMap((o) => words(o).map((w) => desc(w, o.description))).join(' ');
  lines.push(`  local -a globals=(${optDescs(GLOBAL_OPTIONS)})`, '  local -a items', '  case "$cmd/$sub" in');
  lines.push(`    /) items=(${COMMANDS.map((c) => desc(c.name, c.summary)).join(' ')}) ;;`);
  for (const c of COMMANDS) {
    if (c.subcommands) {
      lines.push(`    ${c.name}/) items=(${c.subcommands.map((s) => desc(s.name, s.summary)).join(' ')}) ;;`);
      for (const s of c.subcommands) lines.push(`    ${c.name}/${s.name}) items=(${optDescs(s.options ?? [])}) ;;`);
    } else {
      const choices = (c.args?.[0]?.choices ?? []).map((ch) => desc(ch, ch));
      lines.push(`    ${c.name}/) items=(${[...choices, optDescs(c.options ?? [])].filter(Boolean).join(' ')}) ;;`);
    }
  }
  lines.push('  esac', "  _describe -t commands 'knarr' items -- globals", '}', '_knarr "$@"', '');
  return lines.join('\n');
}

function fish(): string {
  const esc = (s: string) => q(s);
  const lines: string[] = [`# fish ${HEADER}`, 'complete -c knarr -f'];
  const opt = (cond: string, o: OptionDef) => {
    const s = shortName(o.flags);
    const parts = ['complete -c knarr'];
    if (cond) parts.push(`-n ${esc(cond)}`);
    if (s) parts.push(`-s ${s}`);
    parts.push(`-l ${longName(o.flags)}`);
    if (takesValue(o.flags)) parts.push(o.choices ? `-x -a ${esc(o.choices.join(' '))}` : PATH_VALUE.test(o.flags) ? '-r -F' : '-x');
    parts.push(`-d ${esc(o.description)}`);
    lines.push(parts.join(' '));
  };
  for (const g of GLOBAL_OPTIONS) opt('', g);
  const top = COMMANDS.map((c) => c.name).join(' ');
  for (const c of COMMANDS) {
    lines.push(`complete -c knarr -n ${esc(`not __fish_seen_subcommand_from ${top}`)} -a ${c.name} -d ${esc(c.summary)}`);
    if (c.subcommands) {
      const subs = c.subcommands.map((s) => s.name).join(' ');
      for (const s of c.subcommands) {
        lines.push(`complete -c knarr -n ${esc(`__fish_seen_subcommand_from ${c.name}; and not __fish_seen_subcommand_from ${subs}`)} -a ${s.name} -d ${esc(s.summary)}`);
        for (const o of s.options ?? []) opt(`__fish_seen_subcommand_from ${c.name}; and __fish_seen_subcommand_from ${s.name}`, o);
      }
    } else {
      for (const ch of c.args?.[0]?.choices ?? []) lines.push(`complete -c knarr -n ${esc(`__fish_seen_subcommand_from ${c.name}`)} -a ${ch}`);
      for (const o of c.options ?? []) opt(`__fish_seen_subcommand_from ${c.name}`, o);
    }
  }
  lines.push('');
  return lines.join('\n');
}

export function completionScript(shell: Shell): string {
  return shell === 'bash' ? bash() : shell === 'zsh' ? zsh() : fish();
}

/** File each script is committed as, under completions/. */
export const COMPLETION_FILES: Record<Shell, string> = { bash: 'knarr.bash', zsh: '_knarr', fish: 'knarr.fish' };
