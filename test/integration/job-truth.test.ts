import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { agentUnderTest, type AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { haveDockerd, startDockerd, type Dockerd } from '../harness/dockerd.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('job-truth', haveDockerd() && haveTools('etcd'), 'dockerd, docker, busybox-static or etcd is missing');

/** Daemonized jobs whose containers change behind knarr's back, with and without the host's agent. */
describe.skipIf(!run)('job state as the engine tells it', () => {
  let tmp: TempDir;
  let d: Dockerd;
  let etcd: EtcdInstance;
  let env: Record<string, string>;
  let port: number;
  let agent: AgentUnderTest | null = null;
  const k = (argv: string[]) => knarr(['--etcd', etcd.url, ...argv], { env });
  const job = async (name: string) =>
    ((await k(['--json', 'job', 'list'])).json() as { name: string; state: string; container: string | null }[]).find((j) => j.name === name);
  const containerOf = (name: string) => d.docker('ps', '-aq', '--no-trunc', '--filter', `label=knarr.job=${name}`);
  const startAgent = async () => {
    agent = await agentUnderTest({ etcd: etcd.url, stateDir: `${tmp.path}/state`, name: 'h1', listen: `127.0.0.1:${port}`, env }, 20_000);
  };
  beforeAll(async () => {
    tmp = await tempDir('knarr-job-truth-');
    d = await startDockerd(tmp.path);
    etcd = await startEtcd();
    port = await freePort();
    env = { ...d.env, KNARR_STATE_DIR: `${tmp.path}/state` };
  });
  afterEach(async () => {
    await agent?.stop('SIGTERM');
    agent = null;
  });
  afterAll(async () => {
    await d?.stop();
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it('a container removed behind knarr shows missing, and the agent started later makes it again', async () => {
    const r = await k(['job', 'run', '-d', '--name', 'keep', '--network', 'none', d.image, '--', 'sleep', '1000']);
    expect(r.code, r.stderr).toBe(0);
    const first = await containerOf('keep');
    expect(await job('keep')).toMatchObject({ state: 'running', container: first });

    await d.docker('stop', '-t', '0', 'knarr-keep');
    expect(await job('keep')).toMatchObject({ state: 'exited', container: first });
    await d.docker('rm', '-f', 'knarr-keep');
    expect(await job('keep')).toMatchObject({ state: 'missing', container: null });
    const shown = await k(['job', 'show', 'keep']);
    expect(shown.stdout).toMatch(/^state: +missing$/m);
    expect(shown.stdout).toMatch(/^container: +[0-9a-f]{12} on \S+ \(gone from its engine\)$/m);

    // The agent takes the job over and keeps it like any other: it is made again, and again after a second removal.
    await startAgent();
    const second = await eventually(async () => {
      const now = await job('keep');
      expect(now).toMatchObject({ host: 'h1', state: 'running' });
      expect(now!.container).not.toBe(first);
      expect(await containerOf('keep')).toBe(now!.container);
      return now!.container;
    }, 20_000);
    await d.docker('rm', '-f', 'knarr-keep');
    await eventually(async () => {
      const now = await job('keep');
      expect(now).toMatchObject({ state: 'running' });
      expect([first, second]).not.toContain(now!.container);
      expect(await containerOf('keep')).toBe(now!.container);
    }, 15_000);
    const history = (await k(['--json', 'job', 'history', 'keep'])).json() as { event: string; host: string; detail?: string }[];
    expect(history.slice(0, 4)).toMatchObject([
      { event: 'placed' },
      { event: 'started' },
      { event: 'placed', host: 'h1', detail: 'taken over by the agent of h1' },
      { event: 'started', host: 'h1' },
    ]);
    expect((await k(['job', 'rm', 'keep'])).code).toBe(0);
    await eventually(async () => expect(await containerOf('keep')).toBe(''), 10_000);
  });

  it('job rm on its own host with the agent stopped removes the container at once', async () => {
    await startAgent();
    const r = await k(['job', 'run', '-d', '--name', 'bye', '--network', 'none', d.image, '--', 'sleep', '1000']);
    expect(r.code, r.stderr).toBe(0);
    expect(await containerOf('bye')).not.toBe('');
    await agent!.stop('SIGTERM');
    agent = null;
    expect(await job('bye')).toMatchObject({ state: 'pending (h1 is down)' });
    const rm = await k(['--json', 'job', 'rm', 'bye']);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.json()).toEqual({ name: 'bye', removed: true, containerRemoved: true });
    expect(await containerOf('bye')).toBe('');
    expect((await k(['job', 'list'])).stdout).not.toMatch(/bye/);
  });
});
