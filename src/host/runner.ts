import { spawn, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { mkdir, open } from 'node:fs/promises';
import { constants } from 'node:os';
import { dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CommandTimeoutError,
  ExternalCommandError,
  FailureError,
  InternalError,
  InterruptedError,
  PrerequisiteError,
  type KnarrError,
} from '../core/errors.js';
import { shellCommand } from '../core/shell.js';
import { stopReading } from '../core/streams.js';
import { packageFor } from './packages.js';

export interface RunOptions {
  /** false for read-only probes: they run even under --dry-run. */
  mutates?: boolean;
  input?: string | Buffer;
  cwd?: string;
  env?: Record<string, string>;
  /** Exit codes that are answers, not failures (e.g. blkid's 2 for "nothing found"). */
  okExitCodes?: readonly number[];
  /** Past this the command is stopped and a CommandTimeoutError thrown. */
  timeoutMs?: number;
  /** Captured stdout and stderr each keep this many bytes; the rest is counted and marked, not kept. */
  maxOutputBytes?: number;
}

export interface RunResult {
  argv: readonly string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  /** True when --dry-run recorded the command instead of running it. */
  planned: boolean;
  /** Bytes of output past maxOutputBytes that were not kept; absent when everything was. */
  dropped?: { stdout: number; stderr: number };
}

export interface DetachedOptions {
  logFile: string;
  cwd?: string;
  env?: Record<string, string>;
}

export interface PipeOptions {
  /** Fed to the command's stdin, with backpressure. */
  stdin?: Readable;
  /** Receives the command's stdout, with backpressure. */
  stdout?: Writable;
  /** An open file the command writes its stdout to directly, without passing through knarr. */
  stdoutFd?: number;
  /** How --dry-run and --verbose show the redirection, e.g. "> /mnt/remote/s1". */
  redirect?: string;
  mutates?: boolean;
}

export interface RunnerOptions {
  dryRun: boolean;
  verbose: boolean;
  env: NodeJS.ProcessEnv;
  /** Where --verbose lines go (stderr). */
  log: (line: string) => void;
  signal?: AbortSignal;
  /** How long a command stopped on timeout or abort has between SIGTERM and SIGKILL. */
  killGraceMs?: number;
}

/** A command that ignores SIGTERM is killed this long after it. */
export const DEFAULT_KILL_GRACE_MS = 5000;
/** Captured output beyond this per stream is dropped: a chatty command cannot exhaust knarr's memory. */
export const DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** What a process that could not start means to the operator: a missing tool names its package. */
function spawnFailure(argv: readonly string[], e: NodeJS.ErrnoException): KnarrError {
  if (e.code === 'ENOENT') {
    const pkg = packageFor(argv[0]!);
    return new PrerequisiteError(`${argv[0]} is not installed or not on PATH`, {
      hint: pkg ? `install the Debian package ${pkg}, or run: knarr doctor --fix` : 'run: knarr doctor',
      cause: e,
    });
  }
  return new FailureError(`cannot start ${argv[0]}: ${e.code ?? e.message}`, {
    hint: e.code === 'EACCES' ? `${argv[0]} is not executable by this user` : undefined,
    cause: e,
  });
}

/** A process's exit status as a shell reports it: 128 plus the signal's number when a signal ended it. */
function exitStatus(code: number | null, sig: NodeJS.Signals | null): number {
  return code ?? (sig ? 128 + (constants.signals[sig] ?? 0) : 1);
}

/** The exit status of a streaming child once it closed; a command that cannot start rejects. */
function exitOf(child: ChildProcess, argv: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) => reject(spawnFailure(argv, e)));
    child.on('close', (code, sig) => resolve(exitStatus(code, sig)));
  });
}

/**
 * Stops child when signal aborts or timeoutMs passes: SIGTERM, then SIGKILL after graceMs, so a
 * command that ignores SIGTERM cannot outlive its caller. reason tells why it was stopped.
 */
