import { EVENT_WRITE_TIMEOUT_MS, matches, SHOWN_EVENTS, type EventFilter, type EventKind, type FleetEvent } from '../../core/events.js';
import { hostId } from '../../host/identity.js';
import { bounded, EventLog } from '../../state/events.js';
import { timeCell, type CommandResult, type Context } from '../types.js';

/**
 * A `show` command's result with its object's last few events: an `events` field in its data, and a short
 * table under its view. object names it, or finds it in the data shown; onThisHost for what each host has its own of (dots).
 * Best effort: events that cannot be read in time leave the result with none.
 */
export async function withRecentEvents(
  ctx: Context,
  kind: EventKind,
  object: string | ((data: Record<string, unknown>) => string),
  shown: Promise<CommandResult>,
  onThisHost = false,
): Promise<CommandResult> {
  const result = await shown;
  if (result.data === null || typeof result.data !== 'object' || Array.isArray(result.data)) return result;
  const data = result.data as Record<string, unknown>;
  const filter: EventFilter = { kind, object: typeof object === 'string' ? object : object(data), ...(onThisHost ? { host: hostId() } : {}) };
  let events: FleetEvent[] = [];
  const read = async () => {
    const store = await ctx.openStore();
    try {
      events = (await new EventLog(store, ctx.config.fleet).list()).filter((e) => matches(e, filter)).slice(-SHOWN_EVENTS);
    } finally {
      await store.close();
    }
  };
  await bounded(read(), EVENT_WRITE_TIMEOUT_MS * 2);
  const withEvents = { ...result, data: { ...data, events } };
  if (!result.view || events.length === 0) return withEvents;
  const rows = events.map((e) => [timeCell(e.at), e.event, e.host ?? '-', e.message || '-']);
  return { ...withEvents, view: { kind: 'sections', sections: [result.view, { kind: 'table', columns: ['TIME', 'EVENT', 'HOST', 'MESSAGE'], rows }] } };
}
