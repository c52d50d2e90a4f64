import { describe, expect, it } from 'vitest';
import { parsePushTarget, parseRemoteDotRef } from '../../src/core/dots.js';
import { parseRemoteRecord } from '../../src/state/dots.js';
import { hubHostUrl, mergeManifests, parseRemoteUrl, type Manifest } from '../../src/core/remote.js';

describe('hub remote URLs', () => {
  it.each([
    ['https://hub.example:7946', { base: 'https://hub.example:7946', user: null, url: 'https://hub.example:7946' }],
    ['https://hub.example:7946/', { base: 'https://hub.example:7946', user: null, url: 'https://hub.example:7946' }],
    ['https://hub.example:7946/justincormack', { base: 'https://hub.example:7946', user: 'justincormack', url: 'https://hub.example:7946/justincormack' }],
    ['https://hub.example', { base: 'https://hub.example:443', user: null }],
    ['http://10.0.0.5', { base: 'http://10.0.0.5:80', user: null }],
    ['http://10.0.0.5:8080/ann/', { base: 'http://10.0.0.5:8080', user: 'ann', url: 'http://10.0.0.5:8080/ann' }],
    ['https://HUB.Example:7946/ann', { base: 'https://hub.example:7946', user: 'ann' }],
    ['https://[::1]:7946/ann', { base: 'https://[::1]:7946', user: 'ann' }],
  ])('%s is a hub remote', (text, want) => {
    expect(parseRemoteUrl('URL', text)).toMatchObject({ kind: 'hub', ...want });
  });

  it.each([
    ['https://hub.example:7946/ann/postgres', /more than one path segment/],
    ['https://ann:secret@hub.example', /token file/],
    ['https://ann@hub.example', /token file/],
    ['https://hub.example/Ann', /not a hub user name/],
    ['https://hub.example/-ann', /not a hub user name/],
    ['https://hub.example/a%2Fb', /not a hub user name/],
    ['https://hub.example/?x=1', /query or fragment/],
    ['https://hub.example/#top', /query or fragment/],
    ['https://hub.example:99999', /is not a URL/],
    ['https://hub.example:0', /port 0/],
    ['https://hub_example.com', /is not a host name/],
    ['ftp://hub.example', /"ftp" remotes are not supported/],
  ])('%s is refused naming the field', (text, message) => {
    expect(() => parseRemoteUrl('URL', text)).toThrow(message);
    expect(() => parseRemoteUrl('URL', text)).toThrow(/^URL: /);
  });

  it('a bare hub host is https on port 7946', () => {
    expect(hubHostUrl('dothub.com', 'justincormack')).toBe('https://dothub.com:7946/justincormack');
    expect(parseRemoteUrl('--seed', hubHostUrl('dothub.com', null))).toMatchObject({ base: 'https://dothub.com:7946', user: null });
  });
});

