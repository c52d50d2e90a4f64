import { describe, expect, it } from 'vitest';
import {
  chain,
  newCommitId,
  parseDotName,
  parseDotRef,
  parseMeta,
  parseRemoteDotRef,
  planTransfer,
  resolveCommit,
  validateMessage,
  COMMIT_ID_RE,
  type CommitRecord,
} from '../../src/core/dots.js';

describe('dot names', () => {
  it('parses DOT and DOT.SUBDOT', () => {
    expect(parseDotRef('DOT', 'myapp')).toEqual({ dot: 'myapp', subdot: null });
    expect(parseDotRef('DOT', 'myapp.postgres')).toEqual({ dot: 'myapp', subdot: 'postgres' });
    expect(parseDotRef('DOT', '9lives_db-1')).toEqual({ dot: '9lives_db-1', subdot: null });
  });
  it.each([
    ['a/b', /contains "\/"/],
    ['a@b', /contains "@"/],
    ['a b', /contains a space/],
    ['a\nb', /contains a newline/],
    ['a\u001bb', /contains a control character/],
    ['a..b', /contains "\.\."/],
    ['-a', /starts with "-"/],
    ['x'.repeat(201), /201 characters long; use at most 200/],
    ['a.b.c', /more than one "\."/],
    ['a.', /empty subdot name/],
    ['.a', /empty dot name/],
    ['', /must not be empty/],
    ['a.__default__', /may use only letters/],
    ['a+b', /may use only letters/],
  ])('refuses %j naming the field', (text, msg) => {
    expect(() => parseDotRef('DOT', text)).toThrow(msg);
    expect(() => parseDotRef('DOT', text)).toThrow(/^DOT: /);
  });
  it('a whole-dot command refuses a subdot', () => {
    expect(() => parseDotName('DOT', 'a.b')).toThrow(/names a subdot/);
  });
  it('parses REMOTE/DOT[@BRANCH]', () => {
    expect(parseRemoteDotRef('--seed', 'hub/myapp')).toEqual({ remote: 'hub', user: null, dot: 'myapp', branch: null });
    expect(parseRemoteDotRef('--seed', 'hub/myapp@exp')).toEqual({ remote: 'hub', user: null, dot: 'myapp', branch: 'exp' });
    expect(() => parseRemoteDotRef('--seed', 'myapp')).toThrow(/not REMOTE\/DOT/);
    expect(parseRemoteDotRef('--seed', 'file:///mnt/usb/dots/myapp@exp')).toEqual({ remote: 'file:///mnt/usb/dots', user: null, dot: 'myapp', branch: 'exp' });
    expect(parseRemoteDotRef('--seed', 'ssh://op@h1/myapp')).toEqual({ remote: 'ssh://op@h1', user: null, dot: 'myapp', branch: null });
    expect(() => parseRemoteDotRef('--seed', 'file:///myapp x')).toThrow(/space/);
    expect(() => parseRemoteDotRef('--seed', 'hub/my app')).toThrow(/space/);
  });
  it('parses --meta and checks messages', () => {
    expect(parseMeta('--meta', ['schema=42', 'note=a=b, c'])).toEqual({ schema: '42', note: 'a=b, c' });
    expect(() => parseMeta('--meta', ['novalue'])).toThrow(/^--meta: /);
    expect(() => validateMessage('--message', undefined)).toThrow(/needs a message/);
    expect(() => validateMessage('--message', '  ')).toThrow(/needs a message/);
  });
});

describe('commits', () => {
  const c = (id: string, parent: string | null): CommitRecord => ({ id, dot: 'd', branch: 'master', parent, message: id, author: 'a', time: '', meta: {} });
  it('ids sort by time and match their pattern', () => {
    const a = newCommitId(1_000, Buffer.from('ffffffff', 'hex'));
    const b = newCommitId(2_000, Buffer.from('00000000', 'hex'));
    expect(a < b).toBe(true);
    expect(a).toMatch(COMMIT_ID_RE);
  });
  it('follows parents from the head', () => {
    const all = new Map([c('1', null), c('2', '1'), c('3', '2'), c('x', '1')].map((r) => [r.id, r]));
    expect(chain(all, '3').map((r) => r.id)).toEqual(['3', '2', '1']);
    expect(chain(all, 'x').map((r) => r.id)).toEqual(['x', '1']);
    expect(chain(all, null)).toEqual([]);
  });
  it('resolves ids and unique prefixes', () => {
    const list = [c('00aaaa1111', null), c('00aaaa2222', null), c('00bbbb3333', null)];
    expect(resolveCommit('--hard', list, '00bb').id).toBe('00bbbb3333');
    expect(() => resolveCommit('--hard', list, '00aaaa')).toThrow(/matches 2 commits/);
    expect(() => resolveCommit('--hard', list, 'zzzz')).toThrow(/no commit "zzzz"/);
  });
});

describe('planTransfer (push and pull)', () => {
  it('sends everything to an empty side', () => {
    expect(planTransfer(['a', 'b'], [])).toEqual({ kind: 'send', base: null, commits: ['a', 'b'] });
  });
  it('sends only what the other side lacks, on top of the newest common commit', () => {
    expect(planTransfer(['a', 'b', 'c'], ['a'])).toEqual({ kind: 'send', base: 'a', commits: ['b', 'c'] });
  });
  it('is up to date when both have the same commits', () => {
    expect(planTransfer(['a', 'b'], ['a', 'b'])).toEqual({ kind: 'up-to-date' });
  });
  it('refuses when the other side has commits this side lacks', () => {
    expect(planTransfer(['a', 'b'], ['a', 'x'])).toEqual({ kind: 'diverged', common: 'a', fromOnly: ['b'], toOnly: ['x'] });
    expect(planTransfer(['a'], ['a', 'b'])).toEqual({ kind: 'diverged', common: 'a', fromOnly: [], toOnly: ['b'] });
  });
});
