import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveNetns, makeFabric, type Fabric, type NetHost } from '../harness/netns.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'a plain etcd turned into a cluster member',
  haveNetns() && haveTools('etcd', 'etcdctl', 'openssl'),
  'needs root, iproute2, dockerd, etcd and openssl',
);
const KNARR = resolve('bin/knarr');

/**
 * The path from the install's plain one-member etcd to a fleet, as k3s's --cluster-init: etcd down,
 * etcd up --advertise keeps the data (and the old copy aside), and another host joins.
 */
describe.skipIf(!run)('etcd up --advertise on the data of a plain etcd (two netns hosts)', () => {
  let tmp: TempDir;
  let fabric: Fabric;
  let a: NetHost, b: NetHost;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KNARR_')));
  const knarr = (h: NetHost, ...argv: string[]) => h.exec(KNARR, ['--state-dir', `${h.dir}/state`, ...argv], { reject: false, env, extendEnv: false });
  const ok = async (h: NetHost, ...argv: string[]) => {
    const r = await knarr(h, ...argv);
    expect(r.exitCode, `${argv.join(' ')}: ${String(r.stderr)}`).toBe(0);
    return String(r.stdout);
  };
  const state = (h: NetHost) =>
    JSON.parse(readFileSync(`${h.dir}/state/etcd/server.json`, 'utf8')) as { clientUrl: string; dataDir: string; tls?: Record<string, string> };
  /** etcdctl on host h against its own member, with knarr's client certificate once it is a TLS member. */
  const etcdctl = (h: NetHost, ...argv: string[]) => {
    const s = state(h);
    const tls = s.tls ? ['--cacert', s.tls.caCert!, '--cert', s.tls.clientCert!, '--key', s.tls.clientKey!] : [];
    return h.exec('etcdctl', ['--endpoints', s.clientUrl, ...tls, ...argv], { env: { ...env, ETCDCTL_API: '3' }, extendEnv: false, reject: false });
  };

  beforeAll(async () => {
    tmp = await tempDir('knarr-etcd-to-tls-');
    fabric = await makeFabric(tmp.path);
    [a, b] = (await Promise.all(['ta', 'tb'].map((n) => fabric.addHost(n)))) as [NetHost, NetHost];
  }, 180_000);
  afterAll(async () => {
    // The fabric's teardown kills whatever runs in each host's netns, the etcd members included.
    await fabric?.teardown();
    await tmp?.cleanup();
  }, 120_000);

  it('refuses while the plain etcd runs, then keeps its data as the first member, and another host joins it', async () => {
    await ok(a, 'etcd', 'up');
    expect(state(a).clientUrl).toMatch(/^http:\/\/127\.0\.0\.1:/);
    expect((await etcdctl(a, 'put', 'kept/before', 'plain-days')).exitCode).toBe(0);

    const running = await knarr(a, 'etcd', 'up', '--advertise', a.ip);
    expect(running.exitCode).toBe(4);
    expect(String(running.stderr)).toContain('knarr etcd down');

    await ok(a, 'etcd', 'down');
    const planned = await knarr(a, '--dry-run', 'etcd', 'up', '--advertise', a.ip);
    expect(planned.exitCode, String(planned.stderr)).toBe(0);
    expect(String(planned.stdout)).toContain('snapshot restore');
    expect(state(a).tls, 'a dry run changes nothing').toBeUndefined();

    const up = JSON.parse(await ok(a, '--json', 'etcd', 'up', '--advertise', a.ip)) as { action: string; previousData: string };
    expect(up.action).toBe('started');
    expect(state(a).clientUrl).toBe(`https://${a.ip}:2379`);
    expect(String((await etcdctl(a, 'get', 'kept/before', '--print-value-only')).stdout).trim()).toBe('plain-days');
    // The plain data is kept aside, whole.
    expect(readdirSync(state(a).dataDir)).toContain(up.previousData.split('/').pop());
    // Again: it runs as the member now, nothing converted twice.
    expect((JSON.parse(await ok(a, '--json', 'etcd', 'up', '--advertise', a.ip)) as { action: string }).action).toBe('running');

    const token = (await ok(a, 'etcd', 'token')).trim();
    await ok(b, 'etcd', 'join', `https://${a.ip}:2379`, '--token', token, '--advertise', b.ip);
    const members = JSON.parse(await ok(b, '--json', 'etcd', 'members')) as { name: string; learner: boolean; healthy: boolean; peerUrls: string[] }[];
    expect(members.map((m) => [m.name, m.learner, m.healthy])).toEqual([
      ['ta', false, true],
      ['tb', false, true],
    ]);
    expect(members.find((m) => m.name === 'ta')!.peerUrls).toEqual([`https://${a.ip}:2380`]);
    expect(String((await etcdctl(b, 'get', 'kept/before', '--print-value-only')).stdout).trim()).toBe('plain-days');
  }, 240_000);
});
