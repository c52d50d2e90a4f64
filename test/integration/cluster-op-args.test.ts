import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext, loadConfig } from '../../src/cli/context.js';
import { OpRunner } from '../../src/ops/runner.js';
import { fleetKeys } from '../../src/state/keys.js';
import type { Store } from '../../src/state/store.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('etcd', haveTools('etcd'), 'etcd is not installed (Debian package etcd-server)');

describe.skipIf(!run)('a cluster operation whose record it cannot use', () => {
  let etcd: EtcdInstance;
  let tmp: TempDir;
  let store: Store;
  let runner: OpRunner;
  const fleet = uniqueName('f');
  beforeAll(async () => {
    etcd = await startEtcd();
    tmp = await tempDir('knarr-op-args-');
    const env = { ...process.env, KNARR_STATE_DIR: `${tmp.path}/state`, KNARR_ETCD: etcd.url, KNARR_FLEET: fleet };
    const config = await loadConfig({}, env, tmp.path);
    const ctx = createContext(config, { stderr: new PassThrough(), stderrIsTTY: false, env, cwd: tmp.path, signal: new AbortController().signal });
    store = await ctx.openStore();
    const lease = await store.grantLease(30);
    runner = new OpRunner(
      ctx,
      store,
      'h1',
      'test',
      () => lease,
      () => undefined,
    );
  });
  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it('fails before it touches anything, naming the field and the operation', async () => {
    const repo = runner.repo;
    const start = await repo.submit('cluster.start', { name: 'lab' }, 'h1');
    const ran = await runner.execute(start.id);
    expect(ran?.status).toBe('failed');
    expect(ran?.error).toMatch(new RegExp(`cluster\\.start argument user: missing in operation ${start.id}`));
    const scale = await repo.submit('cluster.scale', { user: 'alice', name: 'lab', size: '3' }, 'h1');
    const scaled = await runner.execute(scale.id);
    expect(scaled?.status).toBe('failed');
    expect(scaled?.error).toMatch(/cluster\.scale argument size: "3" is not a whole number/);
    expect(await store.list(fleetKeys(fleet).clusters)).toEqual([]);
    expect(await store.list(fleetKeys(fleet).subnets)).toEqual([]);
  });
});
