import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext, loadConfig } from '../../src/cli/context.js';
import { daemon } from '../../src/commands/daemon.js';
import { JobRepo } from '../../src/state/jobs.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { knarr } from '../harness/cli.js';
import { haveDockerd, startDockerd, type Dockerd } from '../harness/dockerd.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('agent-lost-watch', haveDockerd() && haveTools('etcd'), 'dockerd, docker, busybox-static or etcd is missing');

/** The agent's store with every watch cut when `cut` aborts: its watches then stay set up and silent, as a half-open one. */
function cuttable(store: Store, cut: AbortSignal): Store {
  return {
    ...store,
    endpoints: store.endpoints,
    watch(prefix, onChange, signal) {
      const both = AbortSignal.any([signal, cut]);
      return store.watch(prefix, onChange, both);
    },
  };
}

describe.skipIf(!run)('an agent whose watches are cut', () => {
  let tmp: TempDir;
  let d: Dockerd;
  let etcd: EtcdInstance;
  let env: Record<string, string>;
  const stop = new AbortController();
  const cut = new AbortController();
  let agent: Promise<unknown> | null = null;
  const k = (argv: string[]) => knarr(['--etcd', etcd.url, ...argv], { env });
  const running = async (name: string) => (await d.docker('ps', '-q', '--filter', `label=knarr.job=${name}`, '--filter', 'status=running')).trim() !== '';

  beforeAll(async () => {
    tmp = await tempDir('knarr-lost-watch-');
    d = await startDockerd(tmp.path);
    etcd = await startEtcd();
    env = { ...d.env, KNARR_STATE_DIR: `${tmp.path}/state` };
    const config = await loadConfig({ etcd: etcd.url, stateDir: `${tmp.path}/state` }, { ...process.env, ...env }, tmp.path);
    const io = { stderr: new PassThrough().resume(), stderrIsTTY: false, env: { ...process.env, ...env }, cwd: tmp.path, signal: stop.signal };
    const ctx = createContext(config, io);
    const open = ctx.openStore.bind(ctx);
    // The agent's own store (etcd3), with its watches cut on demand.
    agent = daemon(
      { ...ctx, openStore: async (use) => cuttable(await open(use), cut.signal) },
      { name: 'hw', listen: `127.0.0.1:${await freePort()}`, ttl: '3' },
    );
    await eventually(
      async () => expect((await k(['--json', 'host', 'list'])).json()).toEqual([expect.objectContaining({ name: 'hw', up: true, join: 'ok' })]),
      20_000,
    );
  }, 120_000);
  afterAll(async () => {
    stop.abort();
    await agent?.catch(() => undefined);
    await d?.stop();
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it('still applies a job intent change, by its timed full pass, within 30 s', async () => {
    const r = await k([
      'job',
      'run',
      '-d',
      '--name',
      'quiet',
      '--network',
      'none',
      d.image,
      '--',
      'sh',
      '-c',
      'trap "exit 0" TERM; while true; do sleep 1; done',
    ]);
    expect(r.code, r.stderr).toBe(0);
    await eventually(async () => expect(await running('quiet')).toBe(true), 20_000);
    cut.abort();
    const t0 = Date.now();
    // Written in etcd only (as by a CLI that could not reach the agent): no watch tells the agent, only its timer.
    const store = await connectEtcd([etcd.url]);
    try {
      expect(await new JobRepo(store, 'default').updateIntent('quiet', (i) => ({ ...i, desired: 'stopped' }))).not.toBeNull();
    } finally {
      await store.close();
    }
    await eventually(async () => expect(await running('quiet')).toBe(false), 40_000, 250);
    expect(Date.now() - t0).toBeLessThan(36_000);
  }, 90_000);
});
