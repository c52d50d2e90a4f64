import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { spawnHostAgent, stopAgents, type AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { pickSubnet } from '../harness/net.js';
import { haveNetns, makeFabric, type Fabric, type NetHost } from '../harness/netns.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'env-hosts',
  haveNetns() && haveTools('etcd'),
  'needs root, iproute2, dockerd, docker, busybox-static and etcd (Debian packages iproute2, docker.io, busybox-static, etcd-server)',
);

/** The lease TTL the agents run with (the harness's). */
const TTL = 2;

interface Member {
  name: string;
  role: string;
  kind: string;
  host: string | null;
  address: string | null;
  state: string;
}
interface History {
  at: string;
  event: string;
  member: string;
  other?: string;
  host?: string;
  exit?: number;
  message?: string;
}

/**
 * Environments over three network-namespace hosts (a dockerd and an agent each, one etcd): the host of the balancer
 * goes down (its agent killed, its network cut) and a new balancer runs on another host; the members hear isDown and
 * isUp; the old balancer is collected when its host is back; members hear afterCcStart and beforeCcStop.
 */
describe.skipIf(!run)('environments over hosts that go down', () => {
  let tmp: TempDir;
  let fabric: Fabric;
  let etcd: EtcdInstance;
  let tokenFile: string;
  let shared: string;
  const hosts: Record<string, NetHost> = {};
  const agents: Record<string, AgentUnderTest> = {};
  let env: Record<string, string>;
  const k = (argv: string[], stateDir = `${tmp.path}/cli-state`) => knarr(argv, { env: { ...env, KNARR_STATE_DIR: stateDir }, cwd: tmp.path });
  const ok = async (argv: string[], stateDir?: string) => {
    const r = await k(argv, stateDir);
    expect(r.code, `knarr ${argv.join(' ')}\n${r.stderr}\n${r.stdout}`).toBe(0);
    return r;
  };
  const startAgent = (name: string, tags: string) => {
    agents[name] = spawnHostAgent(hosts[name]!, {
      etcd: etcd.url,
      stateDir: `${tmp.path}/${name}-state`,
      tokenFile,
      ttl: TTL,
      // A host down is not waited for: its members are down as soon as its lease lapsed.
      flags: ['--tags', tags, '--restart-grace', '0'],
    });
    return agents[name]!;
  };
  const show = async (name: string) =>
    (await ok(['--json', 'env', 'show', name])).json() as { home: string; members: Member[]; service: { address: string; port: number } | null };
  const history = async (name: string) => (await ok(['--json', 'env', 'events', name])).json() as History[];
  // A failure shows what the agents said (their logs go with the test's directory).
  const showLogsOnFailure = () =>
    onTestFailed(() => {
      for (const a of Object.values(agents)) console.error(`--- agent ${a.name}\n${a.log().split('\n').slice(-60).join('\n')}`);
    });
  const lines = (file: string) =>
    existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .map((l) => l.trim())
          .filter(Boolean)
      : [];

  /** The answers (hostnames) of the service at addr over n requests; a refused or silent one is an error. */
  const answers = async (addr: string, n: number): Promise<Set<string>> => {
    const out = new Set<string>();
    for (let i = 0; i < n; i++) {
      const res = await fetch(`http://${addr}/`, { signal: AbortSignal.timeout(3000) });
      out.add((await res.text()).trim());
    }
    return out;
  };
  const webHostnames = async (name: string): Promise<Set<string>> => {
    const out = new Set<string>();
    for (const m of (await show(name)).members.filter((x) => x.role === 'web'))
      out.add((await hosts[m.host!]!.dockerd.docker('inspect', '-f', '{{.Config.Hostname}}', `knarr-${m.name}`)).trim());
    return out;
  };

  beforeAll(async () => {
    tmp = await tempDir('knarr-envdown-');
    shared = `${tmp.path}/shared`;
    mkdirSync(shared, { recursive: true });
    fabric = await makeFabric(tmp.path);
    etcd = await startEtcd(fabric.gateway);
    tokenFile = `${tmp.path}/agent.token`;
    writeFileSync(tokenFile, 'envdown-test-token-0123456789\n', { mode: 0o600 });
    for (const name of ['ha', 'hb', 'hc']) hosts[name] = await fabric.addHost(name);
    // A netns host's dockerd has no default bridge: the webs get a network of their own on each host, their port published on it.
    for (const name of ['hb', 'hc']) await hosts[name]!.dockerd.docker('network', 'create', '--subnet', `${await pickSubnet()}.0/24`, 'dnnet');
    env = { KNARR_ETCD: etcd.url, KNARR_AGENT_TOKEN_FILE: tokenFile };
    startAgent('ha', 'home,mv');
    startAgent('hb', 'web');
    startAgent('hc', 'web');
    for (const a of Object.values(agents)) await a.up(90_000);
    const image = hosts.ha!.dockerd.image;
    const log = (file: string, what: string) => `'echo "${what}" >> /shared/${file}'`;
    writeFileSync(
      `${tmp.path}/dn.yaml`,
      [
        'roles:',
        '  - name: web',
        '    priority: 20',
        '    port: 80',
        '    requires: [{role: balancer, from: 2}]',
        '    job:',
        `      image: ${image}`,
        "      command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www']",
        '      ports: ["0:80"]',
        '      network: dnnet',
        '      tags: [web]',
        `      volumes: ["${shared}:/shared"]`,
        '    hooks:',
        `      isDown: ${log('events.log', '$KNARR_EVENT $KNARR_MEMBER $KNARR_OTHER')}`,
        `      isUp: ${log('events.log', '$KNARR_EVENT $KNARR_MEMBER $KNARR_OTHER')}`,
        // side runs on the balancer's host and stays there (pinned): it is down with it, and up when it is back.
        '  - name: side',
        '    priority: 30',
        `    job: {image: ${image}, command: [sleep, "3600"], network: none, host: ha, volumes: ["${shared}:/shared"]}`,
        '    hooks:',
        `      isDown: ${log('events.log', '$KNARR_EVENT $KNARR_MEMBER $KNARR_OTHER')}`,
        `      isUp: ${log('events.log', '$KNARR_EVENT $KNARR_MEMBER $KNARR_OTHER')}`,
        `      afterCcStart: ${log('cc.log', '$KNARR_EVENT $KNARR_MEMBER')}`,
        `      beforeCcStop: ${log('cc.log', '$KNARR_EVENT $KNARR_MEMBER')}`,
        // mover starts on ha (the one host tagged mv until hb is): when ha is down, the job machinery moves it to hb.
        '  - name: mover',
        '    priority: 40',
        // No bind mount (that would fix it to its host): its hooks run on its host, which sees the same directory.
        `    job: {image: ${image}, command: [sleep, "3600"], network: none, tags: [mv]}`,
        '    hooks:',
        `      isDown: {run: 'echo "$KNARR_EVENT $KNARR_MEMBER $KNARR_OTHER" >> ${shared}/events.log', on: host}`,
        `      isUp: {run: 'echo "$KNARR_EVENT $KNARR_MEMBER $KNARR_OTHER" >> ${shared}/events.log', on: host}`,
        'members: {web: 2, side: 1, mover: 1}',
        '',
      ].join('\n'),
    );
  }, 300_000);

  afterAll(async () => {
    await stopAgents(Object.values(agents));
    await fabric?.teardown();
    await etcd?.stop();
    await tmp?.cleanup();
  }, 120_000);

  it('the host of the balancer goes down: a new balancer elsewhere within 2x the TTL, the service answers; back, the old one is collected', async () => {
    showLogsOnFailure();
    // Created from ha: its home, where the balancer goes.
    await ok(['env', 'create', 'dn1', '-f', 'dn.yaml'], `${tmp.path}/ha-state`);
    let shown = await show('dn1');
    expect(shown.home).toBe('ha');
    const byName = (n: string) => shown.members.find((m) => m.name === n)!;
    expect(shown.members.map((m) => m.name).sort()).toEqual(['dn1-balancer-1', 'dn1-mover-1', 'dn1-side-1', 'dn1-web-1', 'dn1-web-2']);
    for (const m of ['dn1-balancer-1', 'dn1-side-1', 'dn1-mover-1']) expect(byName(m)).toMatchObject({ host: 'ha', state: 'running' });
    // From now on hb may run mover too: where it goes when ha is down.
    await ok(['host', 'tag', 'hb', 'mv']);
    for (const w of ['dn1-web-1', 'dn1-web-2']) expect(['hb', 'hc']).toContain(byName(w).host);
    expect(shown.service).toMatchObject({ address: hosts.ha!.ip });
    const webs = await webHostnames('dn1');
    expect(webs.size).toBe(2);
    expect(await answers(`${shown.service!.address}:${shown.service!.port}`, 6)).toEqual(webs);

    // ha goes down: its network cut and its agent killed (its members' containers live on in its dockerd).
    const killedAt = Date.now();
    await execa('ip', ['-n', hosts.ha!.ns, 'link', 'set', 'eth0', 'down']);
    agents.ha!.proc.kill('SIGKILL');
    await agents.ha!.proc;
    let servedAt = 0;
    await eventually(
      async () => {
        const now = await show('dn1');
        expect(now.service?.address).toBe(hosts.hb!.ip);
        expect(await answers(`${now.service!.address}:${now.service!.port}`, 4)).toEqual(webs);
        servedAt ||= Date.now();
        // The reaction goes on after the service answers: the member is recorded running once its host serves it.
        expect(now.members.find((m) => m.name === 'dn1-balancer-2')?.state).toBe('running');
        shown = now;
      },
      60_000,
      100,
    );
    expect(shown.home).toBe('hb');
    expect(byName('dn1-balancer-1')).toMatchObject({ host: 'ha', state: 'lost' });
    expect(byName('dn1-balancer-2')).toMatchObject({ host: 'hb', state: 'running' });
    expect(byName('dn1-side-1')).toMatchObject({ host: 'ha', state: 'down' });
    // mover's job moves to hb (no restart grace), and it is up again there: it and the webs hear isUp.
    await eventually(
      async () => expect((await show('dn1')).members.find((m) => m.name === 'dn1-mover-1')).toMatchObject({ host: 'hb', state: 'running' }),
      60_000,
    ).catch(async (e) => {
      console.error(
        (await k(['--json', 'job', 'show', 'dn1-mover-1'])).stdout,
        (await k(['--json', 'host', 'list'])).stdout,
        (await k(['--json', 'job', 'history', 'dn1-mover-1'])).stdout,
      );
      throw e;
    });

    // The fleet's down event of ha says when its lease lapsed; the environment's history when the new balancer was added.
    const events = (await ok(['--json', 'events', '-n', '0'])).json() as { at: string; kind: string; object: string; event: string }[];
    const lapsed = Date.parse(events.find((e) => e.kind === 'host' && e.object === 'ha' && e.event === 'down')!.at);
    // Each web heard of each member that went down, itself on its host: KNARR_OTHER names it.
    await eventually(async () =>
      expect(lines(`${shared}/events.log`).sort()).toEqual(
        [
          ...['dn1-web-1', 'dn1-web-2'].flatMap((w) => [`isDown ${w} dn1-balancer-1`, `isDown ${w} dn1-side-1`, `isDown ${w} dn1-mover-1`]),
          ...['isUp dn1-mover-1', 'isUp dn1-web-1 dn1-mover-1', 'isUp dn1-web-2 dn1-mover-1'],
        ].sort(),
      ),
    );
    const h = await history('dn1');
    const added = Date.parse(h.find((x) => x.event === 'added' && x.member === 'dn1-balancer-2')!.at);
    const timing = {
      leaseLapsedMs: lapsed - killedAt,
      newBalancerAfterLapseMs: added - lapsed,
      newBalancerAfterKillMs: added - killedAt,
      servedAfterKillMs: servedAt - killedAt,
    };
    console.log(`env-hosts timing (TTL ${TTL}s): ${JSON.stringify(timing)}`);
    // The new balancer serves within 2x the TTL of the lapse; the lapse itself comes at most a TTL after the kill (the last renewal).
    expect(added - lapsed).toBeLessThanOrEqual(2 * TTL * 1000);
    expect(added - killedAt).toBeLessThanOrEqual(3 * TTL * 1000);
    expect(h.map((x) => `${x.event} ${x.member}`)).toEqual(
      expect.arrayContaining(['down dn1-balancer-1', 'down dn1-side-1', 'down dn1-mover-1', 'lost dn1-balancer-1']),
    );
    expect(h.find((x) => x.event === 'up' && x.member === 'dn1-mover-1')).toMatchObject({ host: 'hb', message: 'runs on hb now (was ha)' });
    expect(h.find((x) => x.event === 'isDown' && x.member === 'dn1-balancer-1' && x.message?.startsWith('replaced by dn1-balancer-2'))).toBeTruthy();
    expect(h.find((x) => x.event === 'isDown' && x.member === 'dn1-side-1' && !x.other)?.message).toMatch(/skipped: its host ha is down/);
    expect(lines(`${shared}/cc.log`)).toEqual([]);

    // ha is back: its collector removes the lost balancer, the side member is up again and everyone hears isUp.
    await execa('ip', ['-n', hosts.ha!.ns, 'link', 'set', 'eth0', 'up']);
    await execa('ip', ['-n', hosts.ha!.ns, 'route', 'replace', 'default', 'via', fabric.gateway]);
    const back = startAgent('ha', 'home,mv');
    await back.up(60_000);
    await eventually(async () => expect(back.log()).toContain('collector: removed balancer dn1-balancer-1 of environment dn1'));
    await eventually(async () => {
      const now = await show('dn1');
      expect(now.members.map((m) => `${m.name} ${m.host} ${m.state}`).sort()).toEqual([
        'dn1-balancer-2 hb running',
        'dn1-mover-1 hb running',
        'dn1-side-1 ha running',
        `dn1-web-1 ${byName('dn1-web-1').host} running`,
        `dn1-web-2 ${byName('dn1-web-2').host} running`,
      ]);
    }, 60_000);
    await eventually(async () => {
      const after = await history('dn1');
      expect(after.find((x) => x.event === 'collected' && x.member === 'dn1-balancer-1')).toMatchObject({ host: 'ha' });
      expect(after.find((x) => x.event === 'up' && x.member === 'dn1-side-1')).toMatchObject({ host: 'ha' });
    });
    const fleetEvents = (await ok(['--json', 'events', '-n', '0'])).json() as { kind: string; object: string; event: string; message: string }[];
    expect(fleetEvents.find((e) => e.kind === 'env' && e.object === 'dn1' && e.event === 'collected')?.message).toBe(
      'removed balancer dn1-balancer-1 of environment dn1',
    );
    await eventually(async () =>
      expect(
        lines(`${shared}/events.log`)
          .filter((l) => l.startsWith('isUp'))
          .sort(),
      ).toEqual(
        [
          ...['isUp dn1-mover-1', 'isUp dn1-web-1 dn1-mover-1', 'isUp dn1-web-2 dn1-mover-1'],
          ...['isUp dn1-side-1', 'isUp dn1-web-1 dn1-side-1', 'isUp dn1-web-2 dn1-side-1', 'isUp dn1-mover-1 dn1-side-1'],
        ].sort(),
      ),
    );
    // The side member is on ha: it heard the agent start there (afterCcStart).
    await eventually(async () => expect(lines(`${shared}/cc.log`)).toEqual(['afterCcStart dn1-side-1']));
    const now = await show('dn1');
    expect(await answers(`${now.service!.address}:${now.service!.port}`, 4)).toEqual(webs);
  }, 300_000);

  it('SIGTERM of an agent runs beforeCcStop of the members on its host before it drains; its start runs afterCcStart; both in env events', async () => {
    showLogsOnFailure();
    writeFileSync(`${shared}/cc.log`, '');
    await agents.ha!.stop('SIGTERM');
    expect(lines(`${shared}/cc.log`)).toEqual(['beforeCcStop dn1-side-1']);
    expect(agents.ha!.log()).not.toMatch(/beforeCcStop.*(exited|did not run)/);
    await startAgent('ha', 'home,mv').up(60_000);
    await eventually(async () => expect(lines(`${shared}/cc.log`)).toEqual(['beforeCcStop dn1-side-1', 'afterCcStart dn1-side-1']));
    // The history line follows the hook's run.
    await eventually(async () => {
      const h = await history('dn1');
      const cc = h.filter((x) => x.event === 'afterCcStart' || x.event === 'beforeCcStop').map((x) => `${x.event} ${x.member} ${x.host} ${x.exit}`);
      expect(cc).toEqual(['afterCcStart dn1-side-1 ha 0', 'beforeCcStop dn1-side-1 ha 0', 'afterCcStart dn1-side-1 ha 0']);
    });
    // The member went down with its agent (no grace) and is up again.
    await eventually(
      async () => expect((await show('dn1')).members.find((m) => m.name === 'dn1-side-1')).toMatchObject({ host: 'ha', state: 'running' }),
      60_000,
    );
    const table = (await ok(['env', 'events', 'dn1'])).stdout;
    expect(table).toMatch(/beforeCcStop\s+dn1-side-1/);
    // Its env.up may still be telling the others: destroy waits for the environment's operations to end.
    await eventually(async () => expect((await k(['env', 'destroy', 'dn1'])).code).toBe(0), 60_000, 500);
    for (const h of Object.values(hosts)) expect(await h.dockerd.docker('ps', '-aq', '--filter', 'label=knarr.job')).toBe('');
  }, 180_000);
});
