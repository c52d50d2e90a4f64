import { describe, expect, it } from 'vitest';
import { GiB, hostView } from '../harness/host-views.js';
import { Scheduler, infeasible, type HostView, type JobRequest } from '../../src/core/scheduler.js';

const host = hostView;
const job = (over: Partial<JobRequest> = {}): JobRequest => ({ name: 'web', cpu: 500, memory: GiB, ports: [], tags: [], fixed: false, history: [], ...over });

describe('feasibility', () => {
  it.each<[Partial<HostView>, Partial<JobRequest>, RegExp]>([
    [{ up: false }, {}, /host is down/],
    [{ draining: true }, {}, /draining/],
    [{ draining: true, evacuated: true }, {}, /host is evacuated \(knarr host restore lets work land again\)/],
    [{}, { host: 'other' }, /pinned to other/],
    [{}, { fixed: true, history: ['other'] }, /fixed job stays on other/],
    [{ tags: ['ssd'] }, { tags: ['ssd', 'gpu'] }, /missing tag gpu/],
    [{ usedCpu: 3800 }, {}, /not enough cpu \(200m free, 500m asked\)/],
    [{ usedMemory: 7.5 * GiB }, {}, /not enough memory/],
    [{ ports: new Set(['8080/tcp']) }, { ports: ['8080/tcp'] }, /port 8080\/tcp is taken/],
  ])('rejects %j for %j', (h, j, why) => {
    expect(infeasible(job(j), host('h1', h))).toMatch(why);
  });
  it('accepts a host that fits', () => {
    expect(infeasible(job({ tags: ['ssd'], ports: ['80/tcp'] }), host('h1', { tags: ['ssd', 'eu'] }))).toBeNull();
    // The same number in the other protocol is another port.
    expect(infeasible(job({ ports: ['53/udp'] }), host('h1', { ports: new Set(['53/tcp']) }))).toBeNull();
  });
});

describe('ranking', () => {
  const hosts = [host('empty'), host('half', { usedCpu: 2000, usedMemory: 4 * GiB, runningJobs: 4 })];
  it('spread picks the emptier host, binpack the fuller one', () => {
    expect(new Scheduler(hosts, { strategy: 'spread' }).place(job()).host).toBe('empty');
    expect(new Scheduler(hosts, { strategy: 'binpack' }).place(job()).host).toBe('half');
  });
  it('prefers a host the job ran on before', () => {
    expect(new Scheduler(hosts, { strategy: 'spread' }).place(job({ history: ['half'] })).host).toBe('half');
  });
  it('a fixed job waits for its host when that host is down', () => {
    const s = new Scheduler([host('a', { up: false }), host('b')]);
    const p = s.place(job({ fixed: true, history: ['a'] }));
    expect(p.host).toBeNull();
    expect(p.reason).toMatch(/host is down/);
  });
  it('a job pinned to an unknown host is not placed', () => {
    expect(new Scheduler([host('a')]).place(job({ host: 'zz' })).reason).toMatch(/no host matches/);
  });
});

describe('bulk placement', () => {
  it('books resources and ports so no host is overcommitted', () => {
    const s = new Scheduler(Array.from({ length: 10 }, (_, i) => host(`h${i}`)));
    const placed = Array.from({ length: 80 }, (_, i) => s.place(job({ name: `j${i}` })));
    expect(placed.every((p) => p.host !== null)).toBe(true);
    const none = s.place(job({ name: 'too-many' }));
    expect(none.host).toBeNull();
    for (let i = 0; i < 10; i++) expect(s.host(`h${i}`)!.usedCpu).toBeLessThanOrEqual(4000);
    const web = new Scheduler([host('a'), host('b')]);
    expect(new Set([web.place(job({ ports: ['80/tcp'] })).host, web.place(job({ ports: ['80/tcp'] })).host])).toEqual(new Set(['a', 'b']));
    expect(web.place(job({ ports: ['80/tcp'] })).reason).toMatch(/port 80\/tcp is taken/);
  });
  it('a small fleet is scored whole: a fresh scheduler reaches the emptiest host wherever it stands, as plan says', () => {
    const hosts = [host('ha', { usedCpu: 1000, runningJobs: 1 }), host('hb', { usedCpu: 1000, runningJobs: 1 }), host('hc')];
    const placed = new Scheduler(hosts).place(job());
    expect(placed.host).toBe('hc');
    expect(new Scheduler(hosts).explain(job()).host).toBe(placed.host);
    // Three jobs, one scheduler each (as each `job run` makes): each lands where the load is lowest.
    const views = [host('ha'), host('hb'), host('hc')];
    const landed: string[] = [];
    for (let i = 0; i < 3; i++) {
      const p = new Scheduler(views).place(job({ name: `j${i}` }))!;
      landed.push(p.host!);
      const v = views.find((h) => h.name === p.host)!;
      v.usedCpu += 500;
      v.usedMemory += GiB;
      v.runningJobs += 1;
    }
    expect(landed.sort()).toEqual(['ha', 'hb', 'hc']);
  });
  it('uses the tag index: only hosts with the rarest tag are visited', () => {
    const hosts = [...Array.from({ length: 50 }, (_, i) => host(`plain${i}`)), host('gpu1', { tags: ['gpu'] })];
    expect(new Scheduler(hosts).place(job({ tags: ['gpu'] })).host).toBe('gpu1');
  });
});

describe('plan mode (explain)', () => {
  it('says why each host was rejected or ranked lower', () => {
    const s = new Scheduler([
      host('a', { tags: ['ssd'] }),
      host('b', { tags: ['ssd'], usedCpu: 1000 }),
      host('c'),
      host('d', { tags: ['ssd'], draining: true }),
      host('e', { tags: ['ssd'], usedMemory: 8 * GiB }),
    ]);
    const p = s.explain(job({ tags: ['ssd'] }));
    expect(p.host).toBe('a');
    const why = Object.fromEntries(p.verdicts.map((v) => [v.host, `${v.verdict}: ${v.why}`]));
    expect(why).toEqual({
      a: 'chosen: best spread score',
      b: expect.stringMatching(/^ranked-lower: score .* below /),
      c: 'rejected: missing tag ssd',
      d: 'rejected: host is draining',
      e: expect.stringMatching(/^rejected: not enough memory/),
    });
    expect(s.host('a')!.usedCpu).toBe(0);
  });
});