describe('hub refs', () => {
  it.each([
    ['hub/justincormack/postgres', { remote: 'hub', user: 'justincormack', dot: 'postgres', branch: null }],
    ['hub/justincormack/postgres@exp', { remote: 'hub', user: 'justincormack', dot: 'postgres', branch: 'exp' }],
    ['hub/postgres', { remote: 'hub', user: null, dot: 'postgres', branch: null }],
    ['dothub.com/justincormack/postgres', { remote: 'dothub.com', user: 'justincormack', dot: 'postgres', branch: null }],
    ['dothub.com/justincormack/postgres@v2', { remote: 'dothub.com', user: 'justincormack', dot: 'postgres', branch: 'v2' }],
    ['10.0.0.5/ann/pg', { remote: '10.0.0.5', user: 'ann', dot: 'pg', branch: null }],
    ['my.remote/pg', { remote: 'my.remote', user: null, dot: 'pg', branch: null }],
    ['https://hub.example:7946/justincormack/postgres', { remote: 'https://hub.example:7946/justincormack', user: null, dot: 'postgres', branch: null }],
    ['https://hub.example:7946/justincormack/postgres@exp', { remote: 'https://hub.example:7946/justincormack', user: null, dot: 'postgres', branch: 'exp' }],
    ['http://10.0.0.5:7946/pg', { remote: 'http://10.0.0.5:7946', user: null, dot: 'pg', branch: null }],
  ])('pull and seed: %s', (text, want) => {
    expect(parseRemoteDotRef('--seed', text)).toEqual(want);
  });

  it.each([
    ['hub/Justin/postgres', /not a hub user name/],
    ['hub/a/b/c', /is not REMOTE\/DOT\[@BRANCH\] or REMOTE\/USER\/DOT/],
    ['/ann/pg', /is not REMOTE\/DOT/],
    ['hub//pg', /not a hub user name/],
    ['hub/ann/', /must not be empty|empty/],
    ['hub/ann/pg.sub', /names a subdot/],
    ['hub/ann/pg@', /must not be empty/],
    ['dothub.com/ann/my pg', /space/],
    ['-x/ann/pg', /starts with "-"/],
    ['https://hub.example:7946', /names no dot/],
  ])('%s is refused naming the field', (text, message) => {
    expect(() => parseRemoteDotRef('--seed', text)).toThrow(message);
    expect(() => parseRemoteDotRef('--seed', text)).toThrow(/^--seed: /);
  });

  it.each([
    ['hub', { remote: 'hub', user: null, dot: null }],
    ['hub/ann/postgres', { remote: 'hub', user: 'ann', dot: 'postgres' }],
    ['dothub.com', { remote: 'dothub.com', user: null, dot: null }],
    ['dothub.com/ann/pg', { remote: 'dothub.com', user: 'ann', dot: 'pg' }],
    ['https://hub.example:7946', { remote: 'https://hub.example:7946', user: null, dot: null }],
    ['https://hub.example:7946/ann', { remote: 'https://hub.example:7946/ann', user: null, dot: null }],
    ['https://hub.example:7946/ann/pg', { remote: 'https://hub.example:7946/ann', user: null, dot: 'pg' }],
    ['file:///mnt/usb/dots', { remote: 'file:///mnt/usb/dots', user: null, dot: null }],
  ])('push target: %s', (text, want) => {
    expect(parsePushTarget('REMOTE', text)).toEqual(want);
  });

  it.each([
    ['hub/ann', /neither REMOTE nor REMOTE\/USER\/NAME/],
    ['hub/ann/pg/x', /neither REMOTE nor REMOTE\/USER\/NAME/],
    ['hub/ANN/pg', /not a hub user name/],
    ['hub/ann/pg@exp', /--branch/],
    ['', /must not be empty/],
    ['h b', /space/],
  ])('push target %j is refused naming the field', (text, message) => {
    expect(() => parsePushTarget('REMOTE', text)).toThrow(message);
    expect(() => parsePushTarget('REMOTE', text)).toThrow(/^REMOTE: /);
  });
});

describe('remote records', () => {
  it('a plain URL record (written before hub remotes) is read as {url}', () => {
    expect(parseRemoteRecord('file:///mnt/usb')).toEqual({ url: 'file:///mnt/usb' });
    expect(parseRemoteRecord('{"url":"https://h:7946","tokenFile":"/t","caFile":"/ca"}')).toEqual({ url: 'https://h:7946', tokenFile: '/t', caFile: '/ca' });
    expect(parseRemoteRecord('{"url":"https://h:7946","tokenFile":7}')).toEqual({ url: 'https://h:7946' });
  });
});

describe('manifest merge after another push landed', () => {
  const m = (branches: Record<string, string[]>, subdots = ['__default__']): Manifest => ({
    version: 2,
    dot: 'pg',
    format: 'zfs',
    subdots,
    branches: Object.fromEntries(Object.entries(branches).map(([b, c]) => [b, { commits: c }])),
    commits: Object.fromEntries(
      Object.values(branches)
        .flat()
        .map((id) => [id, { record: { id } as never, base: null, file: id, bytes: 1, sha256: id }]),
    ),
    updatedAt: '',
  });

  it('keeps both when one line starts the other, and the other branches', () => {
    const r = mergeManifests(m({ master: ['a', 'b', 'c'] }), m({ master: ['a', 'b'], exp: ['a', 'x'] }, ['redis']));
    expect('merged' in r && r.merged.branches).toEqual({ master: { commits: ['a', 'b', 'c'] }, exp: { commits: ['a', 'x'] } });
    expect('merged' in r && Object.keys(r.merged.commits).sort()).toEqual(['a', 'b', 'c', 'x']);
    expect('merged' in r && r.merged.subdots).toEqual(['__default__', 'redis']);
  });

  it('takes theirs where it went further on our line', () => {
    const r = mergeManifests(m({ master: ['a'] }), m({ master: ['a', 'b'] }));
    expect('merged' in r && r.merged.branches.master!.commits).toEqual(['a', 'b']);
  });

  it('refuses a branch both moved their own way, naming the commits', () => {
    expect(mergeManifests(m({ master: ['a', 'b'] }), m({ master: ['a', 'c', 'd'] }))).toEqual({
      diverged: { branch: 'master', oursOnly: ['b'], theirsOnly: ['c', 'd'] },
    });
  });
});
