import { describe, expect, it } from 'vitest';
import { logOptionsFromQuery, logQuery, parseLogOptions } from '../../src/core/logs.js';

const now = Date.parse('2026-12-06T12:00:00Z');

describe('job logs options', () => {
  it('reads ages and times for --since, a count for --tail', () => {
    expect(parseLogOptions({ since: '10m', tail: '5' }, now)).toEqual({ follow: false, tail: 5, since: now / 1000 - 600, timestamps: false });
    expect(parseLogOptions({ since: '2h' }, now).since).toBe(now / 1000 - 7200);
    expect(parseLogOptions({ since: '2026-12-06T11:00:00Z' }, now).since).toBe(now / 1000 - 3600);
    expect(parseLogOptions({ since: '2026-12-06' }, now).since).toBe(Date.parse('2026-12-06') / 1000);
    expect(parseLogOptions({ tail: '0', timestamps: true, follow: true }, now)).toMatchObject({ tail: 0, timestamps: true, follow: true });
  });

  it.each([
    [{ tail: '-1' }, /^--tail: /],
    [{ tail: '1.5' }, /^--tail: /],
    [{ since: 'yesterday' }, /^--since: /],
    [{ since: '10' }, /^--since: /],
    [{ since: '2026-02-30T25:00Z' }, /^--since: /],
  ])('refuses %o', (opts, message) => {
    expect(() => parseLogOptions(opts, now)).toThrow(message);
  });

  it('round-trips through the query the agent is sent', () => {
    const o = parseLogOptions({ follow: true, tail: '3', since: '1d', timestamps: true }, now);
    expect(logOptionsFromQuery(logQuery(o))).toEqual(o);
    expect(logQuery(parseLogOptions({}, now))).toBe('stdout=1&stderr=1');
    expect(() => logOptionsFromQuery('tail=1;rm')).toThrow(/tail/);
  });
});
