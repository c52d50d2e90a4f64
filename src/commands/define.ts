import { ValidationError } from '../core/errors.js';
import type { CommandInput, CommandResult, Context } from './types.js';

export type DryRunMode = 'reads' | 'plans' | 'refuses';

/** The things shell completion asks knarr to name (`knarr __complete KIND`). */
export const NAME_KINDS = ['pool', 'dot', 'branch', 'remote', 'job', 'cluster', 'node', 'image', 'op', 'host', 'docker-image', 'env', 'member'] as const;
export type NameKind = (typeof NAME_KINDS)[number];
/** What completion offers for a value: names of a kind, files and directories, or nothing (a new name, free text). */
export type Completes = NameKind | 'path' | 'none';

export interface OptionDef {
  /** Commander flags, e.g. "-o, --output <format>"; a `<value>` makes it a string option, none a boolean flag. */
  flags: string;
  description: string;
  /** Values offered by completion and listed in help; a typed command refuses any other. */
  choices?: readonly string[];
  /** The flag may be given several times (values are collected, commas split). */
  repeatable?: boolean;
  /** A typed command refuses to run without it. */
  required?: boolean;
  /** Environment variable documented for this option. */
  env?: string;
  /** What completion offers for its value, when its long name or `<value>` does not say (see completes()). */
  completes?: Completes;
}

export interface ArgDef {
  name: string;
  description: string;
  required?: boolean;
  variadic?: boolean;
  choices?: readonly string[];
  /** What completion offers, when the argument's name does not say (see completes()). */
  completes?: Completes;
}

export interface Example {
  command: string;
  description: string;
}

/** One node of the command tree; a leaf has a handler (or run), a group has subcommands. */
export interface CommandDef {
  name: string;
  /** Other names people type for it (`ls` for list); help, completion and the man pages show them. */
  aliases?: readonly string[];
  summary: string;
  description?: string;
  args?: ArgDef[];
  options?: OptionDef[];
  examples?: Example[];
  /** Converts commander's values to the typed input (defineCommand), then runs the handler, loaded only now. */
  run?: (raw: CommandInput, ctx: Context) => Promise<CommandResult>;
  /**
   * What the command does under --dry-run (every leaf says; a test runs each against real components):
   * reads changes nothing anyway, plans prints what it would change and changes nothing, refuses says it cannot.
   */
  dryRun?: DryRunMode;
  subcommands?: CommandDef[];
  /** Left out of help, completion, man pages and docs (shell completion's own lookups). */
  hidden?: boolean;
}

/** An argument of a typed command; its name is its key in `args`, its position the key's order. */
export type ArgSpec = Omit<ArgDef, 'name'>;
export type OptionSpec = OptionDef;

type ChoiceOf<S> = S extends { choices: readonly (infer C extends string)[] } ? C : string;
type TakesValue<F extends string> = F extends `${string}<${string}>${string}` | `${string}[${string}]${string}` ? true : false;

/** The value an option has in the handler: boolean for a flag, string[] when repeatable, a choice union when it has choices. */
export type OptionValue<S extends OptionSpec> = string extends S['flags']
  ? unknown // flags widened to string (a definition not written in place): nothing to infer from
  : TakesValue<S['flags']> extends false
    ? boolean
    : S extends { repeatable: true }
      ? ChoiceOf<S>[]
      : S extends { required: true }
        ? ChoiceOf<S>
        : ChoiceOf<S> | undefined;

export type ArgValue<S extends ArgSpec> = S extends { variadic: true } ? ChoiceOf<S>[] : S extends { required: true } ? ChoiceOf<S> : ChoiceOf<S> | undefined;

export type OptionsOf<O extends Record<string, OptionSpec>> = { -readonly [K in keyof O]: OptionValue<O[K]> };
export type ArgsOf<A extends Record<string, ArgSpec>> = { -readonly [K in keyof A]: ArgValue<A[K]> };

/** What a typed handler receives: each argument and option under its key, typed by its definition. */
export interface TypedInput<A extends Record<string, ArgSpec>, O extends Record<string, OptionSpec>> {
  args: ArgsOf<A>;
  options: OptionsOf<O>;
}

export interface CommandSpec<A extends Record<string, ArgSpec>, O extends Record<string, OptionSpec>> {
  name: string;
  /** Other names; a `list` is also `ls` without saying so. */
  aliases?: readonly string[];
  summary: string;
  description?: string;
  args?: A;
  options?: O;
  examples?: Example[];
  dryRun: DryRunMode;
  /** Left out of help, completion, man pages and docs. */
  hidden?: boolean;
}

