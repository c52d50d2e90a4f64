import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { haveDockerd, type Dockerd } from '../harness/dockerd.js';
import { eventually } from '../harness/eventually.js';
import type { TempDir } from '../harness/tmp.js';
import { startEnvHost, type EnvHost, type EnvMemberShown } from '../harness/env-host.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'env',
  haveDockerd() && haveTools('etcd'),
  'needs dockerd, docker, busybox-static and etcd (Debian packages docker.io, busybox-static, etcd-server)',
);

type Member = EnvMemberShown;

/**
 * Environments on one host: a real dockerd, etcd and agent. The seed's example (webs behind a balancer that
 * follows them), hooks that deny, hooks in priority order, an after-hook that undoes, lifecycle, and kill -9.
 */
describe.skipIf(!run)('environments: roles, ordered hooks, the balancer', () => {
  let tmp: TempDir;
  let d: Dockerd;
  let agent: AgentUnderTest | null = null;
  let env: Record<string, string>;
  let host: EnvHost;
  const k = (argv: string[]) => knarr(argv, { env, cwd: tmp.path });
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

  /** Each answer of the service at addr over n requests. */
  const answers = async (addr: string, n: number): Promise<string[]> => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await fetch(`http://${addr}/`, { signal: AbortSignal.timeout(5000) });
      out.push((await res.text()).trim());
    }
    return out;
  };

  beforeAll(async () => {
    host = await startEnvHost('knarr-env-', 'e1');
    ({ tmp, d, env } = host);
    await startAgent();
    // A web serves its own hostname (its container's), on any free host port.
    write('web.yaml', host.webRole());
    write('shop.yaml', 'roles: [web.yaml]\nmembers: {}\n');
  }, 180_000);

  afterAll(async () => {
    await host?.stop([agent]);
  }, 120_000);

  it("the seed's example: one web, then a second brings the balancer before it; the service answers with every web", async () => {
    await ok(['env', 'create', 'shop', '-f', 'shop.yaml']);
    expect(await members('shop')).toEqual([]);

    await ok(['env', 'add', 'shop', 'web']);
    let m = await members('shop');
    expect(m.map((x) => [x.name, x.state])).toEqual([['shop-web-1', 'running']]);
    expect(m[0]!.address).toMatch(/^127\.0\.0\.1:\d+$/);

    // The second web needs the balancer: it is added before the web, and learns web 1 at once.
    await ok(['env', 'add', 'shop', 'web']);
    m = await members('shop');
    expect(m.map((x) => x.name)).toEqual(['shop-web-1', 'shop-balancer-1', 'shop-web-2']);
    const history = (await ok(['--json', 'env', 'events', 'shop'])).json() as { event: string; member: string; other?: string }[];
    const added = history.filter((h) => h.event === 'added').map((h) => h.member);
    expect(added).toEqual(['shop-web-1', 'shop-balancer-1', 'shop-web-2']);
    // The balancer heard of web 2 after it was bound (afterOtherIsAdded, built in).
    expect(history.some((h) => h.event === 'afterOtherIsAdded' && h.member === 'shop-balancer-1' && h.other === 'shop-web-2')).toBe(true);

    const shown = (await ok(['--json', 'env', 'show', 'shop'])).json();
    const service = `${shown.service.address}:${shown.service.port}`;
    const hostnames = async (n: number) => new Set(await answers(service, n));
    const webs = async () =>
      new Set(
        await Promise.all(
          (await members('shop'))
            .filter((x) => x.role === 'web')
            .map(async (x) => (await d.docker('inspect', '-f', '{{.Config.Hostname}}', `knarr-${x.name}`)).trim()),
        ),
      );
    expect(await hostnames(6)).toEqual(await webs());
    expect((await webs()).size).toBe(2);

    // A job linked to the environment's service reaches a web through the host's ambassador.
    const linked = await ok(['job', 'run', '--link', 'shop', d.image, '--', 'sh', '-c', 'wget -qO- http://$SHOP_ADDR/']);
    expect(await webs()).toContain(linked.stdout.trim());

    await ok(['env', 'add', 'shop', 'web']);
    expect((await webs()).size).toBe(3);
    expect(await hostnames(9)).toEqual(await webs());

    await ok(['env', 'remove', 'shop', 'shop-web-2']);
    expect((await members('shop')).map((x) => x.name)).toEqual(['shop-web-1', 'shop-balancer-1', 'shop-web-3']);
    expect(await containers('name=knarr-shop-web-2')).toBe('');
    const two = await hostnames(8);
    expect(two).toEqual(await webs());
    expect(two.size).toBe(2);

    // The balancer stays while two webs require it.
    const refused = await k(['env', 'remove', 'shop', 'shop-balancer-1']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/web requires a balancer from 2/);
  }, 240_000);

  it('--dry-run of add, remove, stop and destroy prints the members and hooks in order and changes nothing', async () => {
    const before = { members: await members('shop'), containers: await containers('name=knarr-shop-') };
    const add = await ok(['--dry-run', 'env', 'add', 'shop', 'web']);
    expect(add.stdout + add.stderr).toMatch(/add shop-web-4 \(role web\):[\s\S]*afterOtherIsAdded of shop-balancer-1 \(about shop-web-4\): built in/);
    const rm = await ok(['--dry-run', 'env', 'remove', 'shop', 'shop-web-1']);
    expect(rm.stdout + rm.stderr).toMatch(/remove shop-web-1 \(role web\)[\s\S]*afterOtherIsRemoved of shop-balancer-1 \(about shop-web-1\)/);
    for (const verb of ['stop', 'suspend', 'destroy']) {
      const r = await ok(['--dry-run', 'env', verb, 'shop']);
      expect(r.stdout + r.stderr).toMatch(new RegExp(`${verb} shop-web-1`));
    }
    expect({ members: await members('shop'), containers: await containers('name=knarr-shop-') }).toEqual(before);
    expect((await ok(['--json', 'op', 'list', '--active'])).json()).toEqual([]);
  });

  it('two adds at once: both serialise or the second is refused; names stay unique and nothing is left half-made', async () => {
    const before = (await members('shop')).length;
    const [a, b] = await Promise.all([k(['env', 'add', 'shop', 'web']), k(['env', 'add', 'shop', 'web'])]);
    for (const r of [a, b]) expect([0, 4], r.stderr).toContain(r.code);
    const after = await members('shop');
    const made = [a, b].filter((r) => r.code === 0).length;
    expect(after.length).toBe(before + made);
    expect(new Set(after.map((m) => m.name)).size).toBe(after.length);
    expect(after.every((m) => m.state === 'running')).toBe(true);
    expect((await containers('name=knarr-shop-web')).split('\n').length).toBe(after.filter((m) => m.role === 'web').length);
  }, 120_000);

  it('a beforeItIsAdded hook that exits 1 denies the add: its message is the error, nothing is made', async () => {
    write(
      'guard.yaml',
      [
        'roles:',
        '  - name: guard',
        '    job: {image: ' + d.image + ', command: [sleep, "3600"]}',
        '    hooks:',
        '      beforeItIsAdded: {run: \'echo "no room for $KNARR_MEMBER in $KNARR_ENV" >&2; exit 1\', on: host}',
        'members: {}',
        '',
      ].join('\n'),
    );
    await ok(['env', 'create', 'fort', '-f', 'guard.yaml']);
    const r = await k(['env', 'add', 'fort', 'guard']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/beforeItIsAdded hook of fort-guard-1 exited 1: no room for fort-guard-1 in fort/);
    expect(await members('fort')).toEqual([]);
    expect(await containers('name=knarr-fort-guard')).toBe('');
    expect((await ok(['--json', 'job', 'list'])).json().filter((j: { name: string }) => j.name.startsWith('fort-'))).toEqual([]);
    const events = (await ok(['--json', 'env', 'events', 'fort'])).json() as { event: string; exit?: number; durationMs?: number; on?: string }[];
    expect(events.find((e) => e.event === 'beforeItIsAdded')).toMatchObject({ exit: 1, on: 'host' });
    // Denied again with a file create: the whole create is undone, no record left.
    write('fort2.yaml', readFileSync(`${tmp.path}/guard.yaml`, 'utf8').replace('members: {}', 'members: {guard: 1}'));
    const c = await k(['env', 'create', 'fort2', '-f', 'fort2.yaml']);
    expect(c.code).not.toBe(0);
    expect(c.stderr).toMatch(/no room for fort2-guard-1/);
    expect((await k(['env', 'show', 'fort2'])).code).toBe(3);
    await ok(['env', 'destroy', 'fort']);
  }, 120_000);

  it('hooks run in priority order, inside members and on the host, each run shown with its exit and duration', async () => {
    const log = `${tmp.path}/order.log`;
    writeFileSync(log, '');
    const role = (name: string, priority: number) =>
      [
        `  - name: ${name}`,
        `    priority: ${priority}`,
        `    job: {image: ${d.image}, command: [sleep, "3600"], volumes: ["${tmp.path}:/shared"]}`,
        '    hooks:',
        `      beforeItIsAdded: {run: 'echo "$KNARR_EVENT $KNARR_MEMBER" >> ${log}', on: host}`,
        `      afterItIsAdded: 'echo "$KNARR_EVENT $KNARR_MEMBER" >> /shared/order.log'`,
        `      beforeOtherIsAdded: 'echo "$KNARR_EVENT $KNARR_MEMBER $KNARR_OTHER $KNARR_OTHER_ROLE" >> /shared/order.log'`,
        `      afterOtherIsAdded: 'echo "$KNARR_EVENT $KNARR_MEMBER $KNARR_OTHER $KNARR_OTHER_ROLE" >> /shared/order.log'`,
      ].join('\n');
    write('prio.yaml', ['roles:', role('cc', 30), role('aa', 10), role('bb', 20), 'members: {bb: 1, cc: 1, aa: 1}', ''].join('\n'));
    await ok(['env', 'create', 'prio', '-f', 'prio.yaml']);
    // Made lowest priority first.
    expect((await members('prio')).map((m) => m.name)).toEqual(['prio-aa-1', 'prio-bb-1', 'prio-cc-1']);
    writeFileSync(log, '');
    await ok(['env', 'add', 'prio', 'bb']);
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual([
      'beforeItIsAdded prio-bb-2',
      'beforeOtherIsAdded prio-aa-1 prio-bb-2 bb',
      'beforeOtherIsAdded prio-bb-1 prio-bb-2 bb',
      'beforeOtherIsAdded prio-cc-1 prio-bb-2 bb',
      'afterItIsAdded prio-bb-2',
      'afterOtherIsAdded prio-aa-1 prio-bb-2 bb',
      'afterOtherIsAdded prio-bb-1 prio-bb-2 bb',
      'afterOtherIsAdded prio-cc-1 prio-bb-2 bb',
    ]);
    const events = (await ok(['--json', 'env', 'events', 'prio'])).json() as { event: string; member: string; exit?: number; durationMs?: number }[];
    const runs = events.filter((e) => e.exit !== undefined);
    expect(runs.length).toBeGreaterThanOrEqual(8 + 12);
    for (const e of runs) {
      expect(e.exit).toBe(0);
      expect(e.durationMs).toBeGreaterThanOrEqual(0);
    }
    const table = (await ok(['env', 'events', 'prio'])).stdout;
    expect(table).toMatch(/afterOtherIsAdded\s+prio-cc-1\s+prio-bb-2\s+member\s+e1\s+0\s+\d+ms/);
    await ok(['env', 'destroy', 'prio']);
    expect(await containers('name=knarr-prio-')).toBe('');
  }, 180_000);

  it('an afterItIsAdded hook that fails undoes the add: the member and its container go', async () => {
    write(
      'late.yaml',
      [
        'roles:',
        '  - name: app',
        `    job: {image: ${d.image}, command: [sleep, "3600"]}`,
        "    hooks: {afterItIsAdded: 'echo cannot configure >&2; exit 3'}",
        '  - name: db',
        `    job: {image: ${d.image}, command: [sleep, "3600"]}`,
        'members: {db: 1}',
        '',
      ].join('\n'),
    );
    await ok(['env', 'create', 'late', '-f', 'late.yaml']);
    const r = await k(['env', 'add', 'late', 'app', '--count', '2']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/afterItIsAdded hook of late-app-1 exited 3: cannot configure/);
    expect(r.stderr).toMatch(/undone/);
    expect((await members('late')).map((m) => m.name)).toEqual(['late-db-1']);
    expect(await containers('name=knarr-late-app')).toBe('');
    await ok(['env', 'destroy', 'late']);
  }, 120_000);

  it('stop, start, suspend, resume move every member; destroy leaves nothing', async () => {
    // Members that stop at SIGTERM (a plain sleep as pid 1 ignores it, and docker waits 10 s).
    const loop = `[sh, -c, 'trap "exit 0" TERM; while :; do sleep 1; done']`;
    write('life.yaml', ['roles:', '  - name: w', `    job: {image: ${d.image}, command: ${loop}}`, 'members: {w: 2}', ''].join('\n'));
    await ok(['env', 'create', 'life', '-f', 'life.yaml']);
    const states = async () =>
      (await containers('name=knarr-life-'))
        .split('\n')
        .map((l) => l.split(' ')[1])
        .sort();
    expect(await states()).toEqual(['running', 'running']);
    await ok(['env', 'suspend', 'life']);
    expect(await states()).toEqual(['paused', 'paused']);
    expect((await members('life')).map((m) => m.state)).toEqual(['suspended', 'suspended']);
    await ok(['env', 'resume', 'life']);
    expect(await states()).toEqual(['running', 'running']);
    await ok(['env', 'stop', 'life']);
    expect(await states()).toEqual(['exited', 'exited']);
    await ok(['env', 'start', 'life']);
    expect(await states()).toEqual(['running', 'running']);
    // A member's job is changed through its environment.
    const rm = await k(['job', 'rm', 'life-w-1']);
    expect(rm.code).toBe(4);
    expect(rm.stderr).toMatch(/member of environment life[\s\S]*knarr env remove life life-w-1/);
    expect((await k(['job', 'stop', 'life-w-2'])).code).toBe(4);
    const listed = (await ok(['--json', 'env', 'list'])).json() as { name: string; state: string }[];
    expect(listed.find((e) => e.name === 'life')).toMatchObject({ state: 'running' });
    await ok(['env', 'destroy', 'life']);
    expect(await containers('name=knarr-life-')).toBe('');
    expect((await k(['env', 'show', 'life'])).code).toBe(3);
  }, 180_000);

  it('kill -9 of the agent in the middle of a create of 5: the restarted agent completes it; after op cancel nothing is left', async () => {
    write('five.yaml', ['roles:', '  - name: w', `    job: {image: ${d.image}, command: [sleep, "3600"]}`, 'members: {w: 5}', ''].join('\n'));
    const created = await ok(['env', 'create', 'five', '-f', 'five.yaml', '--detach']);
    const op = created.stdout.trim();
    await eventually(async () => expect((await containers('name=knarr-five-')).split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(2), 60_000, 20);
    await agent!.stop('SIGKILL');
    await startAgent();
    const waited = await k(['op', 'wait', op]);
    expect(waited.code, waited.stderr).toBe(0);
    expect((await members('five')).map((m) => [m.name, m.state])).toEqual([1, 2, 3, 4, 5].map((i) => [`five-w-${i}`, 'running']));
    expect((await containers('name=knarr-five-')).split('\n').length).toBe(5);

    write('six.yaml', ['roles:', '  - name: w', `    job: {image: ${d.image}, command: [sleep, "3600"]}`, 'members: {w: 5}', ''].join('\n'));
    const second = (await ok(['env', 'create', 'six', '-f', 'six.yaml', '--detach'])).stdout.trim();
    await eventually(async () => expect((await containers('name=knarr-six-')).split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(2), 60_000, 20);
    await agent!.stop('SIGKILL');
    await ok(['op', 'cancel', second]);
    await startAgent();
    const ended = await k(['op', 'wait', second]);
    expect(ended.code).toBe(1);
    expect((await ok(['--json', 'op', 'show', second])).json().status).toBe('cancelled');
    expect((await k(['env', 'show', 'six'])).code).toBe(3);
    expect(await containers('name=knarr-six-')).toBe('');
    expect((await ok(['--json', 'job', 'list'])).json().filter((j: { name: string }) => j.name.startsWith('six-'))).toEqual([]);
    expect((await ok(['--json', 'op', 'list', '--active'])).json()).toEqual([]);
    await ok(['env', 'destroy', 'five']);
  }, 300_000);

  it("a job of a member's name that the environment did not make is neither taken over nor removed", async () => {
    await ok(['job', 'run', '-d', '--name', 'gate-w-1', d.image, '--', 'sleep', '3600']);
    write('gate.yaml', ['roles:', '  - name: w', `    job: {image: ${d.image}, command: [sleep, "3600"]}`, 'members: {w: 1}', ''].join('\n'));
    const refused = await k(['env', 'create', 'gate', '-f', 'gate.yaml']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/jobs named gate-w-1 exist outside the environment/);
    write('gate-w.yaml', ['name: w', `job: {image: ${d.image}, command: [sleep, "3600"]}`, ''].join('\n'));
    await ok(['env', 'create', 'gate']);
    const add = await k(['env', 'add', 'gate', 'w', '-f', 'gate-w.yaml']);
    expect(add.code).not.toBe(0);
    expect(add.stderr).toMatch(/a job named gate-w-1 exists that is no member of environment gate/);
    expect((await ok(['--json', 'job', 'show', 'gate-w-1'])).json()).toMatchObject({ state: 'running' });
    expect(await members('gate')).toEqual([]);
    // Two balancers would fight over the service: refused.
    expect((await k(['env', 'add', 'gate', 'balancer', '--count', '2'])).code).toBe(4);
    await ok(['env', 'destroy', 'gate']);
    await ok(['job', 'rm', 'gate-w-1']);
  }, 120_000);

  it('bad input is refused before anything is written, naming the field', async () => {
    write(
      'bad.yaml',
      ['roles:', '  - name: web', '    priority: high', '    job: {command: [x]}', '    hooks: {onTuesday: x}', 'members: {web: 1, db: 2}', ''].join('\n'),
    );
    const r = await k(['env', 'create', 'bad', '-f', 'bad.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/roles\[0\]\.priority/);
    expect(r.stderr).toMatch(/roles\[0\]\.job/);
    expect(r.stderr).toMatch(/roles\[0\]\.hooks\.onTuesday/);
    expect(r.stderr).toMatch(/members\.db/);
    expect((await k(['env', 'show', 'bad'])).code).toBe(3);
    expect((await k(['env', 'create', 'web-80'])).stderr).toMatch(/ends like a job's service/);
    const dry = await k(['--dry-run', 'env', 'create', 'dry', '-f', 'shop.yaml']);
    expect(dry.code, dry.stderr).toBe(0);
    expect((await k(['env', 'show', 'dry'])).code).toBe(3);
  });
});
