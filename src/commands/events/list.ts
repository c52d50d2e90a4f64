import type { Writable } from 'node:stream';
import { EVENT_COLUMNS, eventRow, followLine, matches, type EventFilter, type EventKind, type FleetEvent } from '../../core/events.js';
import { ValidationError } from '../../core/errors.js';
import { parseAge } from '../../core/ops.js';
import { EventLog } from '../../state/events.js';
import { timeCell, type CommandResult, type Context } from '../types.js';
import { withStore } from '../with-store.js';

const DEFAULT_TAIL = 50;

/**
 * SIGINT or SIGTERM ends following (-f): that is how it is meant to end, so it is a success. Until then the process
 * stays, even while etcd is away and nothing else holds it (the watch waits to reconnect on a timer that does not).
 */
export function followUntilAborted(signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const hold = setInterval(() => undefined, 60_000);
    const end = () => {
      clearInterval(hold);
      resolve();
    };
    if (signal.aborted) end();
    else signal.addEventListener('abort', end, { once: true });
  });
}

/** --since as an age (30m) or a time (2026-01-02T03:04:05Z), in ms since the epoch. */
export function parseSince(text: string, now = Date.now()): number {
  if (/^\d{4}-\d\d-\d\d/.test(text)) {
    const t = Date.parse(text);
    if (Number.isNaN(t)) throw new ValidationError('--since', `${JSON.stringify(text)} is not a time; write it like 2026-01-02T03:04:05Z`);
    return t;
  }
  return now - parseAge('--since', text);
}

function parseTail(text: string | undefined): number {
  if (text === undefined) return DEFAULT_TAIL;
  if (!/^\d{1,9}$/.test(text)) throw new ValidationError('--tail', `${JSON.stringify(text)} is not a count; give a whole number (0 for every event kept)`);
  return Number(text);
}

/** `knarr events [-f] [--host H] [--kind K] [--since D] [-n N]`. */
export async function eventsList(
  opts: { follow: boolean; host?: string; kind?: EventKind; since?: string; tail?: string },
  ctx: Context,
): Promise<CommandResult> {
  const filter: EventFilter = {
    ...(opts.kind ? { kind: opts.kind } : {}),
    ...(opts.host ? { host: opts.host } : {}),
    ...(opts.since ? { since: parseSince(opts.since) } : {}),
  };
  const tail = parseTail(opts.tail);
  const lastMatching = (events: FleetEvent[]) => {
    const shown = events.filter((e) => matches(e, filter));
    return tail === 0 ? shown : shown.slice(-tail);
  };
  if (!opts.follow) {
    const shown = lastMatching(await withStore(ctx, (store) => new EventLog(store, ctx.config.fleet).list()));
    return { data: shown, view: { kind: 'table', columns: EVENT_COLUMNS, rows: shown.map((e) => [timeCell(e.at), ...eventRow(e).slice(1)]) } };
  }
  const json = ctx.config.output === 'json' || ctx.config.output === 'yaml';
  return {
    // What --dry-run shows (it follows nothing): no event.
    data: [],
    view: { kind: 'lines', lines: [] },
    stream: async (stdout: Writable) => {
      const store = await ctx.openStore();
      try {
        const write = (events: FleetEvent[]) => {
          const shown = events.filter((e) => matches(e, filter));
          if (shown.length === 0) return;
          stdout.write(shown.map((e) => (json ? JSON.stringify(e) : followLine(eventRow(e)))).join('\n') + '\n');
        };
        const log = new EventLog(store, ctx.config.fleet);
        const kept = await log.list();
        if (!json) stdout.write(`${followLine(EVENT_COLUMNS)}\n`);
        write(lastMatching(kept));
        await log.follow(kept[kept.length - 1]?.seq ?? 0, write, ctx.signal);
        await followUntilAborted(ctx.signal);
        return 0;
      } finally {
        await store.close();
      }
    },
  };
}
