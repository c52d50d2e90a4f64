import { readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomInt } from 'node:crypto';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterRepo } from '../../src/state/clusters.js';
import { spawnAgent, stopAgents, type AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { clusterWorld, type ClusterWorld } from '../harness/clusters.js';
import { haveDockerd, startDockerd, type Dockerd } from '../harness/dockerd.js';
import { eventually } from '../harness/eventually.js';
import { freePort } from '../harness/ports.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'env node members',
  process.getuid?.() === 0 && haveDockerd() && haveTools('lxc-start', 'lxc-attach', 'lxc-ls', 'lxc-info', 'busybox', 'ip', 'etcd'),
  'needs root, lxc, dockerd, busybox-static, iproute2 and etcd (Debian packages lxc, docker.io, busybox-static, iproute2, etcd-server)',
);

interface Member {
  name: string;
  role: string;
  kind: string;
  host: string | null;
  address: string | null;
  state: string;
}

const FLEET = 'nd14';

/**
 * Node members: an environment member that is an LXC system container, made by knarr's cluster machinery (a
 * one-node cluster of user env per member), beside a docker job member and behind the balancer. Real LXC,
 * dockerd, etcd and one agent.
 */
describe.skipIf(!run)('environments: node members (LXC)', () => {
  let w: ClusterWorld;
  let d: Dockerd;
  let agent: AgentUnderTest | null = null;
  let env: Record<string, string>;
  let stateDir: string;
  let listen: string;
  const bridge = `nd14${randomInt(36 ** 4)
    .toString(36)
    .padStart(4, '0')}`;
  const k = (argv: string[]) => knarr(argv, { env, cwd: w.tmp.path });
  const ok = async (argv: string[]) => {
    const r = await k(argv);
    expect(r.code, `knarr ${argv.join(' ')}\n${r.stderr}\n${r.stdout}`).toBe(0);
    return r;
  };
  const startAgent = async () => {
    // The agent takes the host's own name: the image imported before it started is this host's.
    agent = spawnAgent({ etcd: w.etcd.url, stateDir, name: hostname(), fleet: FLEET, listen, env, tokenFile: `${w.tmp.path}/agent.token` });
    await agent.up(60_000);
  };
  const members = async (name: string): Promise<Member[]> => (await ok(['--json', 'env', 'show', name])).json().members;
  const write = (file: string, text: string) => writeFileSync(`${w.tmp.path}/${file}`, text);
  const clusters = () => new ClusterRepo(w.store, FLEET);
  const container = async (member: string) => (await clusters().get('env', member))?.nodes[0]?.container ?? '';
  const lxcState = async (name: string) => (await execa('lxc-info', ['-P', w.lxcPath, '-n', name, '-s', '-H'], { reject: false })).stdout.trim();
  /** What is left of every node member: containers, volumes, addresses and cluster records of user env. */
  const leftovers = async () => ({
    containers: (await w.lxcLs()).filter((n) => n.startsWith('env-')),
    volumes: readdirSync(`${w.poolDir}/knarr-clusters`, { withFileTypes: false }).filter((n) => String(n).startsWith('env-')),
    addresses: await clusters().addressHolders('env'),
    clusters: (await clusters().list()).filter((c) => c.user === 'env').map((c) => c.name),
  });
  const nothingLeft = { containers: [], volumes: [], addresses: [], clusters: [] };

  beforeAll(async () => {
    w = await clusterWorld('knarr-nd14-', FLEET, 'nd14', { KNARR_CLUSTER_BRIDGE: bridge });
    d = await startDockerd(w.tmp.path);
    stateDir = `${w.tmp.path}/state`;
    listen = `127.0.0.1:${await freePort()}`;
    writeFileSync(`${w.tmp.path}/agent.token`, 'nd14-test-token-0123456789abcdef\n', { mode: 0o600 });
    env = { ...w.env, ...d.env, KNARR_AGENT_TOKEN_FILE: `${w.tmp.path}/agent.token` };
    await startAgent();
    // The db is a node serving its member name on port 80 (busybox httpd), started by its own afterItIsAdded hook.
    write(
      'db.yaml',
      [
        'name: db',
        'priority: 20',
        'port: 80',
        'node: {image: base, memory: 64M, cpus: 0.5}',
        'requires: [{role: balancer, from: 1}]',
        'hooks:',
        `  afterItIsAdded: 'echo "$KNARR_EVENT $KNARR_MEMBER $KNARR_ENV" > /root/hooked && mkdir -p /www && echo $KNARR_MEMBER > ` +
          `/www/index.html && httpd -p 80 -h /www'`,
        '',
      ].join('\n'),
    );
    write(
      'nd1.yaml',
      [
        'roles:',
        '  - db.yaml',
        '  - name: app',
        '    priority: 30',
        `    job: {image: ${d.image}, command: [sleep, "3600"]}`,
        'members: {db: 1, app: 1}',
        '',
      ].join('\n'),
    );
  }, 240_000);

  afterAll(async () => {
    await stopAgents([agent]);
    await d?.stop();
    await w?.teardown();
    await execa('ip', ['link', 'del', bridge], { reject: false });
  }, 120_000);

  it('a node member: made as a one-node cluster, its IP as its address, hooks inside it, behind the balancer, moved by the ' +
    'lifecycle, gone with remove and destroy', async () => {
    await ok(['env', 'create', 'nd1', '-f', 'nd1.yaml']);
    let m = await members('nd1');
    expect(m.map((x) => [x.name, x.kind, x.state])).toEqual([
      ['nd1-balancer-1', 'balancer', 'running'],
      ['nd1-db-1', 'node', 'running'],
      ['nd1-app-1', 'job', 'running'],
    ]);
    const db = m.find((x) => x.name === 'nd1-db-1')!;
    expect(db.host).toBe(hostname());
    const c = await clusters().get('env', 'nd1-db-1');
    expect(c).toMatchObject({ user: 'env', name: 'nd1-db-1', status: 'running', memory: 64 * 1024 * 1024, cpu: 500 });
    expect(db.address).toBe(`${c!.nodes[0]!.ip}:80`);
    const node = await container('nd1-db-1');
    expect(await lxcState(node)).toBe('RUNNING');
    const shown = await ok(['env', 'show', 'nd1']);
    expect(shown.stdout).toMatch(new RegExp(`nd1-db-1\\s+db\\s+node\\s+\\S+\\s+${c!.nodes[0]!.ip.replace(/\./g, '\\.')}:80\\s+running`));

    // The hook ran inside the node, with the event's variables.
    expect(await w.attach(node, 'cat', '/root/hooked')).toBe('afterItIsAdded nd1-db-1 nd1');
    const exec = await ok(['cluster', 'exec', 'nd1-db-1', '0', '--user', 'env', '--', 'cat', '/root/hooked']);
    expect(exec.stdout.trim()).toBe('afterItIsAdded nd1-db-1 nd1');
    const events = (await ok(['--json', 'env', 'events', 'nd1'])).json() as { event: string; member: string; on?: string; exit?: number }[];
    expect(events.find((e) => e.event === 'afterItIsAdded' && e.member === 'nd1-db-1')).toMatchObject({ on: 'member', exit: 0 });

    // The balancer (on the same host as the node) reaches it over the cluster bridge at IP:PORT.
    const svc = (await ok(['--json', 'env', 'show', 'nd1'])).json().service;
    await eventually(async () => {
      const res = await fetch(`http://${svc.address}:${svc.port}/`, { signal: AbortSignal.timeout(5000) });
      expect((await res.text()).trim()).toBe('nd1-db-1');
    }, 30_000);

    await ok(['env', 'suspend', 'nd1']);
    expect(await lxcState(node)).toBe('FROZEN');
    expect((await members('nd1')).find((x) => x.name === 'nd1-db-1')!.state).toBe('suspended');
    await ok(['env', 'resume', 'nd1']);
    expect(await lxcState(node)).toBe('RUNNING');
    await ok(['env', 'stop', 'nd1']);
    expect(await lxcState(node)).toBe('STOPPED');
    expect((await members('nd1')).map((x) => x.state)).toEqual(['stopped', 'stopped', 'stopped']);
    await ok(['env', 'start', 'nd1']);
    expect(await lxcState(node)).toBe('RUNNING');
    expect((await clusters().get('env', 'nd1-db-1'))?.status).toBe('running');

    // Removed: its container, volume, address and cluster record go.
    await ok(['env', 'remove', 'nd1', 'nd1-db-1']);
    expect((await members('nd1')).map((x) => x.name)).toEqual(['nd1-balancer-1', 'nd1-app-1']);
    expect(await leftovers()).toEqual(nothingLeft);

    // Added again (a new number), then destroyed with the rest.
    await ok(['env', 'add', 'nd1', 'db']);
    m = await members('nd1');
    expect(m.find((x) => x.name === 'nd1-db-2')).toMatchObject({ kind: 'node', state: 'running' });
    expect((await leftovers()).containers).toHaveLength(1);
    await ok(['env', 'destroy', 'nd1']);
    expect((await k(['env', 'show', 'nd1'])).code).toBe(3);
    expect(await leftovers()).toEqual(nothingLeft);
  }, 300_000);

  it('kill -9 of the agent in the middle of a create of node members, then op cancel: nothing is left', async () => {
    write('nd2.yaml', ['roles:', '  - name: n', '    node: {image: base}', 'members: {n: 4}', ''].join('\n'));
    const op = (await ok(['env', 'create', 'nd2', '-f', 'nd2.yaml', '--detach'])).stdout.trim();
    await eventually(async () => expect((await w.lxcLs()).filter((n) => n.startsWith('env-')).length).toBeGreaterThanOrEqual(1), 60_000, 20);
    await agent!.stop('SIGKILL');
    await ok(['op', 'cancel', op]);
    await startAgent();
    const ended = await k(['op', 'wait', op, '--timeout', '120']);
    // What to look at when it did not end: every operation, and the agent's log.
    if (ended.code !== 1) console.log((await k(['--json', 'op', 'list'])).stdout, agent!.log());
    expect(ended.code).toBe(1);
    expect((await ok(['--json', 'op', 'show', op])).json().status).toBe('cancelled');
    expect((await k(['env', 'show', 'nd2'])).code).toBe(3);
    expect(await leftovers()).toEqual(nothingLeft);
    expect((await ok(['--json', 'op', 'list', '--active'])).json()).toEqual([]);
  }, 240_000);

  it('kill -9 in the middle of a create of node members: the restarted agent completes it', async () => {
    write('nd3.yaml', ['roles:', '  - name: n', '    node: {image: base}', 'members: {n: 3}', ''].join('\n'));
    const op = (await ok(['env', 'create', 'nd3', '-f', 'nd3.yaml', '--detach'])).stdout.trim();
    await eventually(async () => expect((await w.lxcLs()).filter((n) => n.startsWith('env-')).length).toBeGreaterThanOrEqual(1), 60_000, 20);
    await agent!.stop('SIGKILL');
    await startAgent();
    const waited = await k(['op', 'wait', op]);
    expect(waited.code, waited.stderr).toBe(0);
    const m = await members('nd3');
    expect(m.map((x) => [x.name, x.state])).toEqual([1, 2, 3].map((i) => [`nd3-n-${i}`, 'running']));
    // No port: the address is the node's IP alone.
    for (const x of m) expect(x.address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect((await leftovers()).containers).toHaveLength(3);
    for (const x of m) expect(await lxcState(await container(x.name))).toBe('RUNNING');
    expect((await ok(['--json', 'op', 'list', '--active'])).json()).toEqual([]);
    await ok(['env', 'destroy', 'nd3']);
    expect(await leftovers()).toEqual(nothingLeft);
  }, 240_000);
});
