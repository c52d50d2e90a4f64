/** Documented process exit codes; the README and man page list the same table. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  conflict: 4,
  prerequisite: 5,
  storeUnavailable: 6,
  /** `knarr onboot` steps: each failing step has its own code. */
  bootPool: 10,
  bootEtcd: 11,
  bootDot: 12,
  bootSeed: 13,
  bootMount: 14,
  interrupted: 130,
  /** stdout's reader went away (`knarr ... | head -1`): what a process killed by SIGPIPE reports. */
  readerGone: 141,
} as const;

export interface ErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Machine-readable detail for --json error output. */
  detail?: Record<string, unknown>;
}

/** Base of every error knarr reports to an operator: a stable code, an exit code and an optional hint. */
export class KnarrError extends Error {
  readonly code: string;
  readonly exitCode: number;
  readonly hint: string | undefined;
  readonly detail: Record<string, unknown> | undefined;

  constructor(code: string, exitCode: number, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
    this.hint = options.hint;
    this.detail = options.detail;
  }
}

/** Bad input from the operator: nothing was changed. */
export class UserError extends KnarrError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('E_USAGE', ExitCode.usage, message, options);
  }
}

/** A field of a spec, flag or config file failed validation. */
export class ValidationError extends UserError {
  readonly field: string;
  constructor(field: string, message: string, options: ErrorOptions = {}) {
    super(`${field}: ${message}`, { ...options, detail: { field, ...options.detail } });
    this.field = field;
  }
}

export class NotFoundError extends KnarrError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('E_NOT_FOUND', ExitCode.notFound, message, options);
  }
}

/** The request clashes with what exists (a device holds data, a pool differs); refused until forced. */
export class ConflictError extends KnarrError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('E_CONFLICT', ExitCode.conflict, message, options);
  }
}

/** A tool, daemon or kernel feature knarr needs is absent. */
export class PrerequisiteError extends KnarrError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('E_PREREQUISITE', ExitCode.prerequisite, message, options);
  }
}

/** A pool (or the disk under a remote) has no space left: nothing was left half-made; free space and run it again. */
export class NoSpaceError extends KnarrError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('E_NO_SPACE', ExitCode.prerequisite, message, options);
  }
}

export class StoreUnavailableError extends KnarrError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('E_STORE_UNAVAILABLE', ExitCode.storeUnavailable, message, options);
  }
}

/** A write named a lease etcd no longer has: its holder missed its keepalives and the lease lapsed (with the keys under it). */
export class LeaseNotFoundError extends KnarrError {
  readonly lease: string;
  constructor(lease: string, options: ErrorOptions = {}) {
    super('E_LEASE_NOT_FOUND', ExitCode.failure, `etcd lease ${lease} has lapsed (not found)`, {
      hint: options.hint ?? 'its holder missed its keepalives; a new lease must be granted and its keys written again',
      ...options,
      detail: { lease, ...options.detail },
    });
    this.lease = lease;
  }
}

/** An outside command exited non-zero; keeps argv, exit code and stderr for the report. */
export class ExternalCommandError extends KnarrError {
  readonly argv: readonly string[];
  readonly exitStatus: number | null;
  readonly stderr: string;
  constructor(argv: readonly string[], exitStatus: number | null, stderr: string, options: ErrorOptions = {}) {
    const firstLine =
      stderr
        .trim()
        .split('\n')
        .filter((l) => l.trim() !== '')
        .pop() ?? '';
    super('E_COMMAND_FAILED', ExitCode.failure, `${argv[0]} failed (exit ${exitStatus ?? 'signal'})${firstLine ? `: ${firstLine.trim()}` : ''}`, {
      ...options,
      detail: { argv: [...argv], exitStatus, ...options.detail },
    });
    this.argv = argv;
    this.exitStatus = exitStatus;
    this.stderr = stderr;
  }
}

/** Something knarr asked for failed at run time: a job did not start, a connection ended early. */
export class FailureError extends KnarrError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('E_FAILED', ExitCode.failure, message, options);
  }
}

/** An outside command ran past its time limit and was stopped (SIGTERM, then SIGKILL after a grace). */
export class CommandTimeoutError extends KnarrError {
  readonly argv: readonly string[];
  readonly timeoutMs: number;
  constructor(argv: readonly string[], timeoutMs: number, options: ErrorOptions = {}) {
    super('E_COMMAND_TIMEOUT', ExitCode.failure, `${argv[0]} took longer than ${formatSeconds(timeoutMs)} and was stopped`, {
      hint: options.hint ?? `the host may be overloaded, or ${argv[0]} is stuck; re-run with -v to see the command line`,
      ...options,
      detail: { argv: [...argv], timeoutMs, ...options.detail },
    });
    this.argv = argv;
    this.timeoutMs = timeoutMs;
  }
}

