import { EVENT_LOG_SIZE, EVENT_WRITE_TIMEOUT_MS, type FleetEvent, type NewEvent } from '../core/events.js';
import { ConflictError } from '../core/errors.js';
import { fleetKeys } from './keys.js';
import type { Guard, Store } from './store.js';

/** What an append also requires and writes, in its own transaction. */
export interface Condition {
  guards: Guard[];
  puts: { key: string; value: string }[];
}

/** The fleet's event log in etcd: numbered events, trimmed to its size by each writer. */
export class EventLog {
  private readonly keys;
  constructor(
    private readonly store: Store,
    fleet: string,
    private readonly size = EVENT_LOG_SIZE,
  ) {
    this.keys = fleetKeys(fleet);
  }

  /**
   * Writes e as the next event and drops those past the log's size, in one transaction guarded by the
   * counter's revision: two writers never take one number, and the log never grows past its size.
   * condition (read afresh on each try) adds guards and puts; when it returns null or its guards fail, nothing is written.
   */
  async append(e: NewEvent, condition?: () => Promise<Condition | null>): Promise<FleetEvent | null> {
    for (let attempt = 1; ; attempt++) {
      const counter = await this.store.getVersioned(this.keys.eventSeq);
      const cond = condition ? await condition() : { guards: [], puts: [] };
      if (!cond) return null;
      const seq = (counter ? Number(counter.value) : 0) + 1;
      const event: FleetEvent = { seq, at: new Date().toISOString(), ...e };
      const guard: Guard = counter ? { key: this.keys.eventSeq, modRevision: counter.modRevision } : { key: this.keys.eventSeq, absent: true };
      const oldest = seq - this.size + 1;
      const written = await this.store.transact(
        [guard, ...cond.guards],
        [{ key: this.keys.eventSeq, value: String(seq) }, { key: this.keys.event(seq), value: JSON.stringify(event) }, ...cond.puts],
        oldest > 1 ? [{ from: this.keys.events, to: this.keys.event(oldest) }] : [],
      );
      if (written) return event;
      if (attempt >= 50) throw new ConflictError('the event log kept changing under this write', { hint: 'too many writers at once; the event is dropped' });
      // Writers that lost to each other try again at different moments, not in lockstep.
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(5 * attempt, 50)));
    }
  }

  /** Every event kept, oldest first. */
  async list(): Promise<FleetEvent[]> {
    return (await this.store.list(this.keys.events)).map((kv) => JSON.parse(kv.value) as FleetEvent).sort((a, b) => a.seq - b.seq);
  }

  /**
   * Calls onEvents with each event numbered after `after`, in order, from those kept now on and as they
   * are written, until signal aborts. A watch that was re-made (etcd compacted, a member changed) reads the log again.
   */
  async follow(after: number, onEvents: (events: FleetEvent[]) => void, signal: AbortSignal): Promise<void> {
    let last = after;
    let chain: Promise<void> = Promise.resolve();
    const deliver = (events: FleetEvent[]) => {
      const fresh = events.filter((e) => e.seq > last).sort((a, b) => a.seq - b.seq);
      if (fresh.length === 0) return;
      last = fresh[fresh.length - 1]!.seq;
      onEvents(fresh);
    };
    const read = (keys: string[] | null) => {
      chain = chain
        .then(async () => {
          if (signal.aborted) return;
          if (keys === null) return deliver(await this.list());
          const values = await Promise.all(keys.map((k) => this.store.get(k)));
          deliver(values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as FleetEvent));
        })
        // A read that failed (etcd away a moment) is made whole by the next, a moment later: it reads the whole log.
        .catch(() => void setTimeout(() => read(null), 1000).unref());
    };
    await this.store.watch(
      this.keys.events,
      (changes) => {
        if (changes.some((c) => c.key === null)) return read(null);
        const written = changes.filter((c) => !c.deleted).map((c) => c.key!);
        if (written.length > 0) read(written);
      },
      signal,
    );
    // After the watch is made: an event written in between is read here or seen by the watch, never lost.
    read(null);
    await chain;
  }

  /**
   * Records a host going up or down once: only a writer that finds the host in the other state writes
   * it, and a down only while the host's liveness key is gone.
   */
  hostChanged(host: string, to: 'up' | 'down', message: string): Promise<FleetEvent | null> {
    const key = this.keys.eventHost(host);
    return this.append({ kind: 'host', object: host, host, event: to, message }, async () => {
      const cur = await this.store.getVersioned(key);
      if (cur?.value === to || (to === 'down' && (await this.store.get(this.keys.hostAlive(host))) !== null)) return null;
      const guards: Guard[] = [cur ? { key, modRevision: cur.modRevision } : { key, absent: true }];
      if (to === 'down') guards.push({ key: this.keys.hostAlive(host), absent: true });
      return { guards, puts: [{ key, value: to }] };
    });
  }

  /**
   * An agent that has joined: up, after a down when the log still says up (its last run ended
   * without stopping, and no other agent saw it go: a fleet of one).
   */
  async agentStarted(host: string): Promise<void> {
    const key = this.keys.eventHost(host);
    await this.append(
      { kind: 'host', object: host, host, event: 'down', message: 'its last agent ended without stopping (seen as it started again)' },
      async () => {
        const cur = await this.store.getVersioned(key);
        return cur?.value === 'up' ? { guards: [{ key, modRevision: cur.modRevision }], puts: [{ key, value: 'down' }] } : null;
      },
    );
    await this.hostChanged(host, 'up', 'its agent started');
  }

  /** Writes a down for each host of the fleet that has a record but no liveness key, unless the log already says so. */
  async noticeDownHosts(message: string): Promise<void> {
    const [records, alive, states] = await Promise.all([
      this.store.list(this.keys.hosts),
      this.store.list(this.keys.alive),
      this.store.list(this.keys.eventHost('')),
    ]);
    const up = new Set(alive.map((kv) => kv.key.slice(this.keys.alive.length)));
    const down = new Set(states.filter((kv) => kv.value === 'down').map((kv) => kv.key.slice(this.keys.eventHost('').length)));
    const names = records.map((kv) => kv.key.slice(this.keys.hosts.length)).filter((n) => !n.includes('/'));
    for (const name of names) if (!up.has(name) && !down.has(name)) await this.hostChanged(name, 'down', message);
  }
}

/** Waits for p at most ms, and never fails: what an event write costs the command that makes it. */
export async function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms).unref()))]);
  clearTimeout(timer);
}

/** Appends an event, best effort: a slow or absent etcd delays the caller by at most timeoutMs, an error is dropped. */
export function recordEvent(store: Store, fleet: string, e: NewEvent, timeoutMs = EVENT_WRITE_TIMEOUT_MS): Promise<void> {
  return bounded(new EventLog(store, fleet).append(e), timeoutMs);
}
