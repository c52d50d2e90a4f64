import { describe, expect, it } from 'vitest';
import {
  containerName,
  hostsFile,
  subnetAddress,
  subnetBroadcast,
  subnetGateway,
  userSubnet,
  validateAuthorizedKeys,
  validateClusterName,
  validateClusterSize,
  validateNodeIndex,
  validateUser,
} from '../../src/core/cluster.js';
import { describeOp, isOpId, isTerminal, newOp, opId } from '../../src/core/ops.js';
import { lxcConfig } from '../../src/host/lxc.js';
import { resolveConfig } from '../../src/core/config.js';

describe('cluster names, sizes and users', () => {
  it('accepts sizes 1..64 and refuses the rest, naming the field', () => {
    expect(validateClusterSize('--size', '3')).toBe(3);
    expect(validateClusterSize('--size', '64')).toBe(64);
    for (const bad of ['0', '-1', '10000', '1.5', 'x', undefined]) expect(() => validateClusterSize('--size', bad)).toThrow(/--size: .* is not a cluster size/);
  });
  it('refuses "/", spaces, a leading dash and names over 64 characters', () => {
    expect(validateClusterName('NAME', 'lab-1')).toBe('lab-1');
    for (const bad of ['a/b', 'a b', '-x', 'A', '']) expect(() => validateClusterName('NAME', bad)).toThrow(/NAME: /);
    expect(() => validateClusterName('NAME', 'c'.repeat(65))).toThrow(/at most 64 characters/);
  });
  it('user names have no dash, so user-id-node names stay unambiguous', () => {
    expect(validateUser('--user', 'alice_2')).toBe('alice_2');
    expect(() => validateUser('--user', 'a-1')).toThrow(/no "-"/);
    expect(containerName('alice', 12, 3)).toBe('alice-12-3');
  });
  it('nodes by index or hostname', () => {
    expect(validateNodeIndex('NODE', '2')).toBe(2);
    expect(validateNodeIndex('NODE', 'host-7')).toBe(7);
    expect(() => validateNodeIndex('NODE', 'node2')).toThrow(/NODE/);
  });
});

describe('subnets and the hosts file', () => {
  it('a user /24 inside the fleet /16, gateway .1, broadcast .255', () => {
    const s = userSubnet('10.240.0.0/16', 7);
    expect(s).toBe('10.240.7.0/24');
    expect(subnetGateway(s)).toBe('10.240.7.1');
    expect(subnetBroadcast(s)).toBe('10.240.7.255');
    expect(subnetAddress(s, 2)).toBe('10.240.7.2');
    expect(() => userSubnet('10.240.0.0/16', 255)).toThrow();
  });
  it('lists every node as "ip host-N host-N.cluster"', () => {
    expect(
      hostsFile('lab', [
        { hostname: 'host-0', ip: '10.1.2.2' },
        { hostname: 'host-1', ip: '10.1.2.3' },
      ]),
    ).toBe('127.0.0.1 localhost\n10.1.2.2 host-0 host-0.lab\n10.1.2.3 host-1 host-1.lab\n');
  });
  it('takes public keys and refuses a private key', () => {
    expect(validateAuthorizedKeys('--authorized-keys', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA me@host\n')).toBe(
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA me@host\n',
    );
    expect(() => validateAuthorizedKeys('--authorized-keys', '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n')).toThrow(/private key/);
    expect(() => validateAuthorizedKeys('--authorized-keys', 'hello world\n')).toThrow(/not an authorized_keys line/);
  });
  it('the cluster network and bridge come from the config file, and KNARR_CLUSTER_* wins', () => {
    const file = { cluster: { network: '10.50.0.0/16', bridge: 'br-lab' } };
    expect(resolveConfig({}, {}, file, null, '/').cluster).toEqual({ network: '10.50.0.0/16', bridge: 'br-lab', user: null });
    expect(resolveConfig({}, { KNARR_CLUSTER_NETWORK: '10.60.0.0/16' }, file, null, '/').cluster.network).toBe('10.60.0.0/16');
    expect(() => resolveConfig({}, { KNARR_CLUSTER_NETWORK: '10.60.1.0/24' }, {}, null, '/')).toThrow(/^KNARR_CLUSTER_NETWORK: .* is not a \/16/);
    expect(() => resolveConfig({}, { KNARR_CLUSTER_BRIDGE: 'a-very-long-bridge-name' }, {}, null, '/')).toThrow(/^KNARR_CLUSTER_BRIDGE: /);
  });
});

describe("a node's LXC config", () => {
  const base = {
    name: 'alice-1-0',
    hostname: 'host-0',
    image: '/pool/knarr-images/base/rootfs',
    upper: '/pool/knarr-clusters/alice-1-0/delta',
    bridge: 'knarrbr0',
    address: '10.240.1.2/24',
    broadcast: '10.240.1.255',
    gateway: '10.240.1.1',
    mounts: [
      { source: '/pool/knarr-users/alice/hosts/1', target: 'etc/hosts', readOnly: true, kind: 'file' as const },
      { source: '/pool/knarr-users/alice/data', target: '/nfs', readOnly: false, kind: 'dir' as const },
    ],
    memoryBytes: 128 * 1024 * 1024,
    cpuMillis: 500,
    cgroup2: false,
  };
  it('an overlay rootfs over the base, a static address on the bridge, relative bind targets', () => {
    const text = lxcConfig(base);
    expect(text).toContain('lxc.rootfs.path = overlay:/pool/knarr-images/base/rootfs:/pool/knarr-clusters/alice-1-0/delta\n');
    expect(text).toContain('lxc.uts.name = host-0\n');
    expect(text).toContain('lxc.net.0.ipv4.address = 10.240.1.2/24 10.240.1.255\n');
    expect(text).toContain('lxc.mount.entry = /pool/knarr-users/alice/hosts/1 etc/hosts none bind,ro,create=file 0 0\n');
    expect(text).toContain('lxc.mount.entry = /pool/knarr-users/alice/data nfs none bind,create=dir 0 0\n');
  });
  it('cgroup v1 keys on hybrid hosts, cgroup2 keys on unified ones', () => {
    expect(lxcConfig(base)).toContain('lxc.cgroup.memory.limit_in_bytes = 134217728\n');
    expect(lxcConfig(base)).toContain('lxc.cgroup.cpu.cfs_quota_us = 50000\n');
    const v2 = lxcConfig({ ...base, cgroup2: true });
    expect(v2).toContain('lxc.cgroup2.memory.max = 134217728\n');
    expect(v2).toContain('lxc.cgroup2.cpu.max = 50000 100000\n');
  });
});

describe('operations', () => {
  it('ids sort in order; terminal states; one line per operation', () => {
    expect(opId(42)).toBe('op-000042');
    expect([opId(9), opId(10)].sort()).toEqual(['op-000009', 'op-000010']);
    expect(isOpId('op-000042')).toBe(true);
    expect(isOpId('42')).toBe(false);
    expect(['queued', 'running', 'done', 'failed', 'cancelled'].map((s) => isTerminal(s as never))).toEqual([false, false, true, true, true]);
    const op = {
      ...newOp(3, 'cluster.create', { name: 'lab' }, 'h1'),
      status: 'running' as const,
      progress: { done: 2, total: 5, message: 'starting host-2' },
    };
    expect(describeOp(op)).toBe('op-000003 cluster.create running 2/5 starting host-2');
  });
});
