import { describe, expect, it } from 'vitest';
import { GiB, hostView } from '../harness/host-views.js';
import type { ClusterRecord } from '../../src/core/cluster.js';
import {
  clusterViews,
  DEFAULT_NODE_CPU,
  DEFAULT_NODE_MEMORY,
  nodeAsk,
  nodeUses,
  placeNodes,
  type NodePlacementRequest,
  type NodeUse,
  type PlaceholderRecord,
} from '../../src/core/cluster-placement.js';

const MiB = 1024 ** 2;
const host = hostView;
const req = (over: Partial<NodePlacementRequest> = {}): NodePlacementRequest => ({
  cluster: 'alice/lab',
  size: 3,
  cpu: 0,
  memory: 0,
  strategy: 'spread',
  tags: [],
  ...over,
});

describe('what a node asks for', () => {
  it('is its limits, or small defaults where it has none', () => {
    expect(nodeAsk(0, 0)).toEqual({ cpu: DEFAULT_NODE_CPU, memory: DEFAULT_NODE_MEMORY });
    expect(nodeAsk(2000, 512 * MiB)).toEqual({ cpu: 2000, memory: 512 * MiB });
  });
});

describe('spread', () => {
  it('puts nodes on as many hosts as fit, even when one host is far bigger', () => {
    const p = placeNodes([host('big', { cpu: 64_000, memory: 256 * GiB }), host('b'), host('c')], req({ size: 6 }));
    expect(p.reason).toBeNull();
    expect([...p.hosts].sort()).toEqual(['b', 'b', 'big', 'big', 'c', 'c']);
    // Each node sees the one before it booked: the emptiest host first, then the others in turn.
    expect(p.hosts.slice(0, 3).sort()).toEqual(['b', 'big', 'c']);
  });

  it('counts the nodes a scale keeps, and numbers the new ones after them', () => {
    const p = placeNodes([host('a'), host('b')], req({ size: 1, firstIndex: 2, existing: ['a', 'a'] }));
    expect(p.hosts).toEqual(['b']);
    expect(p.nodes[0]!.index).toBe(2);
    expect(p.nodes[0]!.verdicts.find((v) => v.host === 'a')).toMatchObject({
      verdict: 'ranked-lower',
      why: expect.stringMatching(/has 2 nodes of the cluster, b 0/),
    });
  });

  it('goes to the next host when one is full, and books what each node asks', () => {
    const p = placeNodes([host('a', { memory: 3 * GiB }), host('b', { memory: 3 * GiB })], req({ size: 5, memory: GiB }));
    expect(p.hosts.slice(0, 4).sort()).toEqual(['a', 'a', 'b', 'b']);
    expect(p.hosts).toHaveLength(5);
    const none = placeNodes([host('a', { memory: 3 * GiB }), host('b', { memory: 3 * GiB })], req({ size: 7, memory: GiB }));
    expect(none.hosts).toHaveLength(6);
    expect(none.reason).toMatch(/^no host can take node 6 of alice\/lab \(after 6 nodes placed\): a: not enough memory/);
    expect(none.verdicts.every((v) => v.verdict === 'chosen')).toBe(true);
  });
});

describe('pack', () => {
  it('fills one host before the next', () => {
    const p = placeNodes([host('a', { cpu: 1000 }), host('b', { cpu: 1000 })], req({ size: 6, cpu: 300, strategy: 'pack' }));
    expect(p.reason).toBeNull();
    const first = p.hosts[0]!;
    expect(p.hosts.slice(0, 3)).toEqual([first, first, first]);
    expect(new Set(p.hosts.slice(3))).toEqual(new Set([first === 'a' ? 'b' : 'a']));
    const second = p.nodes[1]!.verdicts.find((v) => v.host !== first)!;
    expect(second).toMatchObject({ verdict: 'ranked-lower', why: expect.stringMatching(/pack fills one host first/) });
  });

  it('starts on the fullest host that fits (binpack)', () => {
    const p = placeNodes([host('empty'), host('busy', { usedCpu: 3000, usedMemory: 6 * GiB })], req({ size: 2, strategy: 'pack' }));
    expect(p.hosts).toEqual(['busy', 'busy']);
  });
});

