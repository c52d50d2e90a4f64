import { describe, expect, it } from 'vitest';
import { newOp, opTarget, shortValue } from '../../src/core/ops.js';

describe('what an operation acts on, in words', () => {
  it.each([
    ['cluster.create', { user: 'alice', name: 'lab', size: 3 }, 'h1', 'cluster alice/lab'],
    ['cluster.delete', { user: 'bob', name: 'x' }, 'h1', 'cluster bob/x'],
    ['image.save', { user: 'alice', name: 'lab', node: 2, image: 'snap', host: 'h1' }, 'h1', 'image snap (from alice/lab node 2)'],
    ['host.init', { mode: 'new' }, 'h7', 'host h7'],
    ['job.move', { name: 'web' }, 'h1', 'job web'],
    ['other.kind', {}, 'h2', 'host h2'],
  ])('%s %o on %s: %s', (kind, args, host, target) => {
    expect(opTarget(newOp(1, kind, args, host))).toBe(target);
  });

  it('short values: k=v pairs, lists, nested objects as JSON, long ones cut', () => {
    expect(shortValue({ user: 'a', size: 3, on: true, none: null })).toBe('user=a size=3 on=true none=-');
    expect(shortValue({ ips: { a: '10.0.0.2' } })).toBe('ips={"a":"10.0.0.2"}');
    expect(shortValue(['a', 'b'])).toBe('a, b');
    expect(shortValue({})).toBe('-');
    expect(shortValue('x'.repeat(200), 10)).toBe(`${'x'.repeat(9)}…`);
  });
});
