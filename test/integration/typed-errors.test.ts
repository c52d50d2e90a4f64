import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, FailureError, NotFoundError } from '../../src/core/errors.js';
import { waitForOp } from '../../src/ops/runner.js';
import { OpRepo } from '../../src/state/ops.js';
import { Lxc } from '../../src/host/lxc.js';
import { Runner } from '../../src/host/runner.js';
import { HostRepo } from '../../src/state/hosts.js';
import { connectEtcd } from '../../src/state/store.js';
import { fleetKeys } from '../../src/state/keys.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import type { HostRecord } from '../../src/core/hosts.js';

const run = integration('etcd', haveTools('etcd'), 'etcd is not installed (Debian package etcd-server)');

describe.skipIf(!run)('errors from the store are typed', () => {
  let etcd: EtcdInstance;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(() => etcd?.stop());

  it('a request etcd refuses (too large) is a failure naming etcd, not a bug', async () => {
    const store = await connectEtcd([etcd.url]);
    try {
      const err = await store.put(fleetKeys(uniqueName('f')).host('big'), 'x'.repeat(3 << 20)).catch((e) => e);
      expect(err).toBeInstanceOf(FailureError);
      expect(err.message).toMatch(/^etcd refused \/v3\/kv\/put \(\d+\): .*(too large|larger than max)/);
    } finally {
      await store.close();
    }
  });

  it('waiting on an operation that is gone is not found (exit 3), not a bug', async () => {
    const store = await connectEtcd([etcd.url]);
    try {
      const err = await waitForOp(new OpRepo(store, uniqueName('f')), 'op-999', () => undefined, new AbortController().signal).catch((e) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect(err.message).toBe('operation op-999 is gone');
    } finally {
      await store.close();
    }
  });

  it('a host record that keeps changing under a write is a conflict (exit 4), not a bug', async () => {
    const store = await connectEtcd([etcd.url]);
    try {
      const fleet = uniqueName('f');
      const key = fleetKeys(fleet).host('h1');
      await store.put(key, JSON.stringify({ name: 'h1' }));
      let n = 0;
      // Another writer lands between each read and write.
      const racing = {
        ...store,
        putIfUnchanged: async (k: string, v: string, rev: string) => (
          await store.put(key, JSON.stringify({ name: 'h1', n: n++ })), store.putIfUnchanged(k, v, rev)
        ),
      };
      const err = await new HostRepo(racing, fleet).update('h1', (prev) => ({ ...(prev as HostRecord) })).catch((e) => e);
      if (!(err instanceof Error)) return expect.fail('the write won against a writer that always changes the record first');
      expect(err).toBeInstanceOf(ConflictError);
      expect(err.message).toMatch(/^host h1: its record kept changing under this write/);
    } finally {
      await store.close();
    }
  });
});

describe('a system call the host refuses', () => {
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await tempDir('knarr-errno-');
  });
  afterAll(() => tmp?.cleanup());

  it('is reported as a failure with what failed, not as a bug in knarr', async () => {
    const file = `${tmp.path}/not-a-dir`;
    writeFileSync(file, '');
    const r = await knarr(['etcd', 'status'], { env: { KNARR_STATE_DIR: `${file}/state` } });
    expect(r.stderr).not.toMatch(/bug in knarr/);
    expect(r.stderr).toMatch(/failed: ENOTDIR/);
    expect(r.code).toBe(1);
  });
});

describe.skipIf(!integration('lxc', haveTools('lxc-start'), 'lxc is not installed (Debian package lxc)'))('lxc-start that fails', () => {
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await tempDir('knarr-lxc-err-');
  });
  afterAll(() => tmp?.cleanup());

  it('is a failure naming the container and pointing at its log, not a bug', async () => {
    const lxc = new Lxc(new Runner({ dryRun: false, verbose: false, env: process.env, log: () => {} }), tmp.path);
    const err = await lxc.start('knarr-no-such-container').catch((e) => e);
    expect(err).toBeInstanceOf(FailureError);
    expect(err.message).toMatch(/^lxc-start knarr-no-such-container failed: /);
    expect(err.hint).toContain(`${tmp.path}/knarr-no-such-container/lxc.log`);
  });
});
