import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { Argument, Command, CommanderError, Help, Option } from 'commander';
import type { CommandResult } from '../commands/types.js';
import { OUTPUT_FORMATS, type GlobalFlags, type OutputFormat } from '../core/config.js';
import { ExitCode, FailureError, InternalError, InterruptedError, isKnarrError, ReaderGoneError, type KnarrError } from '../core/errors.js';
import { COMMANDS, GLOBAL_OPTIONS, type CommandDef, type OptionDef } from './commands-table.js';
import { createContext, loadConfig } from './context.js';
import { isTableFormat, renderDryRun, renderError, renderResult } from './render.js';

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
  stderrIsTTY?: boolean;
  /** Tables are cut to the terminal's width only when stdout is one. */
  stdoutIsTTY?: boolean;
  stdoutColumns?: number;
  signal?: AbortSignal;
  stdin?: import('node:stream').Readable;
}

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

interface Selected {
  def: CommandDef;
  args: CommandResultArgs;
  opts: Record<string, unknown>;
  globals: GlobalFlags;
}
type CommandResultArgs = (string | string[] | undefined)[];

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

// Allowed values shown in help in place of <value>; commander's own choices() would check them with its own message.
const CHOICES = new WeakMap<Option | Argument, readonly string[]>();

function toOption(o: OptionDef): Option {
  const opt = new Option(o.flags, o.description);
  if (o.repeatable) opt.argParser(collect);
  if (o.choices) CHOICES.set(opt, o.choices);
  return opt;
}

/** Help that lists allowed values (`--driver zfs|btrfs|lvm|dir`) and every alias of a command (`list|ls|ps`). */
class KnarrHelp extends Help {
  override optionTerm(option: Option): string {
    const choices = CHOICES.get(option);
    return choices ? option.flags.replace(/<[^>]*>|\[[^\]]*\]/, choices.join('|')) : super.optionTerm(option);
  }
  override argumentTerm(argument: Argument): string {
    const choices = CHOICES.get(argument);
    return choices ? `${super.argumentTerm(argument)} ${choices.join('|')}` : super.argumentTerm(argument);
  }
  override subcommandTerm(cmd: Command): string {
    const term = super.subcommandTerm(cmd);
    const [first, ...more] = cmd.aliases();
    return first && more.length ? term.replace(`${cmd.name()}|${first}`, [cmd.name(), first, ...more].join('|')) : term;
  }
}

/** Commander's command whose subcommands (made by createCommand) all use KnarrHelp. */
class KnarrCommand extends Command {
  override createCommand(name?: string): Command {
    return new KnarrCommand(name);
  }
  override createHelp(): Help {
    return Object.assign(new KnarrHelp(), this.configureHelp());
  }
}

function addCommand(parent: Command, def: CommandDef, onSelect: (s: Selected) => void): void {
  const cmd = parent
    .command(def.name, { hidden: def.hidden === true })
    .summary(def.summary)
    .description(def.description ?? def.summary);
  cmd.exitOverride();
  if (def.aliases?.length) cmd.aliases(def.aliases);
  if (def.examples?.length) {
    cmd.addHelpText('after', `\nExamples:\n${def.examples.map((e) => `  $ ${e.command}\n      ${e.description}`).join('\n')}\n`);
  }
  if (def.subcommands) {
    for (const sub of def.subcommands) addCommand(cmd, sub, onSelect);
    return;
  }
  for (const a of def.args ?? []) {
    const name = `${a.name}${a.variadic ? '...' : ''}`;
    const arg = new Argument(a.required ? `<${name}>` : `[${name}]`, a.description);
    if (a.choices) CHOICES.set(arg, a.choices);
    cmd.addArgument(arg);
  }
  for (const o of def.options ?? []) cmd.addOption(toOption(o));
  cmd.action((...params: unknown[]) => {
    const self = params[params.length - 1] as Command;
    onSelect({
      def,
      args: params.slice(0, -2) as CommandResultArgs,
      opts: self.opts(),
      globals: self.optsWithGlobals() as GlobalFlags,
    });
  });
}

const named = (defs: readonly CommandDef[], word: string) => defs.find((d) => d.name === word || d.aliases?.includes(word));

/** The global options that take a value: the word after one is no command. */
const globalValueFlags = () =>
  new Set(GLOBAL_OPTIONS.filter((o) => o.flags.includes('<')).flatMap((o) => o.flags.split(/[ ,]+/).filter((f) => f.startsWith('-'))));

