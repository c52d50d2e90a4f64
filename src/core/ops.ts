import { ValidationError } from './errors.js';

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

/** What an operation acts on, for a person: "cluster alice/web", "image base2 (from alice/web node 1)", "host h1". */
export function opTarget(op: Pick<OpRecord, 'kind' | 'args' | 'host'>): string {
  const a = op.args;
  const str = (k: string) => (typeof a[k] === 'string' && a[k] !== '' ? (a[k] as string) : null);
  const cluster = str('user') && str('name') ? `${str('user')}/${str('name')}` : null;
  const noun = op.kind.split('.')[0];
  if (noun === 'image' && str('image'))
    return `image ${str('image')}${cluster ? ` (from ${cluster}${a.node !== undefined ? ` node ${String(a.node)}` : ''})` : ''}`;
  if (noun === 'cluster' && cluster) return `cluster ${cluster}`;
  if (noun === 'host') return `host ${str('host') ?? op.host}`;
  if (noun === 'env' && str('env')) return `env ${str('env')}${str('member') ? ` (${str('member')})` : ''}`;
  const named = str('name') ?? str('image') ?? str('job') ?? str('dot');
  return named ? `${noun} ${named}` : `host ${op.host}`;
}

/** A value as one short line: strings as they are, objects as k=v pairs, lists comma-separated; cut at max characters. */
export function shortValue(v: unknown, max = 100): string {
  const text = (x: unknown): string => {
    if (x === null || x === undefined || x === '') return '-';
    if (typeof x === 'string') return x;
    if (Array.isArray(x)) return x.length ? x.map(text).join(', ') : '-';
    if (typeof x === 'object') {
      const entries = Object.entries(x as Record<string, unknown>);
      return entries.length ? entries.map(([k, y]) => `${k}=${typeof y === 'object' && y !== null ? JSON.stringify(y) : text(y)}`).join(' ') : '-';
    }
    return String(x);
  };
  const t = text(v);
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

const AGE_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** An age such as 7d, 12h, 30m, 90s or 2w (0 alone is none), in milliseconds. */
export function parseAge(field: string, text: string): number {
  if (text.trim() === '0') return 0;
  const m = /^(\d{1,9})([smhdw])$/.exec(text.trim());
  if (!m) throw new ValidationError(field, `${JSON.stringify(text)} is not an age; write it like 7d, 12h, 30m or 90s`);
  return Number(m[1]) * AGE_UNITS[m[2]!]!;
}

/** When an operation ended (or, if it never ran, was made): what its age counts from. */
const endedAt = (op: OpRecord) => Date.parse(op.finishedAt ?? op.createdAt);

/**
 * The operations `op gc` removes: ended (done, failed, cancelled) before cutoff. Queued and running
 * ones stay, and so do a child whose parent has not ended (the parent still reads it) and a parent with a child that has not.
 */
export function expiredOps(ops: OpRecord[], cutoff: number): OpRecord[] {
  const byId = new Map(ops.map((o) => [o.id, o]));
  return ops.filter((o) => {
    if (!isTerminal(o.status) || !(endedAt(o) < cutoff)) return false;
    const parent = o.parent === null ? undefined : byId.get(o.parent);
    const childrenEnded = o.children.every((c) => !byId.has(c) || isTerminal(byId.get(c)!.status));
    return (parent === undefined || isTerminal(parent.status)) && childrenEnded;
  });
}

/** One stored line of a job's history, as gc sees it. */
export interface HistoryEntry {
  key: string;
  job: string;
  at: string;
  event: string;
}

/** The job history lines older than cutoff, except each job's newest start: where a fixed job belongs, and the scheduler's memory. */
export function expiredHistory(entries: HistoryEntry[], cutoff: number): HistoryEntry[] {
  const lastStart = new Map<string, HistoryEntry>();
  for (const e of entries) {
    if (e.event !== 'started') continue;
    const seen = lastStart.get(e.job);
    if (!seen || seen.at <= e.at) lastStart.set(e.job, e);
  }
  return entries.filter((e) => Date.parse(e.at) < cutoff && lastStart.get(e.job) !== e);
}
