import { describe, expect, it } from 'vitest';
import { parseBalancer } from '../../src/state/balancers.js';
import { fleetKeys } from '../../src/state/keys.js';

describe('balancer records', () => {
  it('parses a record and refuses what is not one (a foreign or damaged value is not served)', () => {
    const r = { env: 'shop', member: 'shop-balancer-1', port: 0, backends: ['shop-web-1-80'], state: 'running' };
    expect(parseBalancer(JSON.stringify(r))).toEqual(r);
    expect(parseBalancer(JSON.stringify({ ...r, extra: 1 }))).toEqual(r);
    for (const bad of [
      { ...r, state: 'gone' },
      { ...r, port: -1 },
      { ...r, port: 1.5 },
      { ...r, backends: [1] },
      { ...r, env: undefined },
    ])
      expect(parseBalancer(JSON.stringify(bad))).toBeNull();
    expect(parseBalancer('{')).toBeNull();
  });

  it('is filed by host, then environment', () => {
    const k = fleetKeys('f');
    expect(k.balancer('h1', 'shop')).toBe('/knarr/f/balancers/h1/shop');
    expect(k.balancer('h1', 'shop').startsWith(k.hostBalancers('h1'))).toBe(true);
    expect(k.hostBalancers('h1').startsWith(k.balancers)).toBe(true);
  });
});
