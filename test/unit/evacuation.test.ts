import { describe, expect, it } from 'vitest';
import { GiB, hostView } from '../harness/host-views.js';
import { planEvacuation, unplacedText, type EvacuationJob, type EvacuationNode } from '../../src/core/evacuation.js';
import type { JobRequest } from '../../src/core/scheduler.js';

const host = hostView;
const request = (name: string, over: Partial<JobRequest> = {}): JobRequest => ({
  name,
  cpu: 0,
  memory: 0,
  ports: [],
  tags: [],
  fixed: false,
  history: [],
  ...over,
});
const job = (name: string, over: Partial<JobRequest> = {}, more: Partial<EvacuationJob> = {}): EvacuationJob => ({
  name,
  request: request(name, over),
  allowed: null,
  stays: null,
  ...more,
});
const node = (n: number, over: Partial<EvacuationNode> = {}): EvacuationNode => ({
  user: 'alice',
  cluster: 'lab',
  node: n,
  container: `alice-1-${n}`,
  cpu: 0,
  memory: 0,
  allowed: null,
  peers: [],
  blocked: null,
  ...over,
});

describe('planEvacuation', () => {
  it('moves jobs and nodes to the other hosts, never to the evacuated one, and lists what stays with why', () => {
    const plan = planEvacuation(
      'h1',
      [host('h1'), host('h2'), host('h3', { draining: true }), host('h4', { up: false })],
      [job('web'), job('db', {}, { stays: 'fixed: its data is on h1' }), job('api')],
      [node(0)],
    );
    expect(plan.moves).toEqual([
      { job: 'api', to: 'h2' },
      { job: 'web', to: 'h2' },
    ]);
    expect(plan.staying).toEqual([{ job: 'db', why: 'fixed: its data is on h1' }]);
    expect(plan.migrations).toEqual([{ user: 'alice', cluster: 'lab', node: 0, container: 'alice-1-0', to: 'h2' }]);
    expect(plan.unplaced).toEqual([]);
  });

  it('books each placement, so two jobs do not both take the last room on a host', () => {
    const plan = planEvacuation(
      'h1',
      [host('h1'), host('h2', { memory: 3 * GiB }), host('h3', { memory: 3 * GiB })],
      [job('a', { memory: 2 * GiB }), job('b', { memory: 2 * GiB })],
      [],
    );
    expect(new Set(plan.moves.map((m) => m.to))).toEqual(new Set(['h2', 'h3']));
    // A published port is taken once on a host too.
    const ports = planEvacuation('h1', [host('h1'), host('h2'), host('h3')], [job('a', { ports: ['80/tcp'] }), job('b', { ports: ['80/tcp'] })], []);
    expect(new Set(ports.moves.map((m) => m.to))).toEqual(new Set(['h2', 'h3']));
  });

  it('places the biggest first, so a large node is not left without room by small jobs', () => {
    const plan = planEvacuation(
      'h1',
      [host('h1'), host('h2', { memory: 4 * GiB }), host('h3', { memory: 2 * GiB })],
      [job('small1', { memory: GiB }), job('small2', { memory: GiB })],
      [node(0, { memory: 4 * GiB })],
    );
    expect(plan.unplaced).toEqual([]);
    expect(plan.migrations[0]!.to).toBe('h2');
    expect(plan.moves.map((m) => m.to)).toEqual(['h3', 'h3']);
  });

  it('keeps a job that uses dots to the hosts that have them', () => {
    const plan = planEvacuation('h1', [host('h1'), host('h2'), host('h3')], [job('d', {}, { allowed: ['h3'] })], []);
    expect(plan.moves).toEqual([{ job: 'd', to: 'h3' }]);
    const none = planEvacuation('h1', [host('h1'), host('h2')], [job('d', {}, { allowed: [] })], []);
    expect(unplacedText(none)).toBe('job d (h2: not a host that has every dot it uses)');
    const image = planEvacuation('h1', [host('h1'), host('h2'), host('h3')], [], [node(0, { allowed: ['h3'] })]);
    expect(image.migrations.map((m) => m.to)).toEqual(['h3']);
  });

  it('names what cannot be placed, with each host reason', () => {
    const plan = planEvacuation('h1', [host('h1'), host('h2', { draining: true }), host('h3', { memory: GiB })], [job('big', { memory: 2 * GiB })], [node(1)]);
    expect(plan.moves).toEqual([]);
    expect(plan.migrations.map((m) => m.to)).toEqual(['h3']);
    expect(plan.unplaced).toEqual([{ what: 'job big', why: expect.stringMatching(/^h2: host is draining; h3: not enough memory/) }]);
    const busy = planEvacuation('h1', [host('h1'), host('h2')], [job('w')], [node(0, { blocked: 'cluster alice/lab has op-000009 (cluster.stop) running' })]);
    expect(busy.moves).toEqual([{ job: 'w', to: 'h2' }]);
    expect(unplacedText(busy)).toBe('node 0 of cluster alice/lab (alice-1-0) (cluster alice/lab has op-000009 (cluster.stop) running)');
    const alone = planEvacuation('h1', [host('h1')], [], [node(0)]);
    expect(unplacedText(alone)).toBe('node 0 of cluster alice/lab (alice-1-0) (there is no other host in the fleet)');
  });

  it("spreads a cluster's nodes over the hosts left, counting its nodes that stay", () => {
    const both = planEvacuation('h1', [host('h1'), host('h2'), host('h3')], [], [node(0), node(1)]);
    expect(both.migrations.map((m) => m.to).sort()).toEqual(['h2', 'h3']);
    const peer = planEvacuation('h1', [host('h1'), host('h2'), host('h3')], [], [node(1, { peers: ['h2'] })]);
    expect(peer.migrations.map((m) => m.to)).toEqual(['h3']);
    // A node with no limits counts as cluster placement's defaults: a host with no room left takes none.
    const full = planEvacuation('h1', [host('h1'), host('h2', { usedMemory: 8 * GiB })], [], [node(0)]);
    expect(unplacedText(full)).toMatch(/^node 0 of cluster alice\/lab \(alice-1-0\) \(h2: not enough memory/);
  });
});
