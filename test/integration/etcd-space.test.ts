import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('etcd space', haveTools('etcd', 'etcdctl'), 'etcd or etcdctl is missing');
const QUOTA = 4 * 1024 * 1024;

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe.skipIf(!run)("the store's space: quota, NOSPACE, compact and defrag", () => {
  let tmp: TempDir;
  let url: string;
  let etcd: EtcdInstance;
  const k = (argv: string[]) => knarr(['--etcd', url, '--state-dir', `${tmp.path}/state`, ...argv]);
  const put = async (key: string, value: string) => {
    const res = await fetch(`${url}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: b64(key), value: b64(value) }) });
    return { ok: res.ok, body: await res.text() };
  };

  beforeAll(async () => {
    tmp = await tempDir('knarr-etcd-space-');
    // A tiny quota and no compaction of its own: a few megabytes of history fill it.
    etcd = await startEtcd('127.0.0.1', ['--quota-backend-bytes', String(QUOTA)]);
    url = etcd.url;
  });
  afterAll(async () => {
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it('the managed etcd compacts on its own and says its quota', async () => {
    const r = await knarr(['--dry-run', '--state-dir', `${tmp.path}/managed`, 'etcd', 'up'], { env: { KNARR_ETCD: undefined } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/--auto-compaction-mode periodic --auto-compaction-retention 1h --quota-backend-bytes 2147483648/);
  });

  it('status shows the size against the quota; NOSPACE is reported with the fix, which works', async () => {
    const fresh = await k(['--json', 'etcd', 'status']);
    expect(fresh.code, fresh.stderr).toBe(0);
    const [e] = fresh.json().endpointHealth;
    expect(e.space).toMatchObject({ quotaBytes: QUOTA, alarms: [] });
    expect(e.space.dbBytes).toBeGreaterThan(0);
    expect((await k(['etcd', 'status'])).stdout).toMatch(/ of 4M quota \(\d+%\)/);

    // History of one key rewritten until etcd refuses.
    const value = 'v'.repeat(64 * 1024);
    let refused = '';
    for (let i = 0; i < 500 && !refused; i++) {
      const r = await put('/fill', `${i}${value}`);
      if (!r.ok) refused = r.body;
    }
    expect(refused).toMatch(/database space exceeded/);

    const full = await k(['--json', 'etcd', 'status']);
    expect(full.code).toBe(6);
    expect(full.json().endpointHealth[0].space.alarms).toEqual(['NOSPACE']);
    expect(full.stderr).toMatch(/is out of space \(alarm NOSPACE\): it refuses every write; free space: knarr etcd compact, then knarr etcd defrag --disarm/);

    const dry = await k(['--dry-run', 'etcd', 'compact']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^etcdctl --endpoints \S+ compact \d+ --physical$/m);
    const compact = await k(['--json', 'etcd', 'compact']);
    expect(compact.code, compact.stderr).toBe(0);
    expect(compact.json().revision).toBeGreaterThan(10);
    const defrag = await k(['--json', 'etcd', 'defrag', '--disarm']);
    expect(defrag.code, defrag.stderr).toBe(0);
    const [m] = defrag.json().members;
    expect(m.after.dbBytes).toBeLessThan(m.before.dbBytes);
    expect(m.after.alarms).toEqual([]);

    const ok = await k(['--json', 'etcd', 'status']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).not.toMatch(/NOSPACE/);
    expect((await put('/after', 'writes again')).ok).toBe(true);
  }, 60_000);
});
