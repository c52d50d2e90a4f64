import { describe, expect, it } from 'vitest';
import { restartGraceMs, type HostRecord } from '../../src/core/hosts.js';

const host = (over: Partial<HostRecord>): HostRecord => ({
  name: 'h1',
  address: 'http://10.0.0.1:7946',
  dockerEndpoint: 'unix:///var/run/docker.sock',
  tags: [],
  capacity: { cpu: 2000, memory: 1 << 30 },
  load: { runningJobs: 0, freeMemory: 1 << 29 },
  state: 'ok',
  joinedAt: '2026-01-01T00:00:00Z',
  updatedAt: '2026-01-01T00:00:00Z',
  ...over,
});

describe('the restart grace of a host that is down', () => {
  it("is its agent's --restart-grace; none when it left, or when its agent predates the grace", () => {
    expect(restartGraceMs(host({ restartGraceSeconds: 30 }))).toBe(30_000);
    expect(restartGraceMs(host({ restartGraceSeconds: 30, state: 'draining' }))).toBe(30_000);
    expect(restartGraceMs(host({ restartGraceSeconds: 30, state: 'left' }))).toBe(0);
    expect(restartGraceMs(host({}))).toBe(0);
  });
});
