import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createContext, loadConfig } from '../../src/cli/context.js';
import { knarr } from '../harness/cli.js';
import { startEtcd } from '../harness/etcd.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('store on demand', haveTools('etcd'), 'etcd is not installed (Debian package etcd-server)');

async function context(flags: Record<string, string>, env: Record<string, string> = {}) {
  const config = await loadConfig(flags, { ...env, KNARR_CONFIG: '/dev/null' }, '/');
  return createContext(config, {
    stderr: new PassThrough(),
    stderrIsTTY: false,
    env: { ...process.env, ...env },
    cwd: '/',
    signal: new AbortController().signal,
  });
}

describe.skipIf(!run)('commands that need the store', () => {
  let tmp: TempDir;
  let state: string;
  beforeEach(async () => {
    tmp = await tempDir('knarr-store-');
    state = `${tmp.path}/state`;
  });
  afterEach(async () => {
    await knarr(['--state-dir', state, 'etcd', 'down']);
    await tmp.cleanup();
  });

  it('start the managed local etcd on demand when no --etcd is given', async () => {
    const port = await freePort();
    const peer = await freePort();
    const { writeFileSync } = await import('node:fs');
    const config = `${tmp.path}/config.yaml`;
    writeFileSync(config, `etcdServer:\n  clientPort: ${port}\n  peerPort: ${peer}\n`);
    const ctx = await context({ stateDir: state, config });
    expect((await knarr(['--json', '--state-dir', state, 'etcd', 'status'])).json().running).toBe(false);
    const store = await ctx.openStore();
    try {
      expect(store.endpoints).toEqual([`http://127.0.0.1:${port}`]);
      await store.put('/knarr/default/probe', 'ok');
      expect(await store.get('/knarr/default/probe')).toBe('ok');
    } finally {
      await store.close();
    }
    expect((await knarr(['--json', '--state-dir', state, 'etcd', 'status'])).json()).toMatchObject({ running: true, healthy: true });
  });

  it('use the --etcd endpoints and start nothing locally', async () => {
    const external = await startEtcd();
    try {
      const ctx = await context({ stateDir: state, etcd: external.url });
      const store = await ctx.openStore();
      try {
        expect(store.endpoints).toEqual([external.url]);
        await store.put('/knarr/default/probe', 'external');
      } finally {
        await store.close();
      }
      expect((await knarr(['--json', '--state-dir', state, 'etcd', 'status'])).json().running).toBe(false);
      const status = await knarr(['--json', '--etcd', external.url, 'etcd', 'status']);
      expect(status.json()).toMatchObject({ managed: false, healthy: true });
    } finally {
      await external.stop();
    }
  });
});
