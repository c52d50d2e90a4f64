import type { Config } from '../core/config.js';
import type { Runner } from '../host/runner.js';
import type { DriverName, StorageDriver } from '../host/storage/driver.js';
import type { Store } from '../state/store.js';

/** Progress and warnings for the operator; always stderr, a spinner only on a TTY. */
export interface Reporter {
  step(message: string): void;
  warn(message: string): void;
  /** Ends the current step (stops a spinner). */
  done(): void;
  /** A line for stderr (--verbose commands): it goes above a status line, not into it. */
  log(line: string): void;
  /** A step that moves bytes (push, pull, image import): bytes, rate and ETA on a TTY; on a pipe the label alone, as step(). */
  progress(label: string, totalBytes?: number): Meter;
}

/** Counts a transfer's bytes for its progress line. */
export interface Meter {
  add(bytes: number): void;
  /** Ends the progress line. */
  end(): void;
}

/** What every handler gets: built once by the CLI, and once by the daemon. */
export interface Context {
  readonly config: Config;
  readonly runner: Runner;
  readonly drivers: Readonly<Record<DriverName, StorageDriver>>;
  readonly events: Reporter;
  readonly signal: AbortSignal;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** The command's standard input (streams received by `dot receive`). */
  readonly stdin: import('node:stream').Readable;
  /** Connects to the fleet store (external --etcd, else the managed local etcd, started on demand). */
  openStore(): Promise<Store>;
  /** Resolves the configuration again from the same flags and environment, re-reading the config file (the agent's SIGHUP). */
  reloadConfig(): Promise<Config>;
}

/** Commander's values as parsed: what untyped handlers get, and what defineCommand's parseInput converts. */
export interface CommandInput {
  /** Positional arguments, in table order (a variadic one last, as an array). */
  args: (string | string[] | undefined)[];
  /** Command options by camelCase name. */
  opts: Record<string, unknown>;
}

/** How a result reads as a table: rows of columns, label/value fields, or plain lines. */
export type View =
  | { kind: 'table'; columns: string[]; rows: string[][] }
  | { kind: 'fields'; fields: [string, string][] }
  | { kind: 'lines'; lines: string[] }
  | { kind: 'raw'; text: string };

export interface CommandResult<T = unknown> {
  /** What --json and -o yaml print. */
  data: T;
  /** What -o table (the default) prints; JSON when absent. */
  view?: View;
  exitCode?: number;
  /** Raw bytes for stdout instead of a rendered result (`dot send`); the CLI hands it stdout. */
  /** Resolves to the exit code when the stream decides it (a job's). */
  stream?: (stdout: import('node:stream').Writable, stderr: import('node:stream').Writable) => Promise<number | void>;
}

export type Handler = (input: CommandInput, ctx: Context) => Promise<CommandResult>;

// Option-bag look-ups for handlers not yet defined with defineCommand (commands/define.ts).
export function optString(opts: Record<string, unknown>, key: string): string | undefined {
  const v = opts[key];
  return typeof v === 'string' ? v : undefined;
}

export function optList(opts: Record<string, unknown>, key: string): string[] {
  const v = opts[key];
  return Array.isArray(v) ? (v as string[]) : typeof v === 'string' ? [v] : [];
}

export function optBool(opts: Record<string, unknown>, key: string): boolean {
  return opts[key] === true;
}