/** The top-level command argv names (its first word that is no option nor a global option's value), if the table has it. */
export function commandNamed(argv: readonly string[]): string | undefined {
  const takesValue = globalValueFlags();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return undefined;
    if (a.startsWith('-')) {
      if (takesValue.has(a)) i++;
      continue;
    }
    return named(COMMANDS, a)?.name;
  }
  return undefined;
}

/**
 * `help A B` read as `A B --help`; and a word no group knows keeps no --help, so commander says it is unknown
 * (exit 2, with the nearest name) instead of printing the group's help as if the command existed.
 */
export function helpArgv(argv: readonly string[]): string[] {
  const takesValue = globalValueFlags();
  const out = [...argv];
  let level: readonly CommandDef[] | undefined = COMMANDS;
  for (let i = 0; i < out.length && level; i++) {
    const a = out[i]!;
    if (a === '--') break;
    if (a.startsWith('-')) {
      if (takesValue.has(a)) i++;
      continue;
    }
    const def = named(level, a);
    if (def) level = def.subcommands;
    else if (a === 'help') {
      out.splice(i--, 1);
      const end = out.indexOf('--');
      out.splice(end < 0 ? out.length : end, 0, '--help');
    } else return out.filter((w) => w !== '--help' && w !== '-h');
  }
  return out;
}

/** Commander's error as knarr's read: one line and a hint, its suggestion when it has one, else --help. */
function usageError(text: string): string {
  const message = text.replace(/^error: /, '').trimEnd();
  const suggestion = /\n\(Did you mean (.*)\?\)$/.exec(message);
  if (suggestion) return `${message.slice(0, suggestion.index)}\n  hint: did you mean ${suggestion[1]}?\n`;
  return `${message}\n  hint: add --help for usage\n`;
}

/**
 * Builds the commander tree from the command table; output goes to io, nothing exits. With only,
 * just that command's subtree is built: every start would otherwise pay for the whole table.
 */
export function buildProgram(io: Io, onSelect: (s: Selected) => void, only?: string): Command {
  const program = new KnarrCommand('knarr')
    .description('storage pools, versioned data volumes, a managed etcd, docker jobs and LXC clusters for a fleet of Linux hosts')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => void io.stderr.write(s),
      outputError: (s, write) => write(`knarr: ${usageError(s)}`),
    });
  for (const o of GLOBAL_OPTIONS) program.addOption(toOption(o));
  for (const def of COMMANDS) if (only === undefined || def.name === only) addCommand(program, def, onSelect);
  // Subcommands report errors through the same writers as the root.
  const share = (c: Command) => {
    c.configureOutput(program.configureOutput());
    c.commands.forEach(share);
  };
  program.commands.forEach(share);
  return program;
}

/** The width tables fit on stdout's terminal (COLUMNS first, as the shell sets it); none when stdout is no terminal. */
function terminalWidth(io: Io): number | undefined {
  if (!io.stdoutIsTTY) return undefined;
  const columns = Number(io.env.COLUMNS);
  if (Number.isInteger(columns) && columns > 0) return columns;
  return io.stdoutColumns !== undefined && io.stdoutColumns > 0 ? io.stdoutColumns : undefined;
}

function asKnarrError(err: unknown, signal: AbortSignal | undefined): KnarrError {
  // Once stdout's reader is gone, whatever the command threw on its way out is that.
  if (signal?.reason instanceof ReaderGoneError) return signal.reason;
  if (isKnarrError(err)) return err;
  if (signal?.aborted || (err as Error)?.name === 'AbortError') return new InterruptedError();
  const sys = err as NodeJS.ErrnoException;
  // A system call the host refused (permissions, a full disk) is the host's answer, not a bug.
  if (typeof sys?.syscall === 'string' && typeof sys.code === 'string') {
    const hint = sys.code === 'EACCES' || sys.code === 'EPERM' ? 'run knarr as root' : sys.code === 'ENOSPC' ? 'free some space on that filesystem' : undefined;
    return new FailureError(`${sys.syscall}${sys.path ? ` ${sys.path}` : ''} failed: ${sys.code}`, { hint, cause: err });
  }
  return new InternalError(`internal error: ${(err as Error)?.message ?? String(err)}`, {
    hint: 'this is a bug in knarr; re-run with -v for a stack trace',
    cause: err,
  });
}

