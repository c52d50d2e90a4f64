import { describe, expect, it } from 'vitest';
import {
  backoffMs,
  formatJoinToken,
  initialCluster,
  memberIdHex,
  parseJoinToken,
  removeBreaksQuorum,
  retryableMembershipError,
  validateAdvertiseIp,
  validateJoinUrl,
  type MemberRow,
} from '../../src/core/etcd-cluster.js';
import { ValidationError } from '../../src/core/errors.js';

const row = (id: string, healthy: boolean, learner = false): MemberRow => ({
  id,
  name: id,
  peerUrls: [],
  clientUrls: [],
  learner,
  started: true,
  leader: false,
  healthy,
  dbBytes: null,
  error: null,
});

describe('join tokens', () => {
  it('round-trip, and refuse anything else naming the field', () => {
    const t = { caHash: 'ab'.repeat(32), secret: Buffer.alloc(32, 9) };
    expect(parseJoinToken('--token', formatJoinToken(t))).toEqual(t);
    expect(parseJoinToken('--token', ` ${formatJoinToken(t)}\n`)).toEqual(t);
    for (const bad of ['', 'knarr1.ab.cd', `knarr2.${'a'.repeat(64)}.${Buffer.alloc(32).toString('base64url')}`, `knarr1.${'A'.repeat(64)}.x`]) {
      expect(() => parseJoinToken('--token', bad)).toThrow(ValidationError);
    }
    expect(() => parseJoinToken('--token', `knarr1.${'a'.repeat(64)}.${Buffer.alloc(31).toString('base64url')}`)).toThrow(/32 bytes/);
  });
});

describe('URLs and addresses', () => {
  it('a join URL is https://HOST:PORT', () => {
    expect(validateJoinUrl('URL', 'https://10.0.0.1:2379/')).toBe('https://10.0.0.1:2379');
    for (const bad of ['http://10.0.0.1:2379', 'https://10.0.0.1', 'https://10.0.0.1:2379/v3', 'nonsense'])
      expect(() => validateJoinUrl('URL', bad)).toThrow(ValidationError);
  });
  it('an advertised address is a concrete IP', () => {
    expect(validateAdvertiseIp('--advertise', '10.0.0.1')).toBe('10.0.0.1');
    expect(validateAdvertiseIp('--advertise', 'fd00::1')).toBe('fd00::1');
    for (const bad of ['0.0.0.0', '::', '10.0.0.256', 'host1', '']) expect(() => validateAdvertiseIp('--advertise', bad)).toThrow(ValidationError);
  });
});

describe('membership', () => {
  it('member IDs beyond 2^53 keep every digit', () => {
    expect(memberIdHex('13528029383243363236')).toBe('bbbd370cab4473a4');
  });
  it('the initial cluster of a joiner: the started members and itself, not other unstarted learners', () => {
    const members = [
      { ID: '1', name: 'h1', peerURLs: ['https://10.0.0.1:2380'] },
      { ID: '2', name: '', peerURLs: ['https://10.0.0.9:2380'] },
    ];
    expect(initialCluster(members, { name: 'h2', peerUrl: 'https://10.0.0.2:2380' })).toBe('h1=https://10.0.0.1:2380,h2=https://10.0.0.2:2380');
  });
  it('removal below quorum is seen: healthy voters left against the quorum of those left', () => {
    const three = [row('a', true), row('b', true), row('c', false)];
    expect(removeBreaksQuorum(three, 'a')).toBe(true);
    expect(removeBreaksQuorum(three, 'c')).toBe(false);
    expect(removeBreaksQuorum([row('a', true), row('b', true), row('c', true)], 'a')).toBe(false);
    expect(removeBreaksQuorum([row('a', true), row('l', false, true)], 'l')).toBe(false);
    expect(removeBreaksQuorum([row('a', true)], 'a')).toBe(true);
  });
  it('retries what etcd says a later try gets past, and nothing else', () => {
    expect(retryableMembershipError('Error: etcdserver: too many learner members in cluster')).toBe(true);
    expect(retryableMembershipError('Error: etcdserver: unhealthy cluster')).toBe(true);
    expect(retryableMembershipError('Error: etcdserver: can only promote a learner member which is in sync with leader')).toBe(true);
    expect(retryableMembershipError('Error: etcdserver: Peer URLs already exists')).toBe(false);
    expect(retryableMembershipError('Error: etcdserver: member not found')).toBe(false);
  });
  it('backoff grows to a cap, with jitter', () => {
    expect(backoffMs(0, () => 0.5)).toBe(200);
    expect(backoffMs(10, () => 0.5)).toBe(3000);
    expect(backoffMs(10, () => 0)).toBe(1500);
  });
});
