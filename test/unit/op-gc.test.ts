import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/core/config.js';
import { expiredHistory, expiredOps, newOp, parseAge, type OpRecord, type OpStatus } from '../../src/core/ops.js';

const day = 86_400_000;
const now = Date.parse('2026-06-10T00:00:00Z');
const ago = (ms: number) => new Date(now - ms).toISOString();

function op(n: number, status: OpStatus, endedDaysAgo: number, links: { parent?: string; children?: string[] } = {}): OpRecord {
  const o = newOp(n, 'cluster.create', {}, 'h1', links.parent ?? null);
  return {
    ...o,
    status,
    children: links.children ?? [],
    createdAt: ago((endedDaysAgo + 1) * day),
    finishedAt: status === 'queued' || status === 'running' ? null : ago(endedDaysAgo * day),
  };
}

describe('op gc: what goes', () => {
  it('parses ages and refuses anything else, naming the field', () => {
    expect(parseAge('--older-than', '7d')).toBe(7 * day);
    expect(parseAge('--older-than', '90s')).toBe(90_000);
    expect(parseAge('--older-than', '2w')).toBe(14 * day);
    expect(parseAge('--older-than', '0')).toBe(0);
    for (const bad of ['', '7', '7 days', '-1d', '1.5h', 'd'])
      expect(() => parseAge('--older-than', bad)).toThrow(/--older-than: .* is not an age; write it like 7d/);
  });

  it('ended operations older than the cutoff; never queued or running ones, nor a child of a running parent or the parent of a running child', () => {
    const ops = [
      op(1, 'done', 10),
      op(2, 'failed', 10),
      op(3, 'cancelled', 10),
      op(4, 'running', 10),
      op(5, 'queued', 10),
      op(6, 'done', 1),
      op(7, 'running', 10, { children: ['op-000008'] }),
      op(8, 'done', 10, { parent: 'op-000007' }),
      op(9, 'done', 10, { children: ['op-000010'] }),
      op(10, 'running', 10, { parent: 'op-000009' }),
      op(11, 'done', 10, { children: ['op-000012'] }),
      op(12, 'failed', 10, { parent: 'op-000011' }),
    ];
    expect(expiredOps(ops, now - 7 * day).map((o) => o.id)).toEqual(['op-000001', 'op-000002', 'op-000003', 'op-000011', 'op-000012']);
    expect(expiredOps(ops, now - 30 * day)).toEqual([]);
  });

  it("job history older than the cutoff, except each job's newest start", () => {
    const line = (job: string, daysAgo: number, event: string) => ({ key: `${job}/${daysAgo}`, job, at: ago(daysAgo * day), event });
    const entries = [
      line('web', 30, 'placed'),
      line('web', 30, 'started'),
      line('web', 20, 'started'),
      line('web', 20, 'exited'),
      line('web', 1, 'stopped'),
      line('db', 9, 'started'),
      line('db', 8, 'removed'),
    ];
    expect(expiredHistory(entries, now - 7 * day).map((e) => e.key)).toEqual(['web/30', 'web/30', 'web/20', 'db/8']);
    expect(expiredHistory(entries, now - 7 * day).map((e) => e.event)).toEqual(['placed', 'started', 'exited', 'removed']);
  });

  it('the retention setting: KNARR_OP_RETENTION, else opRetention in the file, else 7 days; a bad one names where it came from', () => {
    expect(resolveConfig({}, {}, {}, null, '/').opRetentionMs).toBe(7 * day);
    expect(resolveConfig({}, {}, { opRetention: '30d' }, '/etc/knarr/config.yaml', '/').opRetentionMs).toBe(30 * day);
    expect(resolveConfig({}, { KNARR_OP_RETENTION: '12h' }, { opRetention: '30d' }, null, '/').opRetentionMs).toBe(12 * 3_600_000);
    expect(resolveConfig({}, { KNARR_OP_RETENTION: '0' }, {}, null, '/').opRetentionMs).toBe(0);
    expect(() => resolveConfig({}, { KNARR_OP_RETENTION: 'soon' }, {}, null, '/')).toThrow(/KNARR_OP_RETENTION: "soon" is not an age/);
    expect(() => resolveConfig({}, {}, { opRetention: 'soon' }, '/etc/knarr/config.yaml', '/')).toThrow(
      /\/etc\/knarr\/config.yaml: opRetention: "soon" is not an age/,
    );
  });
});
