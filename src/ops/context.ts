import type { Config } from '../core/config.js';
import type { OpRecord } from '../core/ops.js';
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
  /** Operation handlers by kind, registered by the composition root: the op runner imports no command. */
  readonly opHandlers: OpHandlers;
  /**
   * Connects to the fleet store (external --etcd, else the managed local etcd, started on demand). 'agent': the
   * long-running agent's client (the etcd3 package: keepalive streams, watches that resume), too slow to load for a command.
   */
  openStore(use?: 'agent'): Promise<Store>;
  /** Resolves the configuration again from the same flags and environment, re-reading the config file (the agent's SIGHUP). */
  reloadConfig(): Promise<Config>;
}

/** What an operation's handler gets. */
export interface OpRun {
  readonly op: OpRecord;
  readonly ctx: Context;
  readonly store: Store;
  /** Records what the operation has settled; a resumed run finds it in op.state. */
  save(patch: Record<string, unknown>): Promise<void>;
  progress(done: number, total: number, message: string): Promise<void>;
  /** Throws Cancelled when an operator asked to cancel. */
  checkpoint(): Promise<void>;
  /**
   * Runs a child operation to its end and returns it: submitted once (under key, so a resumed parent finds
   * the child it made) with this operation as its parent, listed in its children. On this host it runs
   * inline; with another host, that host's runner (its agent) runs it and this waits, passing a cancel on.
   */
  child(key: string, kind: string, args: Record<string, unknown>, host?: string): Promise<OpRecord>;
}

/** One kind of operation. run's steps are idempotent, so a run interrupted anywhere can run again. */
export interface OpHandler {
  run(r: OpRun): Promise<unknown>;
  /** Takes back whatever run made; idempotent too (after a failure, a cancel, or a crash with a cancel pending). */
  undo(r: OpRun): Promise<void>;
  /** False for kinds that go forward only (start, stop, delete): a failure or cancel leaves what was done. */
  readonly undoes?: boolean;
  /** Under --dry-run: records on the runner what run would do on this host as it stands, changing nothing. */
  plan?(r: OpRun): Promise<void>;
}

/** Handlers by kind, each loaded only when an operation of that kind runs. */
export type OpHandlers = Readonly<Record<string, () => Promise<OpHandler>>>;
