/**
 * Durable operations: every fleet-level change is written to etcd as an operation before anything
 * runs, claimed by the target host's runner (its agent, or the CLI inline when the host has none),
 * and ends done, failed or cancelled. A runner that dies leaves its claim to lapse; the next runner
 * on that host resumes the operation (its steps are idempotent) or, when cancel was asked, undoes it.
 */

export type OpStatus = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export interface OpProgress {
  done: number;
  total: number;
  message: string;
}

export interface OpRecord {
  id: string;
  kind: string;
  args: Record<string, unknown>;
  /** The host whose runner carries it out. */
  host: string;
  status: OpStatus;
  parent: string | null;
  children: string[];
  progress: OpProgress;
  /** What the operation has settled so far (ids, addresses), so a resumed run reuses it. */
  state: Record<string, unknown>;
  result: unknown;
  error: string | null;
  cancelRequested: boolean;
  /** Who ran it last (runner and pid) and how many times it was started. */
  runner: string | null;
  attempts: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export const isTerminal = (s: OpStatus): boolean => s === 'done' || s === 'failed' || s === 'cancelled';

/** Sortable, readable ids: op-000042. */
export const opId = (n: number): string => `op-${String(n).padStart(6, '0')}`;

const OP_ID_RE = /^op-\d{6,}$/;
export const isOpId = (s: string): boolean => OP_ID_RE.test(s);

export function newOp(n: number, kind: string, args: Record<string, unknown>, host: string, parent: string | null = null): OpRecord {
  return {
    id: opId(n),
    kind,
    args,
    host,
    status: 'queued',
    parent,
    children: [],
    progress: { done: 0, total: 0, message: 'queued' },
    state: {},
    result: null,
    error: null,
    cancelRequested: false,
    runner: null,
    attempts: 0,
    createdAt: new Date().toISOString(),
    startedAt: null,
    finishedAt: null,
  };
}

/** One line for a terminal: "op-000042 cluster.create running 3/5 starting host-3". */
export function describeOp(op: OpRecord): string {
  const p = op.progress.total > 0 ? ` ${op.progress.done}/${op.progress.total}` : '';
  return `${op.id} ${op.kind} ${op.status}${p}${op.progress.message ? ` ${op.progress.message}` : ''}${op.error ? `: ${op.error}` : ''}`;
}
