import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { agentUnderTest, type AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { haveDockerd, startDockerd, type Dockerd } from '../harness/dockerd.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('an idle agent', haveTools('etcd'), 'etcd is not installed');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** etcd's own counters: its revision (every write adds one), and the ranges (reads) it served. */
async function etcdCounters(url: string): Promise<{ revision: number; ranges: number }> {
  const res = await fetch(`${url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/none').toString('base64') }) });
  const revision = Number(((await res.json()) as { header: { revision: string } }).header.revision);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  // The read just made is one of them: it is taken off.
  const ranges = Number(/^etcd_mvcc_range_total (\d+)/m.exec(metrics)?.[1] ?? Number.NaN) - 1;
  return { revision, ranges };
}

describe.skipIf(!run)('an idle agent is nearly free', () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  let port: number;
  let agent: AgentUnderTest | null = null;
  const base = () => ['--etcd', etcd.url, '--state-dir', `${tmp.path}/state`];
  const k = (argv: string[]) => knarr([...base(), ...argv]);
  const host = async (name: string) => (await k(['--json', 'host', 'list'])).json().find((h: { name: string }) => h.name === name);
  const until = async (what: () => Promise<boolean>, ms = 30_000) => {
    const end = Date.now() + ms;
    while (!(await what())) {
      if (Date.now() > end) throw new Error('condition not met in time');
      await sleep(200);
    }
  };
  beforeAll(async () => {
    tmp = await tempDir('knarr-idle-');
    etcd = await startEtcd();
    port = await freePort();
  });
  afterEach(async () => {
    await agent?.stop();
    agent = null;
  });
  afterAll(async () => {
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it('writes nothing but its lease keepalives for 20 s, and its host stays up', async () => {
    agent = await agentUnderTest({ etcd: etcd.url, stateDir: `${tmp.path}/state`, name: 'idle', listen: `127.0.0.1:${port}` });
    await sleep(3000);
    const before = await etcdCounters(etcd.url);
    // Thirty keepalives of a 2 s lease: a record rewritten each third of it would add as many revisions.
    await sleep(20_000);
    const after = await etcdCounters(etcd.url);
    expect(after.revision - before.revision).toBe(0);
    // Had the keepalives stopped, the 2 s lease would have lapsed.
    expect((await host('idle')).up).toBe(true);
  }, 60_000);

  it.skipIf(!integration('docker events of an agent', haveDockerd(), 'dockerd, docker or busybox-static is missing'))(
    "containers that are no job of this fleet cost no store reads or writes; a job's own event brings its container back",
    async () => {
      const d: Dockerd = await startDockerd(`${tmp.path}/docker`);
      try {
        agent = await agentUnderTest({ etcd: etcd.url, stateDir: `${tmp.path}/state`, name: 'busy', listen: `127.0.0.1:${port}`, env: d.env });
        const web = await k(['job', 'run', '-d', '--name', 'web', '--host', 'busy', '--network', 'none', d.image, '--', 'sleep', '3600']);
        expect(web.code, web.stderr).toBe(0);
        await until(async () => (await d.docker('ps', '-q', '--filter', 'name=knarr-web')) !== '');
        await sleep(2000);
        // Quiet first: what the agent reads on its own (its sweeps) in 10 s.
        const q0 = await etcdCounters(etcd.url);
        await sleep(10_000);
        const q1 = await etcdCounters(etcd.url);
        const quiet = q1.ranges - q0.ranges;
        // Unrelated containers that keep dying and starting: dozens of engine events.
        for (const n of ['a', 'b', 'c'])
          await d.docker('run', '-d', '--name', `other-${n}`, '--network', 'none', '--restart', 'always', d.image, 'sh', '-c', 'sleep 0.3');
        // They are reported once as unknown containers in the host record; after that their churn writes nothing.
        await until(async () => (await host('busy')).unknownContainers.length === 3);
        await sleep(2000);
        const c0 = await etcdCounters(etcd.url);
        await sleep(10_000);
        const c1 = await etcdCounters(etcd.url);
        const events = (await d.docker('events', '--since', '12s', '--until', '0s', '--filter', 'type=container', '--format', '{{.Action}}')).split('\n');
        expect(events.length).toBeGreaterThan(30);
        expect(c1.ranges - c0.ranges).toBeLessThanOrEqual(quiet + 10);
        expect(c1.revision - c0.revision).toBe(0);
        for (const n of ['a', 'b', 'c']) await d.docker('rm', '-f', `other-${n}`);
        // The job's own container removed: its events alone bring it back.
        await sleep(1000);
        const j0 = await etcdCounters(etcd.url);
        await d.docker('rm', '-f', 'knarr-web');
        await until(async () => (await d.docker('ps', '-q', '--filter', 'name=knarr-web')) !== '', 15_000);
        await sleep(1000);
        const j1 = await etcdCounters(etcd.url);
        // The job's intent and state, what making it again writes and the events of that: a few reads, no full pass per event.
        expect(j1.ranges - j0.ranges).toBeLessThanOrEqual(quiet + 40);
      } finally {
        await agent?.stop('SIGTERM');
        agent = null;
        await d.stop();
      }
    },
    120_000,
  );
});
