import { describe, expect, it } from 'vitest';
import { gatewayGuardArgv, peerEndpoints, planFloodPeers, validateVtepIp, vxlanDevice } from '../../src/core/vxlan.js';

describe('VXLAN planning', () => {
  it("names the device within the kernel's 15 characters", () => {
    expect(vxlanDevice('knarrbr0')).toBe('knarrbr0vx');
    expect(vxlanDevice('a-fifteen-chars').length).toBeLessThanOrEqual(15);
  });

  it('floods to exactly the other hosts: adds the new, removes the gone, never itself', () => {
    expect(planFloodPeers(['10.0.0.2', '10.0.0.9'], ['10.0.0.1', '10.0.0.2', '10.0.0.3'], '10.0.0.1')).toEqual({ add: ['10.0.0.3'], remove: ['10.0.0.9'] });
    expect(planFloodPeers(['10.0.0.2'], ['10.0.0.2', '10.0.0.2'], '10.0.0.1')).toEqual({ add: [], remove: [] });
  });

  it('leaves out hosts on another VNI or port, and this host', () => {
    const r = (host: string, ip: string, vni = 7946, port = 4789) => ({ host, ip, vni, port });
    expect(peerEndpoints([r('a', '10.0.0.1'), r('b', '10.0.0.2'), r('c', '10.0.0.3', 1), r('d', '10.0.0.4', 7946, 8472)], 'a', 7946, 4789)).toEqual([
      '10.0.0.2',
    ]);
  });

  it('refuses an endpoint other hosts cannot reach, naming the field', () => {
    expect(() => validateVtepIp('--advertise', '127.0.0.1')).toThrow(/--advertise.*not reachable/);
    expect(() => validateVtepIp('--advertise', '10.0.0.256')).toThrow(/not an IPv4 address/);
    expect(validateVtepIp('--advertise', '10.0.0.7')).toBe('10.0.0.7');
  });

  it('guards every gateway in one nft transaction that works with or without the table', () => {
    const argv = gatewayGuardArgv('knarrbr0vx', ['10.240.2.1', '10.240.1.1']);
    expect(argv[0]).toBe('nft');
    expect(argv.join(' ')).toContain('add table bridge knarr_knarrbr0vx ; delete table bridge knarr_knarrbr0vx ; add table');
    expect(argv.join(' ')).toContain('oifname knarrbr0vx arp daddr ip { 10.240.1.1, 10.240.2.1 } drop');
    expect(argv.at(-1)).toBe('drop');
    expect(() => gatewayGuardArgv('knarrbr0vx', [])).toThrow();
  });
});