describe('feasibility and explanations', () => {
  const fleet = () => [
    host('ok', { tags: ['ssd'] }),
    host('plain'),
    host('down', { tags: ['ssd'], up: false }),
    host('drain', { tags: ['ssd'], draining: true }),
    host('join', { tags: ['ssd'], joining: 'waiting' }),
    host('full', { tags: ['ssd'], usedMemory: 8 * GiB }),
  ];

  it('says of each host, per node and for the whole cluster, why it was chosen or not', () => {
    const p = placeNodes(fleet(), req({ size: 2, tags: ['ssd'] }));
    expect(p.hosts).toEqual(['ok', 'ok']);
    const why = Object.fromEntries(p.verdicts.map((v) => [v.host, `${v.verdict}: ${v.why}`]));
    expect(why).toEqual({
      ok: 'chosen: takes nodes 0, 1 (spread: fewest nodes of the cluster first, then the emptiest host)',
      plain: 'rejected: missing tag ssd',
      down: 'rejected: host is down',
      drain: 'rejected: host is draining',
      join: 'rejected: host is still joining the fleet (waiting)',
      full: expect.stringMatching(/^rejected: not enough memory \(0 bytes free, 67108864 asked\)/),
    });
    expect(p.verdicts[0]!.host).toBe('ok');
    expect(p.nodes.map((n) => n.verdicts.find((v) => v.verdict === 'chosen')?.host)).toEqual(['ok', 'ok']);
    expect(p.nodes[1]!.verdicts.find((v) => v.host === 'ok')!.why).toBe('fewest nodes of the cluster here (1), then the best spread score');
    const tie = placeNodes([host('b'), host('a')], req({ size: 1 }));
    expect(tie.nodes[0]!.verdicts.map((v) => `${v.host} ${v.verdict}: ${v.why}`)).toEqual([
      'a chosen: fewest nodes of the cluster here (0), then the best spread score',
      'b ranked-lower: same score as a, whose name sorts first',
    ]);
  });

  it('a pin puts every node on the host, and says why when it cannot', () => {
    expect(placeNodes(fleet(), req({ host: 'plain' })).hosts).toEqual(['plain', 'plain', 'plain']);
    expect(placeNodes(fleet(), req({ host: 'full' })).reason).toMatch(/^pinned host full cannot take node 0 of alice\/lab: not enough memory/);
    expect(placeNodes(fleet(), req({ host: 'nope' })).reason).toBe('pinned host nope is not in the fleet');
    const some = placeNodes([host('small', { cpu: 250 })], req({ host: 'small' }));
    expect(some.hosts).toEqual(['small', 'small']);
    expect(some.reason).toMatch(/^pinned host small cannot take node 2 of alice\/lab \(after 2 nodes placed\): not enough cpu \(50m free, 100m asked\)/);
  });

  it('refuses hosts for reasons the scheduler does not see, after its own', () => {
    const unfit = new Map([
      ['ok', 'has no image base'],
      ['down', 'has no image base'],
    ]);
    const p = placeNodes(fleet(), req({ size: 1, unfit }));
    expect(p.hosts).toEqual(['plain']);
    expect(p.nodes[0]!.verdicts.filter((v) => v.verdict === 'rejected').map((v) => `${v.host}: ${v.why}`)).toEqual(
      expect.arrayContaining(['ok: has no image base', 'down: host is down']),
    );
    expect(placeNodes(fleet(), req({ host: 'ok', unfit })).reason).toBe('pinned host ok cannot take node 0 of alice/lab: has no image base');
  });

  it('names the tags no host has', () => {
    expect(placeNodes(fleet(), req({ tags: ['gpu', 'ssd'] })).reason).toBe('no host has every tag asked (gpu, ssd)');
    expect(placeNodes([], req()).reason).toBe('no host in the fleet for node 0 of alice/lab');
  });

  it('leaves the views it was given as they were', () => {
    const views = fleet();
    placeNodes(views, req({ size: 4 }));
    expect(views.map((v) => v.usedCpu)).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

describe("the room the fleet's nodes take", () => {
  const cluster = (status: ClusterRecord['status'], nodes: { container: string; host: string; memory?: number }[]) =>
    ({
      memory: 256 * MiB,
      cpu: 0,
      status,
      nodes: nodes.map((n, index) => ({ index, hostname: `host-${index}`, ip: '', volume: '', ...n })),
    }) as unknown as ClusterRecord;
  const ph = (host: string, container: string): PlaceholderRecord => ({ host, op: 'op-1', container, cluster: 'a/b', cpu: 500, memory: GiB, at: '' });

  it(
    'counts every placeholder, and each recorded node on its host with its own limits unless its placeholder there holds it; ' +
      "a stopped cluster's not at all",
    () => {
      const uses = nodeUses(
        [
          cluster('running', [
            { container: 'a-1-0', host: 'h1' },
            { container: 'a-1-1', host: 'h2', memory: GiB },
          ]),
          cluster('stopped', [{ container: 'a-2-0', host: 'h1' }]),
        ],
        // a-1-0 is recorded on h1, where its placeholder still holds it; a-1-1 moving to h3 holds room on both.
        [ph('h1', 'a-1-0'), ph('h3', 'a-1-1'), ph('h2', 'a-3-0')],
      );
      const held = { cpu: 500, memory: GiB, held: true };
      expect(uses).toEqual([
        { host: 'h1', ...held },
        { host: 'h3', ...held },
        { host: 'h2', ...held },
        { host: 'h2', cpu: DEFAULT_NODE_CPU, memory: GiB },
      ]);
    },
  );

  it("adds placeholders on top of the memory a host reports in use, and a running node's limit as a reservation against it", () => {
    const rec = {
      name: 'h1',
      address: '',
      dockerEndpoint: '',
      tags: [],
      capacity: { cpu: 4000, memory: 8 * GiB },
      load: { runningJobs: 0, freeMemory: 5 * GiB },
      state: 'ok',
      joinedAt: '',
      updatedAt: '',
    } as const;
    const view = (uses: NodeUse[]) => clusterViews([{ host: { ...rec, tags: [] }, up: true }], [], uses)[0]!;
    expect(view([])).toMatchObject({ usedCpu: 0, usedMemory: 3 * GiB });
    // A node that runs is in the memory the host reports: its limit counts only where it is more.
    expect(view([{ host: 'h1', cpu: 100, memory: GiB }])).toMatchObject({ usedCpu: 100, usedMemory: 3 * GiB });
    expect(view([{ host: 'h1', cpu: 100, memory: 4 * GiB }])).toMatchObject({ usedMemory: 4 * GiB });
    expect(view([{ host: 'h1', cpu: 100, memory: GiB, held: true }])).toMatchObject({ usedCpu: 100, usedMemory: 4 * GiB });
  });
});