function formatSeconds(ms: number): string {
  return `${ms % 1000 === 0 ? ms / 1000 : (ms / 1000).toFixed(1)} s`;
}

/** The docker engine answered an API call with an error status: 404 is not found, 409 a conflict. */
export class EngineError extends KnarrError {
  readonly status: number;
  constructor(status: number, message: string, options: ErrorOptions = {}) {
    const exitCode = status === 404 ? ExitCode.notFound : status === 409 ? ExitCode.conflict : ExitCode.failure;
    const hint = options.hint ?? (status >= 500 ? 'the docker engine failed; its log says why (journalctl -u docker)' : undefined);
    super('E_ENGINE', exitCode, message, { ...options, hint, detail: { status, ...options.detail } });
    this.status = status;
  }
}

/** A durable operation ended failed or cancelled (its runner has undone it). */
export class OperationFailedError extends KnarrError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('E_OPERATION_FAILED', ExitCode.failure, message, options);
  }
}

export class InterruptedError extends KnarrError {
  constructor(message = 'interrupted', options: ErrorOptions = {}) {
    super('E_INTERRUPTED', ExitCode.interrupted, message, options);
  }
}

/** stdout's reader went away: the command stops (a job is removed) and knarr exits quietly, as on SIGPIPE. */
export class ReaderGoneError extends KnarrError {
  constructor() {
    super('E_READER_GONE', ExitCode.readerGone, 'the reader of stdout went away');
  }
}

/** A bug in knarr: shown with its stack under --verbose. */
export class InternalError extends KnarrError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('E_INTERNAL', ExitCode.failure, message, { ...options, hint: options.hint ?? 'this is a bug in knarr; re-run with -v for a stack trace' });
  }
}

/** Under --dry-run, a command tried to change something (etcd, docker, an agent) instead of planning it: a bug, and nothing was changed. */
export class DryRunWriteError extends InternalError {
  constructor(what: string) {
    super(`--dry-run: this command tried to ${what}; it was refused and nothing was changed`, {
      hint: 'this is a bug in knarr: the command should plan under --dry-run, or refuse it',
    });
  }
}

/** A command that cannot say what it would do without doing it. */
export function dryRunRefused(command: string, why: string): UserError {
  return new UserError(`${command} does not support --dry-run: ${why}`, { hint: `run it without --dry-run` });
}

export function isKnarrError(err: unknown): err is KnarrError {
  return err instanceof KnarrError;
}

/** The exit-code table shown in the README and the man page. */
export const EXIT_CODE_DOCS: readonly { code: number; meaning: string }[] = [
  { code: ExitCode.ok, meaning: 'success' },
  {
    code: ExitCode.failure,
    meaning:
      'failure: an outside command failed or ran past its time limit, the docker engine refused a request, a job did not start, an operation failed ' +
      'or was cancelled, or an internal error',
  },
  { code: ExitCode.usage, meaning: 'usage: a bad flag, argument, name, spec or config value; nothing was changed' },
  { code: ExitCode.notFound, meaning: 'not found: the named pool, dot, image or other object does not exist' },
  { code: ExitCode.conflict, meaning: 'conflict: refused because it would overwrite data or clash with what exists (see --force / --yes)' },
  { code: ExitCode.prerequisite, meaning: 'prerequisite missing: a tool, daemon or kernel feature is absent (see knarr doctor), or a pool is out of space' },
  { code: ExitCode.storeUnavailable, meaning: 'store unavailable: etcd cannot be reached or is unhealthy' },
  { code: ExitCode.bootPool, meaning: 'onboot: the pool step failed (import or create the pool)' },
  { code: ExitCode.bootEtcd, meaning: 'onboot: the etcd step failed (its dataset, or the managed etcd)' },
  { code: ExitCode.bootDot, meaning: 'onboot: the dot step failed (keep or init the dot)' },
  { code: ExitCode.bootSeed, meaning: 'onboot: the seed step failed (pull the dot from --seed)' },
  { code: ExitCode.bootMount, meaning: 'onboot: the mount step failed' },
  { code: ExitCode.interrupted, meaning: 'interrupted by SIGINT or SIGTERM' },
  { code: ExitCode.readerGone, meaning: "the reader of stdout went away (a pipeline's `| head`): the command, and a job it ran, were stopped" },
];