/** Long option name without dashes or argument: "--loop-file <path>" -> "loop-file". */
export function longName(flags: string): string {
  const m = /--([a-z0-9-]+)/.exec(flags);
  return m ? m[1]! : flags;
}

export function shortName(flags: string): string | null {
  const m = /(?:^|\s)-([a-zA-Z])\b/.exec(flags);
  return m ? m[1]! : null;
}

export function takesValue(flags: string): boolean {
  return /[<[]/.test(flags);
}

const PATH_NAME = /^(path|file|dir|dev|rootfs|device|mountpoint|loop-file|state-dir|config|share|tls-cert|tls-key|token-file|authorized-keys)$/;
const PATH_VALUE = /<(path|file|dir|dev)>/;

/**
 * What completion offers for an argument, or an option's value: its explicit `completes`, else what its name
 * says (an argument `dot`, an option `--pool`), else files for a path-like name or `<path>`, else nothing.
 */
export function completes(def: ArgDef | OptionDef): Completes {
  if (def.completes) return def.completes;
  const name = 'flags' in def ? longName(def.flags) : def.name;
  if ((NAME_KINDS as readonly string[]).includes(name)) return name as NameKind;
  if (PATH_NAME.test(name) || ('flags' in def && PATH_VALUE.test(def.flags))) return 'path';
  return 'none';
}

/** The key commander stores an option's value under: "--loop-file" -> "loopFile". */
function attributeName(flags: string): string {
  return longName(flags).replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function checkChoice(field: string, what: string, value: string, choices: readonly string[] | undefined): void {
  if (choices && !choices.includes(value)) throw new ValidationError(field, `unknown ${what} ${JSON.stringify(value)}; use one of ${choices.join(', ')}`);
}

function optionValue(spec: OptionSpec, raw: unknown): unknown {
  const field = `--${longName(spec.flags)}`;
  if (!takesValue(spec.flags)) return raw === true;
  const what = /<([^>]+)>/.exec(spec.flags)?.[1] ?? 'value';
  const values = raw === undefined ? [] : Array.isArray(raw) ? raw.map(String) : [String(raw)];
  if (values.length === 0 && spec.required) throw new ValidationError(field, 'is required', { hint: `give ${spec.flags}` });
  for (const v of values) checkChoice(field, what, v, spec.choices);
  return spec.repeatable ? values : values[values.length - 1];
}

function argValue(name: string, spec: ArgSpec, raw: string | string[] | undefined): unknown {
  const field = name.toUpperCase();
  const values = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  if (values.length === 0 && spec.required) throw new ValidationError(field, 'is required');
  for (const v of values) checkChoice(field, name, v, spec.choices);
  return spec.variadic ? values : values[0];
}

/** Commander's parsed values as a typed command's input: the one place options are read by name, required and choices checked. */
export function parseInput<A extends Record<string, ArgSpec>, O extends Record<string, OptionSpec>>(
  spec: { args?: A; options?: O },
  raw: CommandInput,
): TypedInput<A, O> {
  const args: Record<string, unknown> = {};
  for (const [i, [name, a]] of Object.entries(spec.args ?? {}).entries()) args[name] = argValue(name, a, raw.args[i]);
  const options: Record<string, unknown> = {};
  for (const [key, o] of Object.entries(spec.options ?? {})) options[key] = optionValue(o, raw.opts[attributeName(o.flags)]);
  return { args, options } as TypedInput<A, O>;
}

/**
 * A command defined once: its arguments and options give the handler's input types. Keep the handler a thin
 * call into a dynamically imported module, so the table stays cheap to load.
 */
export function defineCommand<
  const A extends Record<string, ArgSpec> = Record<never, never>,
  const O extends Record<string, OptionSpec> = Record<never, never>,
>(spec: CommandSpec<A, O>, handler: (input: TypedInput<A, O>, ctx: Context) => Promise<CommandResult>): CommandDef {
  const { args, options, aliases, ...rest } = spec;
  const named = [...(spec.name === 'list' ? ['ls'] : []), ...(aliases ?? [])];
  return {
    ...rest,
    ...(named.length ? { aliases: named } : {}),
    ...(args ? { args: Object.entries(args).map(([name, a]): ArgDef => ({ name, ...a })) } : {}),
    ...(options ? { options: Object.values(options) } : {}),
    run: (raw, ctx) => handler(parseInput(spec, raw), ctx),
  };
}

/** A noun: a group of commands under one name. */
export function defineGroup(group: {
  name: string;
  aliases?: readonly string[];
  summary: string;
  description?: string;
  subcommands: CommandDef[];
}): CommandDef {
  return group;
}
