import { spawn } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ExternalCommandError, InterruptedError, PrerequisiteError } from '../core/errors.js';
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
  timeoutMs?: number;
}

export interface RunResult {
  argv: readonly string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  /** True when --dry-run recorded the command instead of running it. */
  planned: boolean;
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
}


/** What a process that could not start means to the operator: a missing tool names its package. */
function spawnFailure(argv: readonly string[], e: NodeJS.ErrnoException): Error {
  if (e.code === 'ENOENT') {
    const pkg = packageFor(argv[0]!);
    return new PrerequisiteError(`${argv[0]} is not installed or not on PATH`, {
      hint: pkg ? `install the Debian package ${pkg}, or run: knarr doctor --fix` : 'run: knarr doctor',
      cause: e,
    });
  }
  return e.name === 'AbortError' ? new InterruptedError() : e;
}

/** The exit code of a streaming child once it closed (128 when a signal ended it); a command that cannot start rejects. */
function exitOf(child: import('node:child_process').ChildProcess, argv: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) => reject(spawnFailure(argv, e)));
    child.on('close', (code, sig) => resolve(code ?? (sig ? 128 : 1)));
  });
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

  constructor(private readonly opts: RunnerOptions) {
    this.dryRun = opts.dryRun;
    this.verbose = opts.verbose;
    this.env = { ...opts.env, LC_ALL: 'C' };
    this.log = opts.log;
    this.signal = opts.signal;
    // Each command in flight listens on the signal: a cluster's nodes are probed side by side, more than Node's default 10.
    if (opts.signal) setMaxListeners(256, opts.signal);
  }

  /** The same runner with another abort signal: the agent's work outlives its SIGTERM until it has drained. */
  withSignal(signal: AbortSignal): Runner {
    return new Runner({ ...this.opts, signal });
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
    if (argv.length === 0 || !argv[0]) throw new Error('Runner.run needs a command');
    const mutates = opts.mutates ?? true;
    if (mutates && this.plan(argv)) {
      return { argv, exitCode: 0, stdout: '', stderr: '', durationMs: 0, planned: true };
    }
    if (this.signal?.aborted) throw new InterruptedError();
    const started = Date.now();
    const result = await new Promise<RunResult>((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), {
        cwd: opts.cwd,
        env: { ...this.env, ...opts.env },
        // No stdin pipe unless there is input: ending an unused pipe costs a few ms on every probe.
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        shell: false,
        signal: this.signal,
        timeout: opts.timeoutMs,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout!.on('data', (b: Buffer) => out.push(b));
      child.stderr!.on('data', (b: Buffer) => err.push(b));
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
          exitCode: code ?? (sig ? 128 : 1),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          durationMs: Math.round(Date.now() - started),
          planned: false,
        });
      });
    });
    if (this.verbose) this.log(`+ ${formatArgv(argv)}  (${result.durationMs}ms, exit ${result.exitCode})`);
    const ok = result.exitCode === 0 || (opts.okExitCodes ?? []).includes(result.exitCode);
    if (!ok) throw new ExternalCommandError(argv, result.exitCode, result.stderr);
    return result;
  }

  /** Streams bytes through a command (zfs send/recv, btrfs send/receive, tar) without buffering them. */
  async pipe(argv: readonly string[], opts: PipeOptions): Promise<void> {
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
      signal: this.signal,
    });
    const err: Buffer[] = [];
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const exited = exitOf(child, argv);
    // tar and zfs recv may exit once their stream's end marker is read, before the bytes after it:
    // what the command leaves unread is drained, so the producer still finishes cleanly.
    if (opts.stdin) {
      const input = opts.stdin;
      child.stdin!.on('error', () => undefined);
      // A broken producer must not leave the command waiting for more input.
      input.once('error', () => child.stdin!.destroy());
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
    if (code !== 0) throw new ExternalCommandError(argv, code, Buffer.concat(err).toString('utf8'));
    const broken = piped.find((p): p is PromiseRejectedResult => p.status === 'rejected');
    if (broken) throw broken.reason;
  }

  /**
   * Runs a command with its output streamed to stdout and stderr as it comes (and stdin fed to it
   * when given), as an operator's own command (cluster exec): resolves to its exit code, which is
   * an answer, not an error; only a command that cannot start throws.
   */
  async attached(argv: readonly string[], io: { stdin?: Readable; stdout: Writable; stderr: Writable }): Promise<number> {
    if (this.plan(argv)) return 0;
    if (this.signal?.aborted) throw new InterruptedError();
    const started = Date.now();
    const child = spawn(argv[0]!, argv.slice(1), { env: this.env, stdio: [io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], shell: false, signal: this.signal });
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
    return code;
  }

  /** Starts a long-lived process (etcd, a daemon) detached from knarr, output appended to logFile. */
  async spawnDetached(argv: readonly string[], opts: DetachedOptions): Promise<number | null> {
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
