import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { tempDir, type TempDir } from '../harness/tmp.js';

describe('etcd up --advertise with a bad address', () => {
  let tmp: TempDir;
  const k = (argv: string[]) => knarr(['--state-dir', `${tmp.path}/state`, ...argv]);

  beforeAll(async () => {
    tmp = await tempDir('knarr-advertise-');
    expect((await k(['pool', 'init', '--name', 'p', '--driver', 'dir'])).code).toBe(0);
  });
  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('is refused naming the flag before anything is made: no etcd volume on the pool, no certificates', async () => {
    const r = await k(['etcd', 'up', '--advertise', '0.0.0.0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--advertise');
    expect(existsSync(`${tmp.path}/state/mnt/p/knarr-etcd`)).toBe(false);
    expect(existsSync(`${tmp.path}/state/etcd/pki`)).toBe(false);
  });
});
