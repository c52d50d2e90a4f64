import { describe, expect, it } from 'vitest';
import { clusterEventOf, eventRow, matches, opEvent, type FleetEvent } from '../../src/core/events.js';
import { newOp } from '../../src/core/ops.js';
import { parseSince } from '../../src/commands/events/list.js';

const now = Date.parse('2026-06-10T12:00:00Z');
const at = (msAgo: number) => new Date(now - msAgo).toISOString();
const ev = (fields: Partial<FleetEvent>): FleetEvent => ({
  seq: 1,
  at: at(0),
  kind: 'job',
  object: 'web',
  host: 'h1',
  event: 'started',
  message: '',
  ...fields,
});

describe('fleet events: pure parts', () => {
  it("a followed event's line starts with how long ago it happened", () => {
    expect(eventRow(ev({ at: at(5 * 60_000 + 10_000) }), now)).toEqual(['5m ago', 'job', 'web', 'h1', 'started', '-']);
  });

  it('a filter matches on every field it sets', () => {
    const e = ev({ kind: 'host', object: 'h2', host: 'h2', event: 'down', at: at(60_000) });
    expect(matches(e, {})).toBe(true);
    expect(matches(e, { kind: 'host', host: 'h2', object: 'h2' })).toBe(true);
    expect(matches(e, { kind: 'job' })).toBe(false);
    expect(matches(e, { host: 'h1' })).toBe(false);
    expect(matches(e, { since: now - 120_000 })).toBe(true);
    expect(matches(e, { since: now - 30_000 })).toBe(false);
    expect(eventRow(e, now)).toEqual(['1m ago', 'host', 'h2', 'h2', 'down', '-']);
    expect(eventRow({ ...e, host: null, message: 'x' }, now)).toEqual(['1m ago', 'host', 'h2', '-', 'down', 'x']);
  });

  it('--since takes an age or a time, and names itself when it is neither', () => {
    expect(parseSince('30m', now)).toBe(now - 30 * 60_000);
    expect(parseSince('2026-06-10T11:00:00Z', now)).toBe(now - 3_600_000);
    expect(() => parseSince('yesterday', now)).toThrow(/--since: "yesterday" is not an age/);
    expect(() => parseSince('2026-13-45T99:00:00Z', now)).toThrow(/--since: .* is not a time/);
  });

  it("a cluster operation that ended done is its cluster's event; a failed one or another kind is not", () => {
    const create = { ...newOp(7, 'cluster.create', { user: 'ann', name: 'lab', size: 3 }, 'h1'), status: 'done' as const };
    expect(clusterEventOf(create)).toEqual({ kind: 'cluster', object: 'ann/lab', host: 'h1', event: 'created', message: '3 node(s), by op-000007' });
    expect(clusterEventOf({ ...create, kind: 'cluster.delete' })).toMatchObject({ event: 'deleted', message: 'by op-000007' });
    expect(clusterEventOf({ ...create, kind: 'cluster.scale', args: { user: 'ann', name: 'lab', size: 5 } })).toMatchObject({
      event: 'scaled',
      message: '5 node(s), by op-000007',
    });
    expect(clusterEventOf({ ...create, status: 'failed' })).toBeNull();
    expect(clusterEventOf({ ...create, kind: 'image.save' })).toBeNull();
    expect(opEvent(create, 'step', '1/3 starting')).toEqual({ kind: 'op', object: 'op-000007', host: 'h1', event: 'step', message: '1/3 starting' });
  });
});
