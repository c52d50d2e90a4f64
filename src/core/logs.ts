import { ValidationError } from './errors.js';

/** Which part of a job's log to read, as the docker engine's logs endpoint takes it. */
export interface LogOptions {
  follow: boolean;
  /** The last N lines only; null for all. */
  tail: number | null;
  /** Only lines written at or after this time, in unix seconds; null for all. */
  since: number | null;
  /** Each line with the time the engine got it (RFC 3339). */
  timestamps: boolean;
}

const DURATION_RE = /^(\d{1,9})(s|m|h|d)$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
// A date, or a date and time with an optional zone: 2026-12-06, 2026-12-06T21:30, 2026-12-06T21:30:00.5Z.
const ISO_RE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** --tail, --since and --timestamps from the command line, checked before anything is read; now is unix milliseconds. */
export function parseLogOptions(
  opts: { follow?: boolean; tail?: string | undefined; since?: string | undefined; timestamps?: boolean },
  now: number,
): LogOptions {
  let tail: number | null = null;
  if (opts.tail !== undefined) {
    const t = opts.tail.trim();
    if (!/^\d{1,9}$/.test(t)) throw new ValidationError('--tail', `${JSON.stringify(opts.tail)} is not a number of lines; give one like 100 (0 for none)`);
    tail = Number(t);
  }
  let since: number | null = null;
  if (opts.since !== undefined) {
    const s = opts.since.trim();
    const d = DURATION_RE.exec(s);
    if (d) since = Math.floor(now / 1000) - Number(d[1]) * UNIT_SECONDS[d[2]!]!;
    else if (ISO_RE.test(s) && !Number.isNaN(Date.parse(s))) since = Math.floor(Date.parse(s) / 1000);
    else throw new ValidationError('--since', `${JSON.stringify(opts.since)} is neither an age nor a time; give one like 10m, 2h, 1d or 2026-12-06T21:30:00Z`);
  }
  return { follow: opts.follow ?? false, tail, since, timestamps: opts.timestamps ?? false };
}

/** The engine's (and the agent's) query string for these options: stdout and stderr, and what was asked. */
export function logQuery(o: LogOptions): string {
  const q = new URLSearchParams({ stdout: '1', stderr: '1' });
  if (o.follow) q.set('follow', '1');
  if (o.tail !== null) q.set('tail', String(o.tail));
  if (o.since !== null) q.set('since', String(o.since));
  if (o.timestamps) q.set('timestamps', '1');
  return q.toString();
}

/** The options back from a query string logQuery wrote (the agent's side); anything else is refused. */
export function logOptionsFromQuery(query: string): LogOptions {
  const q = new URLSearchParams(query);
  const num = (k: string) => {
    const v = q.get(k);
    if (v === null) return null;
    if (!/^\d{1,12}$/.test(v)) throw new ValidationError(k, `${JSON.stringify(v)} is not a whole number`);
    return Number(v);
  };
  return { follow: q.get('follow') === '1', tail: num('tail'), since: num('since'), timestamps: q.get('timestamps') === '1' };
}
