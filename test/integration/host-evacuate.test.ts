import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterRecord } from '../../src/core/cluster.js';
import { ClusterRepo } from '../../src/state/clusters.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { spawnHostAgent, stopAgents, type AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { haveNetns, makeFabric, type Fabric, type NetHost } from '../harness/netns.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { integration } from '../harness/tools.js';

const run = integration(
  'host evacuate',
  haveNetns(),
  'needs root, iproute2, dockerd, docker and busybox-static (Debian packages iproute2, docker.io, busybox-static)',
);

interface OpJson {
  id: string;
  kind: string;
  host: string;
  status: string;
  args: Record<string, unknown>;
  parent: string | null;
  children: string[];
  error: string | null;
  result: { host: string; moved: { job: string; from: string; to: string; state?: string }[]; staying: { job: string; why: string }[]; migrated: unknown[] };
}

/**
 * Two simulated hosts (network namespaces, a dockerd and an agent each): ha is evacuated, its jobs go to hb and run
 * there, its fixed job stays; no new work lands on ha until host restore.
 */
describe.skipIf(!run)('host evacuate and host restore', () => {
  let tmp: TempDir;
  let fabric: Fabric;
  let etcd: EtcdInstance;
  let store: Store;
  const hosts: Record<string, NetHost> = {};
  const agents: Record<string, AgentUnderTest> = {};
  let image: string;
  let env: Record<string, string>;
  let startAgent: (name: string) => AgentUnderTest;
  const k = (argv: string[]) => knarr(argv, { env });
  const ok = async (argv: string[]) => {
    const r = await k(argv);
    expect(r.code, `knarr ${argv.join(' ')}: ${r.stderr}`).toBe(0);
    return r;
  };
  const jobHost = async (name: string) => (await ok(['--json', 'job', 'show', name])).json().host as string;
  const containers = (h: string, job: string, all = '-q') => hosts[h]!.dockerd.docker('ps', all, '--filter', `label=knarr.job=${job}`);
  const hostState = async (h: string) => (await ok(['--json', 'host', 'show', h])).json().state as string;

  beforeAll(async () => {
    tmp = await tempDir('knarr-evacuate-');
    fabric = await makeFabric(tmp.path);
    etcd = await startEtcd(fabric.gateway);
    store = await connectEtcd([etcd.url]);
    const tokenFile = `${tmp.path}/agent.token`;
    writeFileSync(tokenFile, 'evacuate-test-token\n', { mode: 0o600 });
    for (const name of ['ha', 'hb']) hosts[name] = await fabric.addHost(name);
    image = hosts.ha!.dockerd.image;
    env = { KNARR_ETCD: etcd.url, KNARR_AGENT_TOKEN_FILE: tokenFile, KNARR_STATE_DIR: `${tmp.path}/cli-state` };
    startAgent = (name) =>
      (agents[name] = spawnHostAgent(hosts[name]!, { etcd: etcd.url, stateDir: `${tmp.path}/${name}-state`, tokenFile, flags: ['--restart-grace', '0'] }));
    for (const name of ['ha', 'hb']) startAgent(name);
    for (const a of Object.values(agents)) await a.up(60_000);
  }, 180_000);

  afterAll(async () => {
    await stopAgents(Object.values(agents));
    await store?.close();
    await fabric?.teardown();
    await etcd?.stop();
    await tmp?.cleanup();
  }, 120_000);

  it('moves the non-fixed jobs to the other host and keeps the fixed one; refused with nothing changed when no host can take them', async () => {
    // hb takes nothing for a moment: every job lands on ha.
    await ok(['host', 'drain', 'hb']);
    for (const name of ['w1', 'w2']) await ok(['job', 'run', '-d', '--name', name, '--network', 'none', image, '--', 'sleep', '3600']);
    writeFileSync(`${tmp.path}/db.yaml`, `name: db\nimage: ${image}\ncommand: [sleep, "3600"]\nnetwork: none\ndaemonize: true\nfixed: true\n`);
    await ok(['job', 'run', '-f', `${tmp.path}/db.yaml`]);
    for (const name of ['w1', 'w2', 'db']) expect(await jobHost(name)).toBe('ha');

    // hb still draining: nowhere to go, so nothing changes, and the refusal names each job and hb's reason.
    const refused = await k(['host', 'evacuate', 'ha']);
    expect(refused.code, refused.stderr).toBe(4);
    expect(refused.stderr).toMatch(
      /cannot evacuate host ha: nothing was changed; nowhere to move job w1 \(hb: host is draining\); job w2 \(hb: host is draining\)/,
    );
    expect(refused.stderr).not.toMatch(/job db/);
    expect(await hostState('ha')).toBe('ok');
    expect((await ok(['--json', 'op', 'list'])).json()).toEqual([]);
    await ok(['host', 'drain', 'hb', '--undo']);

    // --dry-run plans the moves and changes nothing.
    const planned = await ok(['--dry-run', 'host', 'evacuate', 'ha']);
    expect(planned.stdout).toMatch(/^# set host ha's state to evacuated/m);
    expect(planned.stdout).toMatch(/^# move job w1 from ha to hb /m);
    expect(planned.stdout).toMatch(/^# move job w2 from ha to hb /m);
    expect(planned.stdout).toMatch(/^# job db stays on ha: fixed: its data is on ha$/m);
    expect(await hostState('ha')).toBe('ok');
    for (const name of ['w1', 'w2']) expect(await jobHost(name)).toBe('ha');

    const done = await ok(['--json', 'host', 'evacuate', 'ha']);
    const op = done.json() as OpJson;
    expect(op).toMatchObject({ kind: 'host.evacuate', host: 'ha', status: 'done' });
    expect(op.result.moved).toEqual([
      { job: 'w1', from: 'ha', to: 'hb', state: 'running' },
      { job: 'w2', from: 'ha', to: 'hb', state: 'running' },
    ]);
    expect(op.result.staying).toEqual([{ job: 'db', why: 'fixed: its data is on ha' }]);
    expect(op.result.migrated).toEqual([]);
    expect(await hostState('ha')).toBe('evacuated');
    // They run on hb's engine; ha's copies go, its fixed job runs on.
    for (const name of ['w1', 'w2']) {
      expect(await containers('hb', name)).not.toBe('');
      await eventually(async () => expect(await containers('ha', name, '-aq')).toBe(''));
    }
    expect(await containers('ha', 'db')).not.toBe('');
    expect((await ok(['--json', 'job', 'show', 'w1'])).json()).toMatchObject({ host: 'hb', state: 'running' });

    // Again: nothing left to move.
    const again = (await ok(['--json', 'host', 'evacuate', 'ha'])).json() as OpJson;
    expect(again.result).toMatchObject({ moved: [], staying: [{ job: 'db' }], migrated: [] });
  }, 240_000);

  it('an evacuated host takes no new job until host restore', async () => {
    await ok(['job', 'run', '-d', '--name', 'late', '--network', 'none', image, '--', 'sleep', '3600']);
    expect(await jobHost('late')).toBe('hb');
    const pinned = await k(['job', 'run', '-d', '--name', 'pinned', '--host', 'ha', '--network', 'none', image, '--', 'sleep', '3600']);
    expect(pinned.code).not.toBe(0);
    expect(pinned.stderr).toMatch(/no host can run job pinned: .*host is evacuated \(knarr host restore lets work land again\)/);

    const restored = await ok(['host', 'restore', 'ha']);
    expect(restored.stdout).toMatch(/host ha takes new work again \(was evacuated\); nothing moves back by itself/);
    expect(await hostState('ha')).toBe('ok');
    await ok(['job', 'run', '-d', '--name', 'back', '--host', 'ha', '--network', 'none', image, '--', 'sleep', '3600']);
    expect(await jobHost('back')).toBe('ha');
    expect(await containers('ha', 'back')).not.toBe('');
    // Nothing moved back by itself.
    for (const name of ['w1', 'w2', 'late']) expect(await jobHost(name)).toBe('hb');
  }, 120_000);

  it('a cluster node that no other host can take (none has its image) refuses the evacuation before anything changes', async () => {
    // A record only: the refusal comes from the plan, before any node is touched.
    const now = new Date().toISOString();
    const lab: ClusterRecord = {
      id: 7,
      name: 'lab',
      user: 'alice',
      status: 'running',
      image: 'base',
      pool: 'nodes',
      host: 'ha',
      subnet: '10.254.7.0/24',
      memory: 0,
      cpu: 0,
      nodes: [{ index: 0, container: 'alice-7-0', hostname: 'host-0', ip: '10.254.7.2', host: 'ha', volume: 'clusters/alice-7-0' }],
      op: 'op-000000',
      createdAt: now,
      updatedAt: now,
    };
    const clusters = new ClusterRepo(store, 'default');
    await clusters.put(lab);
    try {
      const opsBefore = (await ok(['--json', 'op', 'list'])).json() as OpJson[];
      for (const argv of [
        ['--dry-run', 'host', 'evacuate', 'ha'],
        ['host', 'evacuate', 'ha'],
      ]) {
        const r = await k(argv);
        expect(r.code, r.stderr).toBe(4);
        expect(r.stderr).toMatch(/cannot evacuate host ha: nothing was changed; nowhere to move node 0 of cluster alice\/lab \(alice-7-0\) /);
        expect(r.stderr).toMatch(/\(hb: not a host that has its cluster's image\)/);
      }
      expect(await hostState('ha')).toBe('ok');
      expect((await ok(['--json', 'op', 'list'])).json()).toEqual(opsBefore);
      expect(await jobHost('back')).toBe('ha');
    } finally {
      await clusters.remove('alice', 'lab');
    }
  }, 120_000);

  it('an evacuation whose agent is killed mid-way goes on when the agent is back, and the host stays evacuated', async () => {
    await ok(['host', 'drain', 'hb']);
    for (const name of ['k1', 'k2']) await ok(['job', 'run', '-d', '--name', name, '--network', 'none', image, '--', 'sleep', '3600']);
    await ok(['host', 'drain', 'hb', '--undo']);
    for (const name of ['k1', 'k2']) expect(await jobHost(name)).toBe('ha');
    const id = (await ok(['host', 'evacuate', 'ha', '--detach'])).stdout.trim();
    await eventually(async () => expect((await ok(['--json', 'op', 'show', id])).json().status).toBe('running'), 30_000, 20);
    await agents.ha!.stop('SIGKILL');
    // While the evacuation is pending, restore is refused: it would let work land where the evacuation goes on emptying.
    // (Unless it ended between the look and the kill, which the attempts logged below tell.)
    if ((await ok(['--json', 'op', 'show', id])).json().status === 'running') {
      const early = await k(['host', 'restore', 'ha']);
      expect(early.code).toBe(4);
      expect(early.stderr).toContain(`host ha is being evacuated by ${id} (running)`);
    }
    startAgent('ha');
    const end = await ok(['--json', 'op', 'wait', id, '--timeout', '120']);
    expect(end.json()).toMatchObject({ status: 'done', result: { staying: [{ job: 'back' }, { job: 'db' }] } });
    console.info(`evacuation killed mid-way: attempts ${end.json().attempts}, moved by it ${JSON.stringify(end.json().result.moved)}`);
    expect(await hostState('ha')).toBe('evacuated');
    for (const name of ['k1', 'k2']) {
      expect((await ok(['--json', 'job', 'show', name])).json()).toMatchObject({ host: 'hb', state: 'running' });
      expect(await containers('hb', name)).not.toBe('');
      await eventually(async () => expect(await containers('ha', name, '-aq')).toBe(''));
    }
    await ok(['host', 'restore', 'ha']);
  }, 180_000);

  it('a job that cannot start on its new host fails the evacuation by name; its copy runs on, and comes back after host restore', async () => {
    // An image only ha has: hb cannot start the job.
    await hosts.ha!.dockerd.docker('tag', image, 'only-on-ha:1');
    await ok(['host', 'drain', 'hb']);
    await ok(['job', 'run', '-d', '--name', 'lonely', '--network', 'none', 'only-on-ha:1', '--', 'sleep', '3600']);
    await ok(['host', 'drain', 'hb', '--undo']);
    const copy = await containers('ha', 'lonely');
    expect(copy).not.toBe('');
    const r = await k(['host', 'evacuate', 'ha']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/moved off ha, but not started on the new host: job lonely on hb \(.*only-on-ha/);
    // Nothing is lost: the copy on ha runs on while the job waits on hb.
    expect(await containers('ha', 'lonely')).toBe(copy);
    expect(await hostState('ha')).toBe('evacuated');
    await ok(['host', 'restore', 'ha']);
    await eventually(async () => expect((await ok(['--json', 'job', 'show', 'lonely'])).json()).toMatchObject({ host: 'ha', state: 'running' }), 30_000);
    expect(await containers('ha', 'lonely')).toBe(copy);
    await ok(['job', 'rm', 'lonely']);
  }, 180_000);
});