function stopOn(
  child: ChildProcess,
  signal: AbortSignal | undefined,
  timeoutMs: number | undefined,
  graceMs: number,
  group = false,
): { reason: 'abort' | 'timeout' | null } {
  const state: { reason: 'abort' | 'timeout' | null } = { reason: null };
  let kill: NodeJS.Timeout | undefined;
  const send = (sig: NodeJS.Signals) => {
    if (!group || child.pid === undefined) return void child.kill(sig);
    try {
      process.kill(-child.pid, sig);
    } catch {
      // The group has ended already.
    }
  };
  const stop = (reason: 'abort' | 'timeout') => {
    if (state.reason !== null || child.exitCode !== null || child.signalCode !== null) return;
    state.reason = reason;
    send('SIGTERM');
    kill = setTimeout(() => send('SIGKILL'), graceMs);
  };
  const onAbort = () => stop('abort');
  const timer = timeoutMs ? setTimeout(() => stop('timeout'), timeoutMs) : undefined;
  signal?.addEventListener('abort', onAbort, { once: true });
  const done = () => {
    clearTimeout(timer);
    clearTimeout(kill);
    signal?.removeEventListener('abort', onAbort);
  };
  child.once('close', done).once('error', done);
  return state;
}

/** Keeps the first max bytes of a stream and counts the rest. */
class Capture {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  dropped = 0;
  constructor(private readonly max: number) {}
  add(b: Buffer): void {
    const room = Math.max(0, this.max - this.kept);
    const keep = Math.min(room, b.length);
    if (keep > 0) this.chunks.push(keep === b.length ? b : Buffer.from(b.subarray(0, keep)));
    this.kept += keep;
    this.dropped += b.length - keep;
  }
  text(): string {
    const s = Buffer.concat(this.chunks).toString('utf8');
    return this.dropped > 0 ? `${s}\n[knarr: output truncated: ${this.dropped} more bytes were not kept]\n` : s;
  }
}

/** Callers build argv from validated input: an empty one is a bug, named as such. */
function needCommand(argv: readonly string[]): void {
  if (argv.length === 0 || !argv[0]) throw new InternalError('the runner was given no command to run');
}

/** Renders argv as a copy-pasteable shell line for --dry-run and --verbose; never executed. */
export function formatArgv(argv: readonly string[]): string {
  return shellCommand(argv);
}

/**
 * Every outside process knarr starts goes through here: argv arrays, never a shell.
 * Under --dry-run, commands that change the host are recorded instead of run.
 */
export class Runner {
  readonly dryRun: boolean;
  readonly verbose: boolean;
  readonly planned: string[] = [];
  private readonly env: NodeJS.ProcessEnv;
  private readonly log: (line: string) => void;
  private readonly signal: AbortSignal | undefined;
  private readonly killGraceMs: number;

  constructor(private readonly opts: RunnerOptions) {
    this.dryRun = opts.dryRun;
    this.verbose = opts.verbose;
    this.env = { ...opts.env, LC_ALL: 'C' };
    this.log = opts.log;
    this.signal = opts.signal;
    this.killGraceMs = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    // Each command in flight listens on the signal: a cluster's nodes are probed side by side, more than Node's default 10.
    if (opts.signal) setMaxListeners(256, opts.signal);
  }

  /** The same runner with another abort signal: the agent's work outlives its SIGTERM until it has drained. */
  withSignal(signal: AbortSignal): Runner {
    return new Runner({ ...this.opts, signal });
  }

  /** The same runner, whose commands are stopped by signal as well as by its own. */
  alsoStoppedBy(signal: AbortSignal): Runner {
    return new Runner({ ...this.opts, signal: this.signal ? AbortSignal.any([this.signal, signal]) : signal });
  }

  /** Under --dry-run, a comment among the planned commands: a step whose commands depend on one that has not run. */
  note(text: string): void {
    if (this.dryRun) this.planned.push(`# ${text}`);
  }

