import type { HostView } from '../../src/core/scheduler.js';

export const GiB = 1024 ** 3;

/** A scheduler's view of a host for unit tests: 4 cores, 8 GiB, empty, up; over changes any field. */
export const hostView = (name: string, over: Partial<HostView> = {}): HostView => ({
  name,
  tags: [],
  cpu: 4000,
  memory: 8 * GiB,
  usedCpu: 0,
  usedMemory: 0,
  runningJobs: 0,
  ports: new Set(),
  draining: false,
  up: true,
  ...over,
});
