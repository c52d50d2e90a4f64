import { describe, expect, it } from 'vitest';
import { clustersToInit, type ClusterRecord } from '../../src/core/cluster.js';
import { firstAddress } from '../../src/host/docker.js';

describe('a docker network gateway when the engine names none', () => {
  it.each([
    ['172.17.0.0/16', '172.17.0.1'],
    ['10.251.77.0/24', '10.251.77.1'],
    ['10.251.77.128/25', '10.251.77.129'],
    // A subnet written with host bits set still starts at its network address.
    ['192.168.5.77/24', '192.168.5.1'],
    ['10.0.0.0/8', '10.0.0.1'],
  ])('%s -> %s', (cidr, gateway) => {
    expect(firstAddress(cidr)).toBe(gateway);
  });
});

describe('the clusters a joining host acts on', () => {
  const c = (name: string, host: string, status: ClusterRecord['status'], nodeHosts: string[] = [host]) =>
    ({ name, host, status, user: 'alice', nodes: nodeHosts.map((h) => ({ host: h })) }) as ClusterRecord;
  const all = [
    c('a', 'h1', 'running'),
    c('b', 'h1', 'stopped'),
    c('c', 'h2', 'running'),
    c('d', 'h2', 'running', ['h2', 'h1']),
    c('e', 'h2', 'stopped', ['h1']),
  ];
  it("recovery starts this host's nodes of running clusters, whatever their home; new deletes the clusters whose home it is", () => {
    expect(clustersToInit(all, 'h1', 'recovery').map((x) => x.name)).toEqual(['a', 'd']);
    expect(clustersToInit(all, 'h1', 'new').map((x) => x.name)).toEqual(['a', 'b']);
    expect(clustersToInit(all, 'h3', 'new')).toEqual([]);
  });
});