  /** Records a host change that knarr makes in-process, so --dry-run shows it as its shell equivalent. */
  plan(argv: readonly string[]): boolean {
    if (!this.dryRun) return false;
    this.planned.push(formatArgv(argv));
    return true;
  }

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    needCommand(argv);
    const mutates = opts.mutates ?? true;
    if (mutates && this.plan(argv)) {
      return { argv, exitCode: 0, stdout: '', stderr: '', durationMs: 0, planned: true };
    }
    if (this.signal?.aborted) throw new InterruptedError();
    const started = Date.now();
    let stopped: { reason: 'abort' | 'timeout' | null } = { reason: null };
    const result = await new Promise<RunResult>((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), {
        cwd: opts.cwd,
        env: { ...this.env, ...opts.env },
        // No stdin pipe unless there is input: ending an unused pipe costs a few ms on every probe.
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        shell: false,
      });
      stopped = stopOn(child, this.signal, opts.timeoutMs, this.killGraceMs);
      const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
      const out = new Capture(max);
      const err = new Capture(max);
      child.stdout!.on('data', (b: Buffer) => out.add(b));
      child.stderr!.on('data', (b: Buffer) => err.add(b));
      child.on('error', (e: NodeJS.ErrnoException) => reject(spawnFailure(argv, e)));
      if (child.stdin) {
        child.stdin.on('error', () => {
          /* the command may exit before reading its input; its exit status tells the story */
        });
        child.stdin.end(opts.input);
      }
      child.on('close', (code, sig) => {
        resolve({
          argv,
          exitCode: exitStatus(code, sig),
          stdout: out.text(),
          stderr: err.text(),
          durationMs: Math.round(Date.now() - started),
          planned: false,
          ...(out.dropped + err.dropped > 0 ? { dropped: { stdout: out.dropped, stderr: err.dropped } } : {}),
        });
      });
    });
    if (this.verbose) this.log(`+ ${formatArgv(argv)}  (${result.durationMs}ms, ${stopped.reason === 'timeout' ? 'timed out' : `exit ${result.exitCode}`})`);
    if (stopped.reason === 'abort') throw new InterruptedError();
    if (stopped.reason === 'timeout') throw new CommandTimeoutError(argv, opts.timeoutMs!, { detail: { stderr: result.stderr.slice(-2000) } });
    const ok = result.exitCode === 0 || (opts.okExitCodes ?? []).includes(result.exitCode);
    if (!ok) throw new ExternalCommandError(argv, result.exitCode, result.stderr);
    return result;
  }

  /** Streams bytes through a command (zfs send/recv, btrfs send/receive, tar) without buffering them. */
  async pipe(argv: readonly string[], opts: PipeOptions): Promise<void> {
    needCommand(argv);
    const shown = opts.redirect ? [...argv, opts.redirect] : argv;
    if ((opts.mutates ?? true) && this.dryRun) {
      this.planned.push(opts.redirect ? `${formatArgv(argv)} ${opts.redirect}` : formatArgv(argv));
      return;
    }
    if (this.signal?.aborted) throw new InterruptedError();
    const started = Date.now();
    const child = spawn(argv[0]!, argv.slice(1), {
      env: this.env,
      stdio: [opts.stdin ? 'pipe' : 'ignore', opts.stdoutFd ?? (opts.stdout ? 'pipe' : 'ignore'), 'pipe'],
      shell: false,
    });
    const stopped = stopOn(child, this.signal, undefined, this.killGraceMs);
    const err = new Capture(DEFAULT_MAX_OUTPUT_BYTES);
    child.stderr!.on('data', (b: Buffer) => err.add(b));
    const exited = exitOf(child, argv);
    let inputError: Error | null = null;
    // tar and zfs recv may exit once their stream's end marker is read, before the bytes after it:
    // what the command leaves unread is drained, so the producer still finishes cleanly.
    if (opts.stdin) {
      const input = opts.stdin;
      child.stdin!.on('error', () => undefined);
      // A broken producer must not leave the command waiting for more input, nor pass for done if the command then exits 0.
      input.once('error', (e: Error) => {
        inputError = e;
        child.stdin!.destroy();
      });
      // A stream that failed before this command started (a check that ended while it waited) emits no error again.
      if (input.errored) {
        inputError = input.errored;
        child.stdin!.destroy();
      }
      input.pipe(child.stdin!);
      child.once('close', () => {
        input.unpipe(child.stdin!);
        input.resume();
      });
    }
    const flows: Promise<void>[] = [];
    if (opts.stdout) flows.push(pipeline(child.stdout!, opts.stdout));
    // A failing command usually breaks its pipes too: report the command's own error first.
    const [code, piped] = await Promise.all([exited, Promise.allSettled(flows)]);
    if (this.verbose) this.log(`+ ${formatArgv(shown)}  (${Math.round(Date.now() - started)}ms, exit ${code})`);
    if (stopped.reason) throw new InterruptedError();
    if (code !== 0) throw inputError ?? new ExternalCommandError(argv, code, err.text());
    if (inputError) throw inputError;
    const broken = piped.find((p): p is PromiseRejectedResult => p.status === 'rejected');
    if (broken) throw broken.reason;
  }

  /**
   * Runs a command with its output streamed to stdout and stderr as it comes (and stdin fed to it
   * when given), as an operator's own command (cluster exec): resolves to its exit code, which is
   * an answer, not an error; only a command that cannot start throws.
   */
  async attached(argv: readonly string[], io: { stdin?: Readable; stdout: Writable; stderr: Writable }): Promise<number> {
    needCommand(argv);
    if (this.plan(argv)) return 0;
    if (this.signal?.aborted) throw new InterruptedError();
    const started = Date.now();
    // A group of its own, stopped as one: lxc-attach passes no signal on, and the command it started in a node would run on.
    const child = spawn(argv[0]!, argv.slice(1), { env: this.env, stdio: [io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], shell: false, detached: true });
    const stopped = stopOn(child, this.signal, undefined, this.killGraceMs, true);
    const exited = exitOf(child, argv);
    if (io.stdin) {
      child.stdin!.on('error', () => undefined);
      io.stdin.pipe(child.stdin!);
      // The command is over: what stdin still holds is not read (`yes | knarr cluster exec -i ... head -1` ends).
      child.once('close', () => stopReading(io.stdin!));
    }
    // knarr's own streams stay open after the command: end: false.
    child.stdout!.pipe(io.stdout, { end: false });
    child.stderr!.pipe(io.stderr, { end: false });
    const code = await exited;
    if (this.verbose) this.log(`+ ${formatArgv(argv)}  (${Math.round(Date.now() - started)}ms, exit ${code})`);
    if (stopped.reason) throw new InterruptedError();
    return code;
  }

  /** Starts a long-lived process (etcd, a daemon) detached from knarr, output appended to logFile. */
  async spawnDetached(argv: readonly string[], opts: DetachedOptions): Promise<number | null> {
    needCommand(argv);
    if (this.plan(argv)) return null;
    await mkdir(dirname(opts.logFile), { recursive: true });
    const log = await open(opts.logFile, 'a');
    try {
      const started = Date.now();
      const pid = await new Promise<number>((resolve, reject) => {
        const child = spawn(argv[0]!, argv.slice(1), {
          cwd: opts.cwd,
          env: { ...this.env, ...opts.env },
          stdio: ['ignore', log.fd, log.fd],
          detached: true,
          shell: false,
        });
        child.once('error', (e: NodeJS.ErrnoException) => reject(spawnFailure(argv, e)));
        child.once('spawn', () => {
          child.unref();
          resolve(child.pid!);
        });
      });
      if (this.verbose) this.log(`+ ${formatArgv(argv)} &  (pid ${pid}, ${Math.round(Date.now() - started)}ms)`);
      return pid;
    } finally {
      await log.close();
    }
  }

  /** mkdir -p, shown as such under --dry-run. */
  async mkdirp(path: string): Promise<void> {
    if (this.plan(['mkdir', '-p', path])) return;
    await mkdir(path, { recursive: true });
  }
}
