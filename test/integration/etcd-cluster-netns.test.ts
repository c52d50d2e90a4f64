import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../harness/eventually.js';
import { haveNetns, makeFabric, type Fabric, type NetHost } from '../harness/netns.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'etcd cluster on netns hosts',
  haveNetns() && haveTools('etcd', 'etcdctl', 'openssl'),
  'needs root, iproute2, dockerd, etcd and openssl',
);
const KNARR = resolve('bin/knarr');

/** Three hosts with their own network and hostname, each with the default ports and member name (its hostname). */
describe.skipIf(!run)('three netns hosts form one etcd with etcd up --advertise and etcd join', () => {
  let tmp: TempDir;
  let fabric: Fabric;
  let hosts: NetHost[] = [];
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KNARR_')));
  const knarr = (h: NetHost, ...argv: string[]) => h.exec(KNARR, ['--state-dir', `${h.dir}/state`, ...argv], { reject: false, env, extendEnv: false });
  const pidOf = (h: NetHost) => (JSON.parse(readFileSync(`${h.dir}/state/etcd/server.json`, 'utf8')) as { pid: number }).pid;

  beforeAll(async () => {
    tmp = await tempDir('knarr-etcd-netns-');
    fabric = await makeFabric(tmp.path);
    hosts = await Promise.all(['a', 'b', 'c'].map((n) => fabric.addHost(n)));
  }, 180_000);
  afterAll(async () => {
    // The fabric's teardown kills whatever runs in each host's netns, the etcd members included.
    await fabric?.teardown();
    await tmp?.cleanup();
  }, 120_000);

  it('joins at once, three voters; one killed, the store answers; etcd up brings it back', async () => {
    const [a, b, c] = hosts as [NetHost, NetHost, NetHost];
    const up = await knarr(a, 'etcd', 'up', '--advertise', a.ip);
    expect(up.exitCode, String(up.stderr)).toBe(0);
    const token = String((await knarr(a, 'etcd', 'token')).stdout).trim();
    // No --advertise: each joiner takes the address it reaches the member from; no --name: its hostname.
    const joins = await Promise.all([b, c].map((h) => knarr(h, 'etcd', 'join', `https://${a.ip}:2379`, '--token', token)));
    for (const j of joins) expect(j.exitCode, String(j.stderr)).toBe(0);
    const members = JSON.parse(String((await knarr(c, '--json', 'etcd', 'members')).stdout)) as {
      name: string;
      learner: boolean;
      healthy: boolean;
      clientUrls: string[];
    }[];
    expect(members.map((m) => [m.name, m.learner, m.healthy])).toEqual([
      ['a', false, true],
      ['b', false, true],
      ['c', false, true],
    ]);
    expect(members.find((m) => m.name === 'b')!.clientUrls).toEqual([`https://${b.ip}:2379`]);
    for (const h of [a, b]) expect((await knarr(h, 'etcd', 'members')).exitCode).toBe(0);

    process.kill(pidOf(a), 'SIGKILL');
    const list = await knarr(b, '--json', 'host', 'list');
    expect(list.exitCode, String(list.stderr)).toBe(0);
    const back = await knarr(a, '--json', 'etcd', 'up');
    expect(back.exitCode, String(back.stderr)).toBe(0);
    expect(JSON.parse(String(back.stdout)).action).toBe('started');
    await eventually(async () => {
      const m = JSON.parse(String((await knarr(b, '--json', 'etcd', 'members')).stdout)) as { healthy: boolean }[];
      expect(m.filter((x) => x.healthy)).toHaveLength(3);
    }, 20_000);
  }, 240_000);
});