/** Runs one knarr invocation; returns the exit code. The only place that prints. */
export async function main(argvGiven: string[], io: Io): Promise<number> {
  let selected: Selected | null = null;
  const argv = helpArgv(argvGiven);
  const program = buildProgram(io, (s) => (selected = s), commandNamed(argv));
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return ExitCode.ok;
      if (e.code === 'commander.help' && e.exitCode === 0) return ExitCode.ok;
      return ExitCode.usage;
    }
    throw e;
  }
  if (!selected) {
    program.outputHelp({ error: true });
    return ExitCode.usage;
  }
  const sel: Selected = selected;
  let format: OutputFormat = sel.globals.json
    ? 'json'
    : OUTPUT_FORMATS.includes(sel.globals.output as OutputFormat)
      ? (sel.globals.output as OutputFormat)
      : 'table';
  let verbose = sel.globals.verbose ?? false;
  const signal = io.signal ?? new AbortController().signal;
  let finish: (() => void) | undefined;
  try {
    const config = await loadConfig(sel.globals, io.env, io.cwd);
    format = config.output;
    verbose = config.verbose;
    const ctx = createContext(
      config,
      { stderr: io.stderr, stderrIsTTY: io.stderrIsTTY ?? false, env: io.env, cwd: io.cwd, signal, stdin: () => io.stdin ?? Readable.from([]) },
      () => loadConfig(sel.globals, io.env, io.cwd),
    );
    finish = () => ctx.events.done();
    const raw = { args: sel.args, opts: sel.opts };
    const result: CommandResult = await sel.def.run!(raw, ctx);
    ctx.events.done();
    if (result.stream && !config.dryRun) {
      const code = await result.stream(io.stdout as import('node:stream').Writable, io.stderr as import('node:stream').Writable);
      return code ?? result.exitCode ?? ExitCode.ok;
    }
    // A command that only reads shows its result under --dry-run too: there is nothing to plan.
    const text =
      config.dryRun && sel.def.dryRun !== 'reads'
        ? await renderDryRun(ctx.runner.planned, result.data, format)
        : await renderResult(result.data, result.view, { format, headers: config.headers, width: terminalWidth(io) });
    io.stdout.write(text);
    return result.exitCode ?? ExitCode.ok;
  } catch (e) {
    finish?.();
    const err = asKnarrError(e, signal);
    // Nobody reads stdout any more: as a writer killed by SIGPIPE, say nothing.
    if (err instanceof ReaderGoneError) return err.exitCode;
    let text = renderError(err, format, verbose);
    if (isTableFormat(format) && io.stderrIsTTY && !io.env.NO_COLOR) {
      const { default: chalk } = await import('chalk');
      text = text.replace(/^knarr: /, chalk.red.bold('knarr: ')).replace(/^( {2}hint: .*)$/m, (h) => chalk.dim(h));
    }
    io.stderr.write(text);
    return err.exitCode;
  }
}

/** Entry point for bin/knarr: real process streams, SIGINT/SIGTERM abort the command. */
export async function run(argv: string[]): Promise<number> {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(ExitCode.interrupted);
    controller.abort();
  };
  // EPIPE on stdout: the pipeline's reader is gone (`| head -1`); the command stops as a writer would on SIGPIPE.
  const onStdoutError = (e: NodeJS.ErrnoException) => {
    if (controller.signal.aborted) return;
    if (e.code === 'EPIPE') return controller.abort(new ReaderGoneError());
    // Any other write error (a full disk, EIO) stops the command too, and is no success.
    process.stderr.write(`knarr: cannot write to stdout: ${e.code ?? e.message}\n`);
    process.exitCode = ExitCode.failure;
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.stdout.on('error', onStdoutError);
  try {
    const code = await main(argv, {
      stdout: process.stdout,
      stderr: process.stderr,
      env: process.env,
      cwd: process.cwd(),
      stderrIsTTY: process.stderr.isTTY === true,
      stdoutIsTTY: process.stdout.isTTY === true,
      stdoutColumns: process.stdout.columns,
      signal: controller.signal,
      // A getter: process.stdin is made only for a command that reads it.
      get stdin() {
        return process.stdin;
      },
    });
    return controller.signal.reason instanceof ReaderGoneError ? ExitCode.readerGone : code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
