import { describe, expect, it } from 'vitest';
import { checkSpecNesting, jobSpecInput, MAX_SPEC_NESTING, parseJobSpec, splitWords } from '../../src/core/job-spec.js';
import { flowNestingDepth } from '../../src/core/yaml-lite.js';

describe('job specs', () => {
  it('normalises a full spec and applies the seed defaults', () => {
    const s = parseJobSpec({
      name: 'web',
      image: 'busybox:latest',
      command: ['httpd', '-f'],
      ports: ['8080:80', 53, { host: 9000, container: 9000, protocol: 'udp' }],
      volumes: ['dot:site.www:/srv/www:ro', '/var/log/web:/logs'],
      env: { DEBUG: 1, MODE: 'prod' },
      links: ['db'],
      tags: ['ssd', 'zone=eu'],
      cpu: '500m',
      memory: '256M',
      restart: 'on-failure:3',
    });
    expect(s).toMatchObject({
      ports: [
        { host: 8080, container: 80, protocol: 'tcp' },
        { host: 53, container: 53, protocol: 'tcp' },
        { host: 9000, container: 9000, protocol: 'udp' },
      ],
      volumes: [
        { kind: 'dot', dot: 'site', subdot: 'www', target: '/srv/www', readOnly: true },
        { kind: 'host', source: '/var/log/web', target: '/logs', readOnly: false },
      ],
      env: { DEBUG: '1', MODE: 'prod' },
      cpu: 500,
      memory: 256 * 1024 ** 2,
      restart: { mode: 'on-failure', maxRetries: 3 },
      daemonize: true,
      fixed: true,
      static: false,
    });
  });

  it('host port 0 is any free port: in both forms, several of them, and the scheduler counts none as taken', async () => {
    const s = parseJobSpec({ name: 'web', image: 'busybox', ports: ['0:80', { host: 0, container: 443 }, '0:53/udp'] });
    expect(s.ports).toEqual([
      { host: 0, container: 80, protocol: 'tcp' },
      { host: 0, container: 443, protocol: 'tcp' },
      { host: 0, container: 53, protocol: 'udp' },
    ]);
    expect(s.daemonize).toBe(true);
    // The input form keeps the 0 (an agent checks the spec it is sent again).
    expect(parseJobSpec(jobSpecInput(s))).toEqual(s);
    expect(() => parseJobSpec({ name: 'web', image: 'busybox', ports: ['0:0'] })).toThrow(/ports\[0\]\.container: must be a port number from 1 to 65535/);
    expect(() => parseJobSpec({ name: 'web', image: 'busybox', ports: [{ host: -1, container: 80 }] })).toThrow(/ports\[0\]\.host: .*or 0 for any free port/);
    // Two containers ports on any free port are no clash; one container port twice still is.
    expect(() => parseJobSpec({ name: 'web', image: 'busybox', ports: ['0:80', '0:80'] })).toThrow(
      /ports\[1\]\.container: container port 80\/tcp is published twice/,
    );
    expect(() => parseJobSpec({ name: 'web', image: 'busybox', network: 'host', ports: ['0:80'] })).toThrow(/with network host .* write 80:80/);
    const { jobRequest, fleetViews } = await import('../../src/core/hosts.js');
    expect(jobRequest(parseJobSpec({ name: 'w', image: 'busybox', ports: ['0:80', '8080:80/udp'] }), []).ports).toEqual(['8080/udp']);
    const host = {
      name: 'h1',
      address: 'http://h1:7946',
      dockerEndpoint: 'unix:///d.sock',
      tags: [],
      capacity: { cpu: 1000, memory: 1 << 30 },
      load: { runningJobs: 0, freeMemory: 1 << 30 },
      state: 'ok',
      updatedAt: '',
    } as unknown as import('../../src/core/hosts.js').HostRecord;
    const views = fleetViews([{ host, up: true }], [{ host: 'h1', spec: s }]);
    expect([...views[0]!.ports]).toEqual([]);
  });

  it('defaults: no ports means not daemonized, no volumes means not fixed', () => {
    expect(parseJobSpec({ name: 'once', image: 'busybox', command: 'true', cpu: 0.25 })).toMatchObject({
      daemonize: false,
      fixed: false,
      command: ['true'],
      cpu: 250,
    });
    expect(parseJobSpec({ name: 's', image: 'busybox', static: true }).fixed).toBe(true);
  });

  it.each<[Record<string, unknown>, RegExp]>([
    [{ image: 'busybox' }, /^spec: name: is required/],
    [{ name: 'web' }, /^spec: image: is required/],
    [{ name: 'my job', image: 'busybox' }, /name: "my job" must be lower-case .*\(no spaces\)/],
    [{ name: 'web', image: 'busybox', colour: 'red' }, /colour: unknown field/],
    [{ name: 'web', image: 'busybox', ports: ['80:x'] }, /ports\[0\]: "80:x" is not HOST:CONTAINER/],
    [{ name: 'web', image: 'busybox', ports: [{ host: 70000, container: 80 }] }, /ports\[0\]\.host: must be a port number/],
    [{ name: 'web', image: 'busybox', ports: ['80:80', '80:81'] }, /ports\[1\]\.host: 80\/tcp is listed twice/],
    [{ name: 'web', image: 'busybox', cpu: 'lots' }, /cpu: "lots" is not a cpu amount/],
    [{ name: 'web', image: 'busybox', memory: 0 }, /memory: "0" must be greater than zero/],
    [{ name: 'web', image: 'busybox', env: { 'A-B': 'x' } }, /env\.A-B: is not a valid variable name/],
    [{ name: 'web', image: 'busybox', daemonize: 'yes' }, /daemonize: must be true or false/],
    [{ name: 'web', image: 'busybox', volumes: ['dot:a b:/x'] }, /volumes\[0\]: "a b" contains a space/],
    [{ name: 'web', image: 'busybox', restart: 'sometimes' }, /restart: "sometimes" is not no, always/],
  ])('refuses %j naming the field path', (raw, msg) => {
    expect(() => parseJobSpec(raw)).toThrow(msg);
  });

  it('refuses what docker would refuse at start: tiny limits, an upper-case repository, one target mounted twice, a tag no host can have', () => {
    const problems = (raw: Record<string, unknown>) => {
      try {
        parseJobSpec({ name: 'j', image: 'busybox', ...raw });
        return [];
      } catch (e) {
        return (e as Error & { detail: { problems: string[] } }).detail.problems;
      }
    };
    expect(problems({ cpu: '5m' })).toEqual([expect.stringMatching(/^cpu: "5m" is below the least docker can give \(10m\)/)]);
    expect(problems({ memory: '1K' })).toEqual([expect.stringMatching(/^memory: "1K" is below the least docker allows \(6M\)/)]);
    expect(problems({ image: 'BusyBox:latest' })).toEqual([expect.stringMatching(/^image: "BusyBox:latest": the repository name must be lower-case/)]);
    expect(problems({ volumes: ['/a:/data', '/b:/data'] })).toEqual(['volumes[1]: /data is mounted twice in the container']);
    expect(problems({ tags: ['t'.repeat(65)] })).toEqual([expect.stringMatching(/^tags\[0\]: .* is not a tag/)]);
    expect(problems({ tags: ['..'] })).toEqual([expect.stringMatching(/^tags\[0\]: "\.\." is not a tag/)]);
    // A tag may be upper-case; a registry's port is no tag.
    expect(parseJobSpec({ name: 'j', image: 'registry.local:5000/team/app:V2', cpu: '10m', memory: '6M' })).toMatchObject({
      cpu: 10,
      memory: 6 * 1024 * 1024,
      image: 'registry.local:5000/team/app:V2',
    });
  });

  it('reports every problem at once', () => {
    try {
      parseJobSpec({ name: 'a b', ports: 'x', extra: 1 }, 'job.yaml');
      expect.unreachable();
    } catch (e) {
      const err = e as Error & { detail: { problems: string[] } };
      expect(err.message).toMatch(/^job\.yaml: 4 problems: /);
      expect(err.detail.problems.map((x) => x.split(':')[0])).toEqual(['extra', 'name', 'image', 'ports']);
    }
  });

  it('a checked spec turns back into input that checks to the same spec (what the CLI sends an agent)', () => {
    const full = parseJobSpec({
      name: 'web',
      image: 'busybox:latest',
      command: ['httpd', '-f'],
      ports: ['8080:80', { host: 9000, container: 9000, protocol: 'udp' }],
      volumes: ['dot:site.www:/srv/www:ro', '/var/log/web:/logs'],
      env: { DEBUG: '1' },
      links: ['db-5432'],
      tags: ['ssd'],
      host: 'h1',
      network: 'bridge',
      cpu: '1.5',
      memory: '256M',
      restart: 'on-failure:3',
      static: true,
    });
    expect(parseJobSpec(jobSpecInput(full))).toEqual(full);
    const bare = parseJobSpec({ name: 'x', image: 'busybox' });
    expect(parseJobSpec(jobSpecInput(bare))).toEqual(bare);
  });

  it('a command string is split into words as a shell would, quotes kept together', () => {
    expect(parseJobSpec({ name: 'x', image: 'busybox', command: 'sleep 3600' }).command).toEqual(['sleep', '3600']);
    expect(parseJobSpec({ name: 'x', image: 'busybox', command: `sh -c 'echo "a b"; exit 3'` }).command).toEqual(['sh', '-c', 'echo "a b"; exit 3']);
    expect(splitWords(`a "b \\"c\\" d" e\\ f ''`)).toEqual(['a', 'b "c" d', 'e f', '']);
    expect(() => parseJobSpec({ name: 'x', image: 'busybox', command: "sh -c 'oops" })).toThrow(/command: "sh -c 'oops" has an unterminated quote/);
  });

  it('refuses ports a job could not serve: on a foreground job, twice from one container port, or remapped under host networking', () => {
    expect(() => parseJobSpec({ name: 'x', image: 'busybox', ports: ['80:80'], daemonize: false })).toThrow(/daemonize: is false, but the job has ports/);
    expect(() => parseJobSpec({ name: 'x', image: 'busybox', ports: ['8080:80', '8081:80'] })).toThrow(
      /ports\[1\]\.container: container port 80\/tcp is published twice/,
    );
    expect(parseJobSpec({ name: 'x', image: 'busybox', ports: ['53:53/tcp', '53:53/udp'] }).ports).toHaveLength(2);
    expect(() => parseJobSpec({ name: 'x', image: 'busybox', network: 'host', ports: ['8080:80'] })).toThrow(
      /ports\[0\]: with network host the job listens on the host's port 80 itself; write 80:80/,
    );
    expect(parseJobSpec({ name: 'x', image: 'busybox', network: 'host', ports: ['80:80'] }).ports[0]).toMatchObject({ host: 80, container: 80 });
  });
});

describe('spec nesting is bounded before a parser recurses into it', () => {
  it('measures [ ] and { } outside strings and comments', () => {
    expect(flowNestingDepth('{"a": [1, {"b": 2}]}')).toBe(3);
    expect(flowNestingDepth('{"a": "[[[[[[", \'b\': \'{{{{\'}')).toBe(1);
    expect(flowNestingDepth('{"a": "x\\"[[["}')).toBe(1);
    expect(flowNestingDepth('name: web # [[[[[[\nports: [80, 443]\n')).toBe(1);
    expect(flowNestingDepth('env: {A: "a#[["}')).toBe(1);
  });
  it('refuses a spec nested deeper than any job spec, naming the field', () => {
    const deep = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
    expect(() => checkSpecNesting('--file', deep)).toThrow(/^--file: nested 5000 levels deep; a job spec nests at most 32/);
    expect(() => checkSpecNesting('--file', `${'['.repeat(MAX_SPEC_NESTING)}${']'.repeat(MAX_SPEC_NESTING)}`)).not.toThrow();
  });
});
