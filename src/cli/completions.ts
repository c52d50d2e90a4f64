import { completes, GLOBAL_OPTIONS, longName, shortName, takesValue, visible, type ArgDef, type CommandDef, type OptionDef } from './commands-table.js';
import type { Shell } from './completion-files.js';

const HEADER = 'completion for knarr, generated from the command table by `npm run gen`; do not edit';

interface Node {
  path: string[];
  /** Each word of the path with its aliases (`list`, `ls`). */
  names: string[][];
  def: CommandDef;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const namesOf = (d: CommandDef) => [d.name, ...(d.aliases ?? [])];

/** Every visible node of the tree with its path (groups and leaves). */
function nodes(defs: CommandDef[] = visible(), prefix: string[] = [], prefixNames: string[][] = []): Node[] {
  return defs.flatMap((d) => {
    const path = [...prefix, d.name];
    const names = [...prefixNames, namesOf(d)];
    return [{ path, names, def: d }, ...nodes(d.subcommands ?? [], path, names)];
  });
}

/** The shell `case` pattern of a node: its path as typed with any of its words' aliases. */
function casePattern(n: Node | null): string {
  if (!n) return "''";
  const spell = (levels: string[][]): string[] =>
    levels.length === 0 ? [''] : spell(levels.slice(0, -1)).flatMap((head) => levels[levels.length - 1]!.map((w) => (head ? `${head}/${w}` : w)));
  return spell(n.names)
    .map((p) => q(p))
    .join(' | ');
}

const groups = () => nodes().filter((n) => n.def.subcommands);
const leaves = () => nodes().filter((n) => !n.def.subcommands);

function words(opt: OptionDef): string[] {
  const s = shortName(opt.flags);
  return [...(s ? [`-${s}`] : []), `--${longName(opt.flags)}`];
}

/**
 * What the scripts offer for a value, as one word: `c:a,b` (choices), `path`, `none`, or a kind of name that
 * `knarr __complete KIND` lists; a variadic argument's ends in `...`.
 */
function action(def: ArgDef | OptionDef): string {
  return def.choices ? `c:${def.choices.join(',')}` : completes(def);
}

const argActions = (def: CommandDef) => (def.args ?? []).map((a) => action(a) + (a.variadic ? '...' : '')).join(' ');
/** ` -f=path --name=none ` for the value-taking options: the scripts skip their values and complete them. */
const valueMap = (opts: OptionDef[]) =>
  ` ${opts
    .filter((o) => takesValue(o.flags))
    .flatMap((o) => words(o).map((w) => `${w}=${action(o)}`))
    .join(' ')} `;
/** Global options whose values the lookups need too (which etcd, state directory, fleet). */
const FORWARDED = GLOBAL_OPTIONS.filter((o) => takesValue(o.flags) && longName(o.flags) !== 'output').flatMap(words);

/** Subcommands of a group (the root for null), with their summaries. */
function kids(n: Node | null): { word: string; text: string }[] {
  const defs = n ? (n.def.subcommands ?? []) : visible();
  return defs.flatMap((d) => namesOf(d).map((word) => ({ word, text: d.summary })));
}

/** The bash and zsh node function's case arm of each leaf: its args, its opts (as the shell's optsValue writes them) and vals. */
function leafArms(optsValue: (opts: OptionDef[]) => string): string[] {
  return leaves().flatMap((n) => {
    const opts = n.def.options ?? [];
    const set = [
      ...(n.def.args?.length ? [`args=${q(argActions(n.def))}`] : []),
      ...(opts.length ? [`opts=${optsValue(opts)}`] : []),
      ...(opts.some((o) => takesValue(o.flags)) ? [`vals=${q(valueMap(opts))}`] : []),
    ];
    return set.length ? [`    ${casePattern(n)}) ${set.join('; ')} ;;`] : [];
  });
}

function bash(): string {
  const l: string[] = [
    `# bash ${HEADER}`,
    '# Names (dots, pools, jobs...) come from `knarr __complete KIND`, which prints nothing when it cannot answer quickly.',
    '_knarr_names() {',
    '  local out',
    '  out="$(command knarr "${fwd[@]}" --no-json -o table __complete "$@" 2>/dev/null)" || return 0',
    '  COMPREPLY=($(compgen -W "$out" -- "$cur"))',
    '  # bash replaces only what follows the last ":" of the word (an image tag): offer just that part.',
    '  [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]] && COMPREPLY=("${COMPREPLY[@]#"${cur%"${cur##*:}"}"}")',
    '  return 0',
    '}',
    '_knarr_value() {',
    '  case "$1" in',
    "    none | '') ;;",
    '    path) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;',
    '    c:*) local IFS=$\', \\t\\n\'; COMPREPLY=($(compgen -W "${1#c:}" -- "$cur")) ;;',
    '    branch | node | member) [[ -n ${pos[0]} ]] && _knarr_names "$1" "${pos[0]}" ;;',
    '    *) _knarr_names "$1" ;;',
    '  esac',
    '}',
    "# Sets kids (a group's subcommands), or args, opts and vals (a leaf's arguments, options and value-taking options).",
    '_knarr_node() {',
    '  kids="" args="" opts="" vals=" "',
    '  case "$1" in',
  ];
  for (const n of [null, ...groups()])
    l.push(
      `    ${casePattern(n)}) kids=${q(
        kids(n)
          .map((k) => k.word)
          .join(' '),
      )} ;;`,
    );
  l.push(...leafArms((opts) => q(opts.flatMap(words).join(' '))));
  l.push(
    '  esac',
    '}',
    '_knarr() {',
    '  local cur prev cmd="" i w leaf="" act kids args opts vals',
    '  local -a pos=() fwd=() a line',
    '  # Words as typed, split at blanks only (COMP_WORDS also splits 8080:80 and image:tag at the colon).',
    '  if [[ -n ${COMP_LINE-} ]]; then',
    '    read -ra line <<< "${COMP_LINE:0:COMP_POINT}"',
    '    [[ $COMP_POINT -eq 0 || ${COMP_LINE:COMP_POINT-1:1} == [[:space:]] ]] && line+=("")',
    '  else',
    '    line=("${COMP_WORDS[@]:0:COMP_CWORD+1}")',
    '  fi',
    '  local n=${#line[@]}',
    '  cur="${line[n-1]}"',
    '  prev="${line[n-2]}"',
    `  local gvals=${q(valueMap(GLOBAL_OPTIONS))}`,
    `  local globals=${q(GLOBAL_OPTIONS.flatMap(words).join(' '))}`,
    '  _knarr_node ""',
    '  for ((i = 1; i < n - 1; i++)); do',
    '    w="${line[i]}"',
    '    case "$w" in',
    `      ${FORWARDED.join(' | ')}) fwd+=("$w" "\${line[i+1]}"); ((i++)); continue ;;`,
    '      -*) [[ "$gvals$vals" == *" $w="* ]] && ((i++)); continue ;;',
    '    esac',
    '    # Words after a leaf command are its arguments, not more of the path.',
    '    if [[ -n $leaf ]]; then pos+=("$w"); continue; fi',
    '    cmd="${cmd:+$cmd/}$w"',
    '    _knarr_node "$cmd"',
    '    [[ -z $kids ]] && leaf=1',
    '  done',
    '  if [[ "$gvals$vals" == *" $prev="* ]]; then',
    '    act="${gvals}${vals}"; act="${act#*" $prev="}"; _knarr_value "${act%% *}"; return',
    '  fi',
    '  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$opts $globals" -- "$cur")); return; fi',
    '  if [[ -z $leaf ]]; then COMPREPLY=($(compgen -W "$kids" -- "$cur")); return; fi',
    '  a=($args)',
    '  ((${#a[@]})) || return',
    '  act="${a[${#pos[@]}]}"',
    '  [[ -z $act && ${a[${#a[@]}-1]} == *... ]] && act="${a[${#a[@]}-1]}"',
    '  _knarr_value "${act%...}"',
    '}',
    'complete -F _knarr knarr',
    '',
  );
  return l.join('\n');
}

function zsh(): string {
  const desc = (name: string, text: string) => q(`${name.replace(/:/g, '\\:')}:${text}`);
  const optDescs = (opts: OptionDef[]) => opts.flatMap((o) => words(o).map((w) => desc(w, o.description)));
  const l: string[] = [
    '#compdef knarr',
    `# zsh ${HEADER}`,
    '# Names (dots, pools, jobs...) come from `knarr __complete KIND`, which prints nothing when it cannot answer quickly.',
    '_knarr_names() {',
    '  local -a names',
    '  names=(${(f)"$(command knarr "${fwd[@]}" --no-json -o table __complete "$@" 2>/dev/null)"})',
    '  (( ${#names} )) && compadd -a names',
    '}',
    '_knarr_value() {',
    '  case $1 in',
    "    none | '') ;;",
    '    path) _files ;;',
    '    c:*) compadd -- ${(s:,:)${1#c:}} ;;',
    '    branch | node | member) [[ -n ${pos[1]} ]] && _knarr_names $1 ${pos[1]} ;;',
    '    *) _knarr_names $1 ;;',
    '  esac',
    '}',
    "# Sets kids (a group's subcommands), or args, opts and vals (a leaf's arguments, options and value-taking options).",
    '_knarr_node() {',
    '  kids=() args="" opts=() vals=" "',
    '  case $1 in',
  ];
  for (const n of [null, ...groups()])
    l.push(
      `    ${casePattern(n)}) kids=(${kids(n)
        .map((k) => desc(k.word, k.text))
        .join(' ')}) ;;`,
    );
  l.push(...leafArms((opts) => `(${optDescs(opts).join(' ')})`));
  l.push(
    '  esac',
    '}',
    '_knarr() {',
    '  local cmd= i w leaf= act args vals prev=${words[CURRENT-1]}',
    '  local -a pos fwd kids opts a',
    `  local gvals=${q(valueMap(GLOBAL_OPTIONS))}`,
    `  local -a globals=(${optDescs(GLOBAL_OPTIONS).join(' ')})`,
    "  _knarr_node ''",
    '  for (( i = 2; i < CURRENT; i++ )); do',
    '    w=${words[i]}',
    '    case $w in',
    `      ${FORWARDED.join(' | ')}) fwd+=($w \${words[i+1]}); (( i++ )); continue ;;`,
    '      -*) [[ "$gvals$vals" == *" $w="* ]] && (( i++ )); continue ;;',
    '    esac',
    '    if [[ -n $leaf ]]; then pos+=($w); continue; fi',
    '    cmd=${cmd:+$cmd/}$w',
    '    _knarr_node $cmd',
    '    (( ${#kids} )) || leaf=1',
    '  done',
    '  if [[ "$gvals$vals" == *" $prev="* ]]; then',
    '    act="$gvals$vals"; act=${act#*" $prev="}; _knarr_value ${act%% *}; return',
    '  fi',
    '  # Options only once a dash is typed: offered alone, they made zsh insert a lone "-".',
    "  if [[ $PREFIX == -* ]]; then _describe -t options 'option' opts -- globals; return; fi",
    "  if [[ -z $leaf ]]; then _describe -t commands 'knarr command' kids; return; fi",
    '  a=(${=args})',
    '  (( ${#a} )) || return',
    '  act=${a[${#pos}+1]}',
    '  [[ -z $act && ${a[-1]} == *... ]] && act=${a[-1]}',
    '  _knarr_value ${act%...}',
    '}',
    '# Autoloaded from $fpath it completes now; sourced (source <(knarr completion zsh)) it registers itself.',
    'if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then',
    '  _knarr "$@"',
    'else',
    '  compdef _knarr knarr',
    'fi',
    '',
  );
  return l.join('\n');
}

function fish(): string {
  const l: string[] = [
    `# fish ${HEADER}`,
    'complete -c knarr -f',
    '# Names (dots, pools, jobs...) come from `knarr __complete KIND`, which prints nothing when it cannot answer quickly.',
    '# __knarr_arg DEPTH ARGS VALS [KIND]: completes the next argument of the leaf command DEPTH words deep (or a value of KIND).',
    'function __knarr_arg',
    '    set -l depth $argv[1]',
    '    set -l args (string split -n " " -- $argv[2])',
    `    set -l vals ${q(valueMap(GLOBAL_OPTIONS))}$argv[3]`,
    '    set -l toks (commandline -opc)',
    '    set -e toks[1]',
    '    set -l pos',
    '    set -l seen 0',
    '    set -l skip 0',
    '    for t in $toks',
    '        if test $skip = 1',
    '            set skip 0',
    '            continue',
    '        end',
    '        if string match -q -- "-*" $t',
    '            string match -q -- "* $t=*" $vals; and set skip 1',
    '            continue',
    '        end',
    '        if test $seen -lt $depth',
    '            set seen (math $seen + 1)',
    '            continue',
    '        end',
    '        set -a pos $t',
    '    end',
    '    # The forwarded options keep their values (the word after each).',
    '    set -l g',
    '    set -l i 1',
    '    while test $i -lt (count $toks)',
    `        if contains -- $toks[$i] ${FORWARDED.join(' ')}`,
    '            set -a g $toks[$i] $toks[(math $i + 1)]',
    '            set i (math $i + 1)',
    '        end',
    '        set i (math $i + 1)',
    '    end',
    '    set -l act $argv[4]',
    '    if test -z "$act"',
    '        set -l n (math (count $pos) + 1)',
    '        if test $n -le (count $args)',
    '            set act $args[$n]',
    '        else if test (count $args) -gt 0; and string match -q -- "*..." $args[-1]',
    '            set act $args[-1]',
    '        end',
    '    end',
    '    set act (string replace -- "..." "" "$act")',
    '    switch "$act"',
    "        case none ''",
    '            return',
    '        case path',
    '            __fish_complete_path (commandline -ct)',
    "        case 'c:*'",
    '            string split , -- (string replace -- c: "" $act)',
    '        case branch node member',
    '            test -n "$pos[1]"; and command knarr $g --no-json -o table __complete $act $pos[1] 2>/dev/null',
    "        case '*'",
    '            command knarr $g --no-json -o table __complete $act 2>/dev/null',
    '    end',
    'end',
  ];
  const opt = (cond: string, o: OptionDef, leaf: Node | null) => {
    const s = shortName(o.flags);
    const parts = ['complete -c knarr'];
    if (cond) parts.push(`-n ${q(cond)}`);
    if (s) parts.push(`-s ${s}`);
    parts.push(`-l ${longName(o.flags)}`);
    if (takesValue(o.flags)) {
      const act = action(o);
      if (o.choices) parts.push(`-x -a ${q(o.choices.join(' '))}`);
      else if (act === 'path') parts.push('-r -F');
      else if (act === 'none') parts.push('-x');
      else if (leaf) parts.push(`-x -a ${q(`(__knarr_arg ${leaf.path.length} "" "${valueMap(leaf.def.options ?? [])}" ${act})`)}`);
      else parts.push(`-x -a ${q(`(__knarr_arg 0 "" "" ${act})`)}`);
    }
    parts.push(`-d ${q(o.description)}`);
    l.push(parts.join(' '));
  };
  for (const g of GLOBAL_OPTIONS) opt('', g, null);
  // fish matches a node by the words seen so far, and by none of its children yet.
  const seen = (names: string[][]) => names.map((p) => `__fish_seen_subcommand_from ${p.join(' ')}`);
  for (const n of [null, ...groups()]) {
    const path = n ? n.names : [];
    const k = kids(n);
    const cond = [...(path.length ? seen(path) : []), `not __fish_seen_subcommand_from ${k.map((x) => x.word).join(' ')}`].join('; and ');
    for (const x of k) l.push(`complete -c knarr -n ${q(cond)} -a ${x.word} -d ${q(x.text)}`);
  }
  for (const n of leaves()) {
    const cond = seen(n.names).join('; and ');
    if (n.def.args?.length) {
      l.push(`complete -c knarr -n ${q(cond)} -a ${q(`(__knarr_arg ${n.path.length} "${argActions(n.def)}" "${valueMap(n.def.options ?? [])}")`)}`);
    }
    for (const o of n.def.options ?? []) opt(cond, o, n);
  }
  l.push('');
  return l.join('\n');
}

export function completionScript(shell: Shell): string {
  return shell === 'bash' ? bash() : shell === 'zsh' ? zsh() : fish();
}
