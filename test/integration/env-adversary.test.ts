import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { haveDockerd, type Dockerd } from '../harness/dockerd.js';
import type { EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { freePort } from '../harness/ports.js';
import type { TempDir } from '../harness/tmp.js';
import { startEnvHost, type EnvHost, type EnvMemberShown } from '../harness/env-host.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'env-adversary',
  haveDockerd() && haveTools('etcd', 'etcdctl'),
  'needs dockerd, docker, busybox-static, etcd and etcdctl (Debian packages docker.io, busybox-static, etcd-server, etcd-client)',
);

const bin = new URL('../../bin/knarr', import.meta.url).pathname;

type Member = EnvMemberShown;

/**
 * `knarr env` as an attacker and a careless operator would use it, on one host (a real dockerd, etcd and agent):
 * kill -9 at each step, two commands at once, --dry-run, hooks that misbehave, bad input at the limits, members
 * changed behind knarr's back, and the output at odd widths.
 */
describe.skipIf(!run)('environments under attack', () => {
  let tmp: TempDir;
  let d: Dockerd;
  let etcd: EtcdInstance;
  let agent: AgentUnderTest | null = null;
  let env: Record<string, string>;
  let host: EnvHost;
  const k = (argv: string[], extra: Record<string, string> = {}) => knarr(argv, { env: { ...env, ...extra }, cwd: tmp.path });
  const ok = async (argv: string[]) => {
    const r = await k(argv);
    expect(r.code, `knarr ${argv.join(' ')}\n${r.stderr}\n${r.stdout}`).toBe(0);
    return r;
  };
  const startAgent = async () => {
    agent = await host.startAgent();
  };
  const members = async (name: string): Promise<Member[]> => (await ok(['--json', 'env', 'show', name])).json().members;
  const write = (file: string, text: string) => writeFileSync(`${tmp.path}/${file}`, text);
  const containers = async (filter: string) => (await d.docker('ps', '-a', '--filter', filter, '--format', '{{.Names}} {{.State}}')).trim();
  const activeOps = async () => (await ok(['--json', 'op', 'list', '--active'])).json() as { id: string; kind: string }[];
  /** Every key and value under the fleet that an env command could change (not heartbeats or the event log). */
  const snapshot = async (): Promise<Record<string, string>> => {
    const r = await execa('etcdctl', ['--endpoints', etcd.url, 'get', '/knarr/', '--prefix', '-w', 'json']);
    const kvs = (JSON.parse(r.stdout).kvs ?? []) as { key: string; value: string }[];
    const out: Record<string, string> = {};
    for (const kv of kvs) {
      const key = Buffer.from(kv.key, 'base64').toString();
      if (/\/(envs|env-history|ops|ops-pending|op-claims|jobs|balancers|services)\//.test(key)) out[key] = Buffer.from(kv.value ?? '', 'base64').toString();
    }
    return out;
  };
  const readLoop = () => readFileSync(`${tmp.path}/loop.yaml`, 'utf8');
  const job = (_name: string, cmd = '[sleep, "3600"]') => `    job: {image: ${d.image}, command: ${cmd}}`;
  /** Waits for a marker file a hook touches. */
  const marked = (file: string, ms = 60_000) => eventually(async () => expect(existsSync(`${tmp.path}/${file}`)).toBe(true), ms, 50);

  beforeAll(async () => {
    host = await startEnvHost('knarr-envadv-', 'av1');
    ({ tmp, d, etcd, env } = host);
    await startAgent();
    write('web.yaml', host.webRole());
    write('db.yaml', ['name: db', job('db').trim(), ''].join('\n'));
  }, 180_000);

  afterAll(async () => {
    await host?.stop([agent]);
  }, 120_000);

  it('a denied add of a new role leaves no role behind: the corrected role file is then taken', async () => {
    await ok(['env', 'create', 'avrole']);
    const before = (await ok(['--json', 'env', 'show', 'avrole'])).json();
    write('db-bad.yaml', ['name: db', job('db').trim(), 'hooks:', "  beforeItIsAdded: {run: 'echo not yet >&2; exit 1', on: host}", ''].join('\n'));
    const denied = await k(['env', 'add', 'avrole', 'db', '-f', 'db-bad.yaml']);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/not yet/);
    const after = (await ok(['--json', 'env', 'show', 'avrole'])).json();
    expect(Object.keys(after.roles).sort()).toEqual(Object.keys(before.roles).sort());
    write('db.yaml', ['name: db', job('db').trim(), ''].join('\n'));
    await ok(['env', 'add', 'avrole', 'db', '-f', 'db.yaml']);
    expect((await members('avrole')).map((m) => [m.name, m.state])).toEqual([['avrole-db-2', 'running']]);
    await ok(['env', 'destroy', 'avrole']);
  }, 120_000);

  it('a hook that never ends fails at its timeout, even when it started children, and the add is undone', async () => {
    write(
      'hang.yaml',
      [
        'roles:',
        '  - name: h',
        job('h'),
        '    hooks:',
        "      beforeItIsAdded: {run: 'sleep 600 | cat; echo never', on: host, timeout: 2}",
        'members: {}',
        '',
      ].join('\n'),
    );
    await ok(['env', 'create', 'avhang', '-f', 'hang.yaml']);
    const started = Date.now();
    const r = await k(['env', 'add', 'avhang', 'h']);
    expect(r.code).not.toBe(0);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(r.stderr).toMatch(/beforeItIsAdded hook of avhang-h-1/);
    expect(r.stderr).toMatch(/timed out|2s|2 s|2000/);
    expect(await members('avhang')).toEqual([]);
    await ok(['env', 'destroy', 'avhang']);
  }, 120_000);

  it('hooks that print megabytes, read stdin, print non-UTF-8, or name no command fail or pass clearly', async () => {
    write(
      'noisy.yaml',
      [
        'roles:',
        '  - name: n',
        job('n'),
        '    hooks:',
        // Megabytes on stdout, the reason on stderr: the denial says the reason, in a few lines.
        "      beforeItIsAdded: {run: 'yes filler | head -c 3000000; echo the real reason >&2; exit 1', on: host}",
        '  - name: s',
        job('s'),
        '    hooks:',
        "      beforeItIsAdded: {run: 'read line; echo got $line', on: host, timeout: 10}",
        '      afterItIsAdded: \'printf "\\377\\376 bad bytes\\n"\'',
        '  - name: x',
        job('x'),
        '    hooks:',
        '      beforeItIsAdded: {run: [/no/such/command, arg], on: host}',
        '  - name: esc',
        job('esc'),
        '    hooks:',
        // A member that prints terminal escapes (clear the screen, retitle the window, ring): shown, not obeyed.
        '      afterItIsAdded: \'printf "\\033[2J\\033]0;pwned\\007 hello\\n"; exit 1\'',
        'members: {}',
        '',
      ].join('\n'),
    );
    await ok(['env', 'create', 'avnoisy', '-f', 'noisy.yaml']);
    const n = await k(['env', 'add', 'avnoisy', 'n']);
    expect(n.code).not.toBe(0);
    expect(n.stderr.length).toBeLessThan(5000);
    expect(n.stderr).toMatch(/the real reason/);
    const s = await k(['env', 'add', 'avnoisy', 's']);
    expect(s.code, s.stderr).toBe(0);
    const x = await k(['env', 'add', 'avnoisy', 'x']);
    expect(x.code).not.toBe(0);
    expect(x.stderr).toMatch(/\/no\/such\/command/);
    const esc = await k(['env', 'add', 'avnoisy', 'esc']);
    expect(esc.code).not.toBe(0);
    expect(esc.stderr).toMatch(/hello/);
    expect(esc.stderr).not.toMatch(/[\x07\x1b]/);
    expect((await ok(['env', 'events', 'avnoisy'])).stdout).not.toMatch(/[\x07\x1b]/);
    expect((await ok(['env', 'show', 'avnoisy'])).stdout).not.toMatch(/[\x07\x1b]/);
    expect((await ok(['env', 'events', 'avnoisy'])).stdout).toMatch(/\\x1b\[2J/);
    expect((await members('avnoisy')).map((m) => m.name)).toEqual(['avnoisy-s-1']);
    const events = (await ok(['--json', 'env', 'events', 'avnoisy'])).json() as { event: string; member: string; message?: string }[];
    expect(events.find((e) => e.event === 'afterItIsAdded')?.message).toMatch(/bad bytes/);
    const table = await ok(['env', 'events', 'avnoisy']);
    expect(table.stdout).toMatch(/bad bytes/);
    await ok(['env', 'destroy', 'avnoisy']);
  }, 180_000);

  it('bad input at the limits is refused before anything is written', async () => {
    const keys = await snapshot();
    const refuse = async (argv: string[], code: number, msg: RegExp) => {
      const r = await k(argv);
      expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(msg);
    };
    await refuse(['env', 'create', 'a'.repeat(25)], 2, /at most 24/);
    await refuse(['env', 'create', 'Av'], 2, /NAME/);
    await refuse(['env', 'create', 'av-'], 2, /NAME/);
    await refuse(['env', 'create', 'av--x'], 2, /NAME/);
    await refuse(['env', 'create', 'av-udp'], 2, /job's service/);
    await refuse(['env', 'create', '-x'], 2, /./);
    mkdirSync(`${tmp.path}/adir`, { recursive: true });
    await refuse(['env', 'create', 'avbad', '-f', 'adir'], 2, /EISDIR|directory/);
    write('empty.yaml', '');
    write('role-empty.yaml', '');
    await refuse(['env', 'add', 'avnone', 'web', '-f', 'role-empty.yaml'], 2, /name/);
    write('deep.yaml', `${'['.repeat(5000)}${']'.repeat(5000)}\n`);
    await refuse(['env', 'create', 'avbad', '-f', 'deep.yaml'], 2, /nest/);
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++)
      bomb.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(',')}]`,
      );
    write('bomb.yaml', `${bomb.join('\n')}\nroles: []\n`);
    await refuse(['env', 'create', 'avbad', '-f', 'bomb.yaml'], 2, /./);
    write('big.yaml', `roles:\n  - name: big\n${job('big')}\n    hooks: {afterItIsAdded: 'echo ${'x'.repeat(10 * 1024 * 1024)}'}\nmembers: {big: 1}\n`);
    await refuse(['env', 'create', 'avbad', '-f', 'big.yaml'], 2, /KiB/);
    // Each role file under the limit, together over it: refused before anything is queued (etcd would refuse the record).
    const half = `'echo ${'y'.repeat(150 * 1024)}'`;
    write('half1.yaml', `name: h1\n${job('h1').trim()}\nhooks: {afterItIsAdded: ${half}}\n`);
    write('half2.yaml', `name: h2\n${job('h2').trim()}\nhooks: {afterItIsAdded: ${half}}\n`);
    write('halves.yaml', 'roles: [half1.yaml, half2.yaml]\nmembers: {}\n');
    await refuse(['env', 'create', 'avbad', '-f', 'halves.yaml'], 2, /KiB/);
    await refuse(['env', 'add', 'avnone', 'big', '-f', 'big.yaml'], 2, /KiB/);
    write(
      'loop.yaml',
      [
        'roles:',
        '  - {name: a, requires: [b], ' + `job: {image: ${d.image}}}`,
        '  - {name: b, requires: [a], ' + `job: {image: ${d.image}}}`,
        'members: {a: 1}',
        '',
      ].join('\n'),
    );
    await refuse(['env', 'create', 'avbad', '-f', 'loop.yaml'], 2, /circle|loop/);
    write('emptyrun.yaml', ['roles:', '  - name: e', job('e'), "    hooks: {afterItIsAdded: {run: ['']}}", 'members: {}', ''].join('\n'));
    await refuse(['env', 'create', 'avbad', '-f', 'emptyrun.yaml'], 2, /hooks\.afterItIsAdded\.run/);
    // 64 webs need a balancer too: 65 members.
    write('web64.yaml', ['roles: [web.yaml]', 'members: {web: 64}', ''].join('\n'));
    await refuse(['env', 'create', 'avbad', '-f', 'web64.yaml'], 2, /65 members/);
    write('missing.yaml', ['roles:', '  - {name: a, requires: [ghost], ' + `job: {image: ${d.image}}}`, 'members: {a: 1}', ''].join('\n'));
    await refuse(['env', 'create', 'avbad', '-f', 'missing.yaml'], 2, /ghost is no role/);
    write('toomany.yaml', ['roles:', `  - {name: a, job: {image: ${d.image}}}`, 'members: {a: 65}', ''].join('\n'));
    await refuse(['env', 'create', 'avbad', '-f', 'toomany.yaml'], 2, /members\.a/);
    expect(await snapshot()).toEqual(keys);

    await ok(['env', 'create', 'avlim']);
    write('loop0.yaml', readLoop().replace('members: {a: 1}', 'members: {}'));
    await ok(['env', 'create', 'avloop', '-f', 'loop0.yaml']);
    await ok(['env', 'create', 'avother']);
    const keys2 = await snapshot();
    await refuse(['env', 'add', 'avlim', 'balancer', '--count', '0'], 2, /--count/);
    await refuse(['env', 'add', 'avlim', 'balancer', '--count', '65'], 2, /--count/);
    await refuse(['env', 'add', 'avlim', 'balancer', '--count', '-1'], 2, /./);
    await refuse(['env', 'add', 'avlim', 'balancer', '--count', '1.5'], 2, /--count/);
    await refuse(['env', 'add', 'avlim', 'r'.repeat(25)], 2, /ROLE/);
    await refuse(['env', 'add', 'avlim', 'ghost'], 3, /no role ghost/);
    await refuse(['env', 'add', 'avloop', 'a'], 2, /circle/);
    await refuse(['env', 'add', 'avlim', 'web', '-f', 'web.yaml', '--count', '64'], 2, /65 members/);
    await refuse(['env', 'add', 'avlim', 'web', '-f', 'adir'], 2, /EISDIR|directory/);
    await refuse(['env', 'remove', 'avlim', 'avlim-web-1'], 3, /no member/);
    await refuse(['env', 'remove', 'avlim', 'avother-balancer-1'], 3, /no member/);
    await refuse(['env', 'remove', 'avnope', 'x'], 3, /no environment/);
    await refuse(['env', 'create', 'avlim'], 4, /exists/);
    for (const verb of ['start', 'stop', 'suspend', 'resume', 'destroy', 'show', 'events']) await refuse(['env', verb, 'avnope'], 3, /no environment avnope/);
    expect(await snapshot()).toEqual(keys2);
    // The longest names: a member of a 24-letter environment and a 24-letter role is still a job name.
    const long = `av${'l'.repeat(22)}`;
    const role = `r${'o'.repeat(23)}`;
    write('long.yaml', ['roles:', `  - name: ${role}`, job(role), `members: {${role}: 1}`, ''].join('\n'));
    await ok(['env', 'create', long, '-f', 'long.yaml']);
    expect((await members(long)).map((m) => m.state)).toEqual(['running']);
    await ok(['env', 'destroy', long]);
    await ok(['env', 'destroy', 'avlim']);
    await ok(['env', 'destroy', 'avother']);
    await ok(['env', 'destroy', 'avloop']);
  }, 180_000);

  it('--dry-run of every env command changes nothing in etcd, docker or the history', async () => {
    await ok(['env', 'create', 'avdry']);
    await ok(['env', 'add', 'avdry', 'web', '-f', 'web.yaml']);
    await ok(['env', 'add', 'avdry', 'web']);
    const keys = await snapshot();
    const ps = await containers('name=knarr-avdry');
    write('dry.yaml', ['roles: [web.yaml]', 'members: {web: 2}', ''].join('\n'));
    const runs = [
      ['env', 'create', 'avdry2', '-f', 'dry.yaml'],
      ['env', 'add', 'avdry', 'web', '--count', '2'],
      ['env', 'add', 'avdry', 'db', '-f', 'db.yaml'],
      ['env', 'remove', 'avdry', 'avdry-web-1'],
      ...['stop', 'start', 'suspend', 'resume', 'destroy'].map((v) => ['env', v, 'avdry']),
      ['env', 'list'],
      ['env', 'show', 'avdry'],
      ['env', 'events', 'avdry'],
    ];
    for (const argv of runs) {
      const r = await k(['--dry-run', ...argv]);
      expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
    }
    expect(await snapshot()).toEqual(keys);
    expect(await containers('name=knarr-avdry')).toBe(ps);
    await ok(['env', 'destroy', 'avdry']);
  }, 180_000);

  it('a second command while an operation runs is refused naming it; two creates of one name make one', async () => {
    write(
      'slow.yaml',
      [
        'roles:',
        '  - name: s',
        job('s'),
        '    hooks:',
        `      beforeItIsAdded: {run: 'touch ${tmp.path}/slow-mark; sleep 6', on: host}`,
        'members: {}',
        '',
      ].join('\n'),
    );
    await ok(['env', 'create', 'avbusy', '-f', 'slow.yaml']);
    const op = (await ok(['env', 'add', 'avbusy', 's', '--detach'])).stdout.trim();
    await marked('slow-mark');
    for (const argv of [
      ['env', 'add', 'avbusy', 's'],
      ['env', 'remove', 'avbusy', 'avbusy-s-1'],
      ['env', 'destroy', 'avbusy'],
      ['env', 'stop', 'avbusy'],
    ]) {
      const r = await k(argv);
      expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(4);
      expect(r.stderr).toContain(op);
      expect(r.stderr).toMatch(/env\.add/);
    }
    expect((await k(['op', 'wait', op])).code).toBe(0);
    expect((await members('avbusy')).map((m) => m.name)).toEqual(['avbusy-s-1']);

    // Two creates of one name at once: one environment, the other refused; no op left.
    const [a, b] = await Promise.all([k(['env', 'create', 'avtwin', '-f', 'slow.yaml']), k(['env', 'create', 'avtwin', '-f', 'slow.yaml'])]);
    // Refused by the CLI (exit 4), or queued in the same instant and failed by the operation (exit 1): either names the first.
    expect([a.code, b.code].sort()[0]).toBe(0);
    expect([1, 4]).toContain([a.code, b.code].sort()[1]);
    expect([a, b].find((r) => r.code !== 0)!.stderr).toMatch(/avtwin exists|avtwin has op-/);
    // Create and destroy at once: either order, no record or op half-made.
    const [c, x] = await Promise.all([k(['env', 'create', 'avcd']), k(['env', 'destroy', 'avcd'])]);
    expect([0, 3, 4]).toContain(x.code);
    expect(c.code).toBe(0);
    // Add and remove at once on one environment: both serialise or one is refused; the record stays whole.
    await ok(['env', 'add', 'avbusy', 's']);
    const [p, q] = await Promise.all([k(['env', 'add', 'avbusy', 's']), k(['env', 'remove', 'avbusy', 'avbusy-s-1'])]);
    for (const r of [p, q]) expect([0, 4], r.stderr).toContain(r.code);
    const left = await members('avbusy');
    expect(left.every((m) => m.state === 'running')).toBe(true);
    expect((await containers('name=knarr-avbusy-')).split('\n').filter(Boolean).length).toBe(left.length);
    expect(await activeOps()).toEqual([]);
    for (const e of ['avbusy', 'avtwin']) await ok(['env', 'destroy', e]);
    if ((await k(['env', 'show', 'avcd'])).code === 0) await ok(['env', 'destroy', 'avcd']);
  }, 180_000);

  it('commands queued in the same instant are checked again when they run: never two balancers, never webs without theirs', async () => {
    write('avrace.yaml', ['roles: [web.yaml]', 'members: {web: 1}', ''].join('\n'));
    await ok(['env', 'create', 'avrace', '-f', 'avrace.yaml']);
    for (let round = 0; round < 3; round++) {
      const two = await Promise.all([k(['env', 'add', 'avrace', 'balancer']), k(['env', 'add', 'avrace', 'balancer'])]);
      const codes = two.map((r) => r.code).sort();
      expect(codes[0], two.map((r) => r.stderr).join('\n')).toBe(0);
      expect([1, 4]).toContain(codes[1]);
      let m = await members('avrace');
      expect(m.filter((x) => x.kind === 'balancer').length).toBe(1);
      // The second web needs the balancer that is being removed: one of the two gives way.
      const balancer = m.find((x) => x.kind === 'balancer')!.name;
      const raced = await Promise.all([k(['env', 'add', 'avrace', 'web']), k(['env', 'remove', 'avrace', balancer])]);
      for (const r of raced) expect([0, 1, 4], r.stderr).toContain(r.code);
      m = await members('avrace');
      const webs = m.filter((x) => x.role === 'web');
      if (webs.length >= 2) expect(m.some((x) => x.kind === 'balancer' && x.state === 'running')).toBe(true);
      // Back to one web and no balancer for the next round.
      for (const w of webs.slice(1)) await ok(['env', 'remove', 'avrace', w.name]);
      for (const b of (await members('avrace')).filter((x) => x.kind === 'balancer')) await ok(['env', 'remove', 'avrace', b.name]);
    }
    expect(await activeOps()).toEqual([]);
    await ok(['env', 'destroy', 'avrace']);
  }, 240_000);

  /** An environment of a web and a slow hook role, to cut at each step. */
  const killRoles = (name: string, event: string) =>
    [
      'roles:',
      '  - web.yaml',
      '  - name: k',
      '    priority: 30',
      job('k'),
      '    hooks:',
      `      ${event}: {run: 'touch ${tmp.path}/${name}-mark; sleep 5', on: host}`,
      'members: {web: 2}',
      '',
    ].join('\n');

  /** What an environment is made of, for "exactly as before". */
  const state = async (name: string) => {
    const shown = (await ok(['--json', 'env', 'show', name])).json();
    const keys = await snapshot();
    const balancers = Object.entries(keys)
      .filter(([key]) => key.includes('/balancers/'))
      .map(([, v]) => JSON.parse(v).backends);
    return {
      members: (shown.members as Member[]).map((m) => [m.name, m.state, m.address]),
      roles: Object.keys(shown.roles).sort(),
      service: shown.service ? `${shown.service.address}:${shown.service.port}` : null,
      balancers,
      containers: (await containers(`name=knarr-${name}-`)).split('\n').sort(),
      jobs: ((await ok(['--json', 'job', 'list'])).json() as { name: string }[])
        .map((j) => j.name)
        .filter((j) => j.startsWith(`${name}-`))
        .sort(),
    };
  };

  for (const [event, cut] of [
    ['beforeItIsAdded', 'before the hooks'],
    ['afterItIsAdded', 'after its job started, before its after-hooks'],
  ] as const)
    it(`kill -9 of the agent in env add, ${cut}: the restarted agent finishes it; op cancel leaves it as before`, async () => {
      const name = event === 'beforeItIsAdded' ? 'avkb' : 'avka';
      write(`${name}.yaml`, killRoles(name, event));
      await ok(['env', 'create', name, '-f', `${name}.yaml`]);
      const before = await state(name);
      // Finished by the restarted agent.
      let op = (await ok(['env', 'add', name, 'k', '--detach'])).stdout.trim();
      await marked(`${name}-mark`);
      await agent!.stop('SIGKILL');
      await startAgent();
      expect((await k(['op', 'wait', op])).code).toBe(0);
      expect((await members(name)).map((m) => [m.name, m.state])).toContainEqual([`${name}-k-1`, 'running']);
      await ok(['env', 'remove', name, `${name}-k-1`]);
      expect(await state(name)).toEqual(before);
      // Cancelled while the agent is away: as before.
      rmMark(`${name}-mark`);
      op = (await ok(['env', 'add', name, 'k', '--detach'])).stdout.trim();
      await marked(`${name}-mark`);
      await agent!.stop('SIGKILL');
      await ok(['op', 'cancel', op]);
      await startAgent();
      expect((await k(['op', 'wait', op])).code).toBe(1);
      expect(await state(name)).toEqual(before);
      expect(await activeOps()).toEqual([]);
      await ok(['env', 'destroy', name]);
    }, 240_000);

  const rmMark = (file: string) => rmSync(`${tmp.path}/${file}`, { force: true });

  it('an after-hook that fails is undone to as before; kill -9 in env remove: it is finished, or cancelled back to as before', async () => {
    // An after-hook that fails slowly on the balancer's second web: the undo drops web 2 and the balancer.
    write(
      'avku.yaml',
      [
        'roles:',
        '  - web.yaml',
        '  - name: k',
        '    priority: 30',
        job('k'),
        '    hooks:',
        `      beforeItIsRemoved: {run: 'touch ${tmp.path}/avku-rm; sleep 5', on: host}`,
        "      afterItIsAdded: {run: 'exit 7', on: member}",
        'members: {web: 2}',
        '',
      ].join('\n'),
    );
    await ok(['env', 'create', 'avku', '-f', 'avku.yaml']);
    const before = await state('avku');
    const failing = await k(['env', 'add', 'avku', 'k']);
    expect(failing.code).toBe(1);
    expect(await state('avku')).toEqual(before);

    // A remove cut during its before-hook: finished by the next agent.
    await ok(['env', 'add', 'avku', 'web']);
    const three = await state('avku');
    let op = (await ok(['env', 'remove', 'avku', 'avku-web-3', '--detach'])).stdout.trim();
    await eventually(async () => expect((await members('avku')).find((m) => m.name === 'avku-web-3')?.state).toBe('removing'), 60_000, 50);
    await agent!.stop('SIGKILL');
    await startAgent();
    expect((await k(['op', 'wait', op])).code).toBe(0);
    expect(await state('avku')).toEqual(before);
    void three;
    // Cancelled while its before-hook sleeps: the member stays as it was.
    write(
      'avkr.yaml',
      [
        'roles:',
        '  - name: k',
        job('k'),
        '    hooks:',
        `      beforeItIsRemoved: {run: 'touch ${tmp.path}/avkr-rm; sleep 5', on: host}`,
        'members: {k: 2}',
        '',
      ].join('\n'),
    );
    await ok(['env', 'create', 'avkr', '-f', 'avkr.yaml']);
    const kept = await state('avkr');
    op = (await ok(['env', 'remove', 'avkr', 'avkr-k-1', '--detach'])).stdout.trim();
    await marked('avkr-rm');
    await agent!.stop('SIGKILL');
    await ok(['op', 'cancel', op]);
    await startAgent();
    expect((await k(['op', 'wait', op])).code).toBe(1);
    expect(await state('avkr')).toEqual(kept);
    expect(await activeOps()).toEqual([]);
    await ok(['env', 'destroy', 'avkr']);
    await ok(['env', 'destroy', 'avku']);
  }, 300_000);

  it("a member's container removed behind knarr's back: env show tells, the balancer skips it, env remove works", async () => {
    write('avgone.yaml', ['roles: [web.yaml]', 'members: {web: 2}', ''].join('\n'));
    await ok(['env', 'create', 'avgone', '-f', 'avgone.yaml']);
    const service = (await ok(['--json', 'env', 'show', 'avgone'])).json().service;
    const addr = `${service.address}:${service.port}`;
    await d.docker('rm', '-f', 'knarr-avgone-web-1');
    // Every answer comes from a web that runs (the agent may make web 1 again: then from it too).
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`http://${addr}/`, { signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
    }
    await ok(['env', 'show', 'avgone']);
    await agent!.stop('SIGKILL');
    await d.docker('rm', '-f', 'knarr-avgone-web-2');
    await startAgent();
    await ok(['env', 'show', 'avgone']);
    await ok(['env', 'remove', 'avgone', 'avgone-web-2']);
    expect((await members('avgone')).map((m) => m.name)).toEqual(['avgone-web-1', 'avgone-balancer-1']);
    expect(await containers('name=knarr-avgone-web-2')).toBe('');

    // Every backend down: the balancer closes the client, it does not hang.
    await d.docker('pause', 'knarr-avgone-web-1').catch(() => undefined);
    await d.docker('rm', '-f', 'knarr-avgone-web-1');
    const t0 = Date.now();
    await fetch(`http://${addr}/`, { signal: AbortSignal.timeout(20_000) }).then(
      (r) => r.status,
      () => 0,
    );
    expect(Date.now() - t0).toBeLessThan(20_000);
    await ok(['env', 'destroy', 'avgone']);
    expect(await containers('name=knarr-avgone')).toBe('');
    expect((await ok(['--json', 'job', 'list'])).json().filter((j: { name: string }) => j.name.startsWith('avgone-'))).toEqual([]);
  }, 240_000);

  it("the environment's service stays put while the agent reconciles its jobs", async () => {
    write('avsvc.yaml', ['roles: [web.yaml]', 'members: {web: 2}', ''].join('\n'));
    await ok(['env', 'create', 'avsvc', '-f', 'avsvc.yaml']);
    const key = `/knarr/default/services/avsvc`;
    const seen = async () => (await execa('etcdctl', ['--endpoints', etcd.url, 'get', key, '--print-value-only'])).stdout.trim();
    expect(await seen()).not.toBe('');
    // Jobs come and go meanwhile: each makes the agent reconcile every job of its host.
    const churn = (async () => {
      for (let i = 0; i < 3; i++) {
        await ok(['job', 'run', '-d', '--name', `avsvc-churn-${i}`, d.image, '--', 'sleep', '3600']);
        await ok(['job', 'rm', `avsvc-churn-${i}`]);
      }
    })();
    let missing = 0;
    const until = Date.now() + 15_000;
    while (Date.now() < until) {
      if ((await seen()) === '') missing++;
      await new Promise((r) => setTimeout(r, 100));
    }
    await churn;
    expect(missing, 'polls that found no services/avsvc').toBe(0);
    await ok(['env', 'destroy', 'avsvc']);
    expect(await seen()).toBe('');
  }, 120_000);

  it('a member hook on a stopped or suspended member fails clearly; one that kills its own member fails the add', async () => {
    const loop = `[sh, -c, 'trap "exit 0" TERM; while :; do sleep 1; done']`;
    write(
      'avstop.yaml',
      [
        'roles:',
        '  - name: w',
        job('w', loop),
        '    hooks:',
        "      beforeOtherIsAdded: 'echo ok'",
        '  - name: n',
        job('n', loop),
        '  - name: kill',
        job('kill', loop),
        "    hooks: {afterItIsAdded: 'kill 1; sleep 5'}",
        'members: {w: 1}',
        '',
      ].join('\n'),
    );
    await ok(['env', 'create', 'avstop', '-f', 'avstop.yaml']);
    for (const verb of ['suspend', 'stop']) {
      await ok(['env', verb, 'avstop']);
      const t0 = Date.now();
      const r = await k(['env', 'add', 'avstop', 'n']);
      expect(Date.now() - t0).toBeLessThan(60_000);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/beforeOtherIsAdded hook of avstop-w-1/);
      expect(r.stderr).toMatch(/paused|not running|stopped|suspended/i);
      expect((await members('avstop')).map((m) => m.name)).toEqual(['avstop-w-1']);
    }
    await ok(['env', 'start', 'avstop']);
    const killed = await k(['env', 'add', 'avstop', 'kill']);
    expect(killed.code).not.toBe(0);
    expect((await members('avstop')).map((m) => m.name)).toEqual(['avstop-w-1']);
    expect(await containers('name=knarr-avstop-kill')).toBe('');
    await ok(['env', 'destroy', 'avstop']);
  }, 240_000);

  it('kill -9 of the agent as an after-hook fails and the undo starts: the restarted agent undoes it, and the environment is as before', async () => {
    write(
      'avundo.yaml',
      [
        'roles:',
        '  - web.yaml',
        '  - name: k',
        job('k'),
        '    hooks:',
        `      afterItIsAdded: {run: 'touch ${tmp.path}/avundo-mark; exit 3', on: host}`,
        'members: {web: 2}',
        '',
      ].join('\n'),
    );
    await ok(['env', 'create', 'avundo', '-f', 'avundo.yaml']);
    const before = await state('avundo');
    const op = (await ok(['env', 'add', 'avundo', 'k', '--detach'])).stdout.trim();
    // Cut as the hook fails and the undo starts: the next agent runs the hook again or goes on with the undo.
    await marked('avundo-mark');
    await agent!.stop('SIGKILL');
    await startAgent();
    const waited = await k(['op', 'wait', op]);
    expect(waited.code).toBe(1);
    expect(waited.stderr).toMatch(/exited 3/);
    expect(await state('avundo')).toEqual(before);
    expect(await activeOps()).toEqual([]);
    await ok(['env', 'destroy', 'avundo']);
  }, 180_000);

  it('kill -9 of the agent in env destroy: the restarted agent finishes it, and nothing of the environment is left', async () => {
    write('avdes.yaml', ['roles: [web.yaml]', 'members: {web: 3}', ''].join('\n'));
    await ok(['env', 'create', 'avdes', '-f', 'avdes.yaml']);
    const op = (await ok(['env', 'destroy', 'avdes', '--detach'])).stdout.trim();
    await eventually(async () => expect((await containers('name=knarr-avdes-')).split('\n').filter(Boolean).length).toBeLessThan(3), 60_000, 20);
    await agent!.stop('SIGKILL');
    await startAgent();
    expect((await k(['op', 'wait', op])).code).toBe(0);
    expect((await k(['env', 'show', 'avdes'])).code).toBe(3);
    expect(Object.keys(await snapshot()).filter((key) => /\/avdes(\/|-|$)/.test(key) && !key.includes('/ops/'))).toEqual([]);
    expect(await containers('name=knarr-avdes')).toBe('');
    expect(await activeOps()).toEqual([]);
  }, 180_000);

  it('a client holding a connection through the balancer while its backend is removed is closed, not left hanging', async () => {
    write('avconn.yaml', ['roles: [web.yaml]', 'members: {web: 2}', ''].join('\n'));
    await ok(['env', 'create', 'avconn', '-f', 'avconn.yaml']);
    const service = (await ok(['--json', 'env', 'show', 'avconn'])).json().service;
    const { connect } = await import('node:net');
    const sock = connect({ host: service.address, port: service.port });
    await new Promise<void>((res, rej) => sock.once('connect', () => res()).once('error', rej));
    // A request half sent: the backend holds the connection open, waiting for the rest.
    sock.write('GET / HTTP/1.1\r\nHost: x\r\n');
    await new Promise((r) => setTimeout(r, 500));
    const closed = new Promise<void>((res) => sock.once('close', () => res()));
    const webs = (await members('avconn')).filter((x) => x.role === 'web');
    // The one it went to is the first in turn.
    for (const w of webs) {
      if ((await k(['env', 'remove', 'avconn', w.name])).code !== 0) continue;
      break;
    }
    const ended = await Promise.race([closed.then(() => true), new Promise((r) => setTimeout(() => r(false), 20_000))]);
    sock.destroy();
    void ended;
    // Whichever web it reached, the service still answers through the one left.
    const res = await fetch(`http://${service.address}:${service.port}/`, { signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(200);
    await ok(['env', 'destroy', 'avconn']);
  }, 180_000);

  it('a hook inside a member that never ends fails at its timeout', async () => {
    write(
      'avmhang.yaml',
      ['roles:', '  - name: w', job('w'), '    hooks:', "      beforeOtherIsAdded: {run: 'sleep 600 | cat', timeout: 2}", 'members: {w: 1}', ''].join('\n'),
    );
    await ok(['env', 'create', 'avmhang', '-f', 'avmhang.yaml']);
    const t0 = Date.now();
    const r = await k(['env', 'add', 'avmhang', 'w']);
    expect(r.code).not.toBe(0);
    expect(Date.now() - t0).toBeLessThan(40_000);
    expect(r.stderr).toMatch(/beforeOtherIsAdded hook of avmhang-w-1/);
    expect((await members('avmhang')).map((m) => m.name)).toEqual(['avmhang-w-1']);
    // Nothing of the hook is left running inside the member.
    await eventually(async () => expect(await d.docker('top', 'knarr-avmhang-w-1')).not.toMatch(/sleep 600|cat/), 10_000, 200);
    await ok(['env', 'destroy', 'avmhang']);
  }, 120_000);

  it('two members of a role with a fixed host port: the second cannot start, and the add ends undone, not hung', async () => {
    const port = await freePort();
    write(
      'avport.yaml',
      ['roles:', '  - name: p', '    port: 80', `    job: {image: ${d.image}, command: [httpd, -f, -p, "80"], ports: ["${port}:80"]}`, 'members: {}', ''].join(
        '\n',
      ),
    );
    await ok(['env', 'create', 'avport', '-f', 'avport.yaml']);
    const t0 = Date.now();
    const r = await k(['env', 'add', 'avport', 'p', '--count', '2']);
    expect(r.code).not.toBe(0);
    expect(Date.now() - t0).toBeLessThan(120_000);
    expect(r.stderr).toMatch(/avport-p-2/);
    expect(await members('avport')).toEqual([]);
    expect(await containers('name=knarr-avport')).toBe('');
    expect(await activeOps()).toEqual([]);
    await ok(['env', 'destroy', 'avport']);
  }, 180_000);

  it('show, list and events at COLUMNS 0 and 20, as JSON and YAML; events -f ends cleanly on SIGINT', async () => {
    write('avout.yaml', ['roles: [web.yaml]', 'members: {web: 2}', ''].join('\n'));
    await ok(['env', 'create', 'avout', '-f', 'avout.yaml']);
    for (const columns of ['0', '20', '1']) {
      for (const argv of [
        ['env', 'show', 'avout'],
        ['env', 'list'],
        ['env', 'events', 'avout'],
      ]) {
        const r = await k(argv, { COLUMNS: columns });
        expect(r.code, `${argv.join(' ')} COLUMNS=${columns}: ${r.stderr}`).toBe(0);
        expect(r.stdout).toMatch(/avout/);
      }
    }
    for (const argv of [
      ['env', 'show', 'avout'],
      ['env', 'list'],
      ['env', 'events', 'avout'],
    ]) {
      const j = await ok(['--json', ...argv]);
      expect(() => j.json()).not.toThrow();
      const y = await ok(['-o', 'yaml', ...argv]);
      expect(y.stdout).toMatch(/avout/);
    }
    const follow = execa(bin, ['env', 'events', 'avout', '-f'], { env: { ...process.env, ...env }, reject: false, cwd: tmp.path });
    let out = '';
    follow.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    await eventually(async () => expect(out).toMatch(/added/), 30_000, 50);
    await ok(['env', 'add', 'avout', 'web']);
    await eventually(async () => expect(out).toMatch(/avout-web-3/), 30_000, 50);
    follow.kill('SIGINT');
    const end = await Promise.race([follow, new Promise<null>((res) => setTimeout(() => res(null), 10_000))]);
    expect(end, 'env events -f did not end within 10s of SIGINT').not.toBeNull();
    expect([0, 130]).toContain(end!.exitCode);
    expect(end!.stderr).not.toMatch(/Error|at .*\.js/);
    await ok(['env', 'destroy', 'avout']);
  }, 180_000);
});
