import { describe, expect, it } from 'vitest';
import { fitWidths, relativeTime, renderResult, renderTable, renderView } from '../../src/cli/render.js';
import { timeCell, type View } from '../../src/commands/types.js';

const now = Date.parse('2026-03-10T12:00:00Z');
const ago = (ms: number) => new Date(now - ms).toISOString();

describe('relative times', () => {
  const cases: [string, string | number | null, string][] = [
    ['seconds', ago(42_000), '42s ago'],
    ['minutes', ago(5 * 60_000 + 30_000), '5m ago'],
    ['hours up to two days', ago(47 * 3_600_000), '47h ago'],
    ['days', ago(3 * 86_400_000), '3d ago'],
    ['years', ago(800 * 86_400_000), '2y ago'],
    ['the future', new Date(now + 2 * 60_000).toISOString(), 'in 2m'],
    ['epoch milliseconds', now - 90_000, '1m ago'],
    ['this very moment', ago(0), 'now'],
    ['no time', null, '-'],
    ['text that is no time', 'soon', 'soon'],
  ];
  for (const [what, time, shown] of cases) it(what, () => expect(relativeTime(time, now)).toBe(shown));

  it('a table and a fields view show time cells relative; JSON and YAML carry the data as it is', async () => {
    const view: View = { kind: 'table', columns: ['NAME', 'CREATED'], rows: [['a', timeCell(ago(5 * 60_000))]] };
    expect(renderView(view, { now })).toBe('NAME  CREATED\na     5m ago\n');
    expect(renderView({ kind: 'fields', fields: [['created', timeCell(ago(3 * 86_400_000))]] }, { now })).toBe('created: 3d ago (2026-03-07T12:00:00.000Z)\n');
    expect(renderView({ kind: 'fields', fields: [['started', timeCell(null)]] }, { now })).toBe('started: -\n');
    const data = { createdAt: ago(5 * 60_000) };
    expect(JSON.parse(await renderResult(data, view, { format: 'json', now }))).toEqual(data);
    expect(await renderResult(data, view, { format: 'yaml', now })).toBe(`createdAt: ${data.createdAt}\n`);
  });
});

describe('-o wide and --no-headers', () => {
  const view: View = { kind: 'table', columns: ['JOB', 'STATE', 'CONTAINER'], rows: [['web', 'running', '0123456789ab']], wide: ['CONTAINER'] };
  it('wide-only columns show under -o wide alone', async () => {
    expect(await renderResult([], view, { format: 'table' })).toBe('JOB  STATE\nweb  running\n');
    expect(await renderResult([], view, { format: 'wide' })).toBe('JOB  STATE    CONTAINER\nweb  running  0123456789ab\n');
  });
  it('--no-headers prints the rows only, sized to the rows', async () => {
    expect(await renderResult([], view, { format: 'table', headers: false })).toBe('web  running\n');
    expect(renderTable(['NAME'], [], { headers: false })).toBe('');
  });
});

describe('tables fit the terminal', () => {
  const columns = ['NAME', 'DRIVER', 'MOUNTPOINT', 'SOURCES'];
  const rows = [
    ['a-pool-with-a-long-name', 'zfs', '/var/lib/knarr/mnt/a-pool-with-a-long-name', '/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S649NF0R123456'],
    ['b', 'dir', '/srv/b', 'directory'],
  ];

  it('the widest columns lose characters first, with an ellipsis; the name column is never cut', () => {
    const text = renderTable(columns, rows, { width: 80 });
    const lines = text.trimEnd().split('\n');
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(80);
    expect(lines[1]).toBe('a-pool-with-a-long-name  zfs     /var/lib/knarr/mnt/a-…  /dev/disk/by-id/nvme-S…');
    expect(lines[2]).toMatch(/^b {24}dir {5}\/srv\/b {2,}directory$/);
  });

  it('a table that fits, or no terminal width at all, is left whole', () => {
    const whole = renderTable(columns, rows);
    expect(whole).not.toContain('…');
    expect(renderTable(columns, rows, { width: 500 })).toBe(whole);
    expect(renderTable(columns, rows, { width: 0 })).toBe(whole);
  });

  it('a tiny terminal stops at each column floor instead of looping or failing', () => {
    for (const width of [1, 5, 20]) {
      const lines = renderTable(columns, rows, { width }).trimEnd().split('\n');
      expect(lines[1]!.startsWith('a-pool-with-a-long-name  ')).toBe(true);
      expect(lines[0]).toBe('NAME                     DRIVER  MOUNTPOINT  SOURCES');
    }
  });

  it('shrinks the widest column to the next widest before touching that one', () => {
    expect(fitWidths(['ID', 'A', 'B'], [4, 30, 20], 4 + 2 + 25 + 2 + 20)).toEqual([4, 25, 20]);
    expect(fitWidths(['ID', 'A', 'B'], [4, 30, 20], 4 + 2 + 15 + 2 + 15)).toEqual([4, 15, 15]);
    expect(fitWidths(['ID', 'NAME', 'B'], [4, 30, 20], 40)).toEqual([4, 30, 6]);
  });
});

describe('the columns that name a row', () => {
  it('are the first titled one by default (a marker column has no title), or those the view keeps', () => {
    expect(fitWidths(['', 'BRANCH', 'FROM'], [1, 20, 20], 30)).toEqual([1, 20, 6]);
    expect(
      renderView(
        { kind: 'table', columns: ['USER', 'CLUSTER', 'IMAGE'], rows: [['u', 'a-long-cluster-name', 'img']], keep: ['USER', 'CLUSTER'] },
        { width: 10 },
      ),
    ).toBe('USER  CLUSTER              IMAGE\nu     a-long-cluster-name  img\n');
  });
});
