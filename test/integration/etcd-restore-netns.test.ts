import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdPost } from '../../src/host/etcd-server.js';
import { connectEtcd } from '../../src/state/store.js';
import { eventually } from '../harness/eventually.js';
import { haveNetns, makeFabric, type Fabric, type NetHost } from '../harness/netns.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';

const run = integration(
  'etcd restore and reboot on netns hosts',
  haveNetns() && haveTools('etcd', 'etcdctl', 'openssl') && (await zfsAnswers()),
  'needs root, iproute2, dockerd, etcd, openssl and zfs',
);
const KNARR = resolve('bin/knarr');

interface Member {
  name: string;
  learner: boolean;
  healthy: boolean;
  clientUrls: string[];
}

/** A fleet's etcd lost and brought back from a backup; members rebooted (onboot) and moved to another address. */
describe.skipIf(!run)('etcd backup, restore and rejoin, and the reboot case, on netns hosts', () => {
  let tmp: TempDir;
  let fabric: Fabric;
  let hosts: NetHost[] = [];
  const pool = uniqueName('kres');
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KNARR_')));
  const knarr = (h: NetHost, ...argv: string[]) => h.exec(KNARR, ['--state-dir', `${h.dir}/state`, ...argv], { reject: false, env, extendEnv: false });
  const stateOf = (h: NetHost) =>
    JSON.parse(readFileSync(`${h.dir}/state/etcd/server.json`, 'utf8')) as { pid: number | null; clientUrl: string; dataDir: string; peerUrl: string };
  const alive = (pid: number | null) => {
    try {
      return pid !== null && process.kill(pid, 0);
    } catch {
      return false;
    }
  };
  const kill = (h: NetHost) => {
    const { pid } = stateOf(h);
    if (alive(pid)) process.kill(pid!, 'SIGKILL');
  };
  const pki = (h: NetHost) => ({ ca: `${h.dir}/state/etcd/pki/ca.crt`, cert: `${h.dir}/state/etcd/pki/client.crt`, key: `${h.dir}/state/etcd/pki/client.key` });
  const tlsOf = (h: NetHost) => ({ ca: readFileSync(pki(h).ca, 'utf8'), cert: readFileSync(pki(h).cert, 'utf8'), key: readFileSync(pki(h).key, 'utf8') });
  const clusterId = async (h: NetHost, url = stateOf(h).clientUrl) =>
    (await etcdPost<{ header: { cluster_id: string } }>(url, '/v3/cluster/member/list', {}, tlsOf(h))).header.cluster_id;
  const members = async (h: NetHost) => {
    const r = await knarr(h, '--json', 'etcd', 'members');
    expect(r.exitCode, String(r.stderr)).toBe(0);
    return JSON.parse(String(r.stdout)) as Member[];
  };
  const read = async (h: NetHost, key: string) => {
    const store = await connectEtcd([stateOf(h).clientUrl], pki(h));
    try {
      return await store.get(key);
    } finally {
      await store.close();
    }
  };

  beforeAll(async () => {
    tmp = await tempDir('knarr-etcd-restore-');
    fabric = await makeFabric(tmp.path);
    hosts = await Promise.all(['a', 'b', 'c'].map((n) => fabric.addHost(n)));
  }, 180_000);
  afterAll(async () => {
    await fabric?.teardown();
    await destroyPoolQuietly(pool);
    await tmp?.cleanup();
  }, 120_000);

  it('a backup of three members restores as a new one-member cluster; an old member joins it with its data set aside', async () => {
    const [a, b, c] = hosts as [NetHost, NetHost, NetHost];
    const up = await knarr(a, 'etcd', 'up', '--advertise', a.ip);
    expect(up.exitCode, String(up.stderr)).toBe(0);
    const token = String((await knarr(a, 'etcd', 'token')).stdout).trim();
    for (const j of await Promise.all([b, c].map((h) => knarr(h, 'etcd', 'join', `https://${a.ip}:2379`, '--token', token))))
      expect(j.exitCode, String(j.stderr)).toBe(0);
    expect((await members(b)).map((m) => [m.name, m.learner, m.healthy])).toEqual([
      ['a', false, true],
      ['b', false, true],
      ['c', false, true],
    ]);
    const oldCluster = await clusterId(a);

    const store = await connectEtcd([stateOf(b).clientUrl, stateOf(c).clientUrl], pki(b));
    const file = `${tmp.path}/fleet.db`;
    try {
      await store.put('/knarr-test/before', '1');
      // Taken on b with the fleet's client certificate (the member requires one).
      const backup = await knarr(b, '--json', 'etcd', 'backup', file);
      expect(backup.exitCode, String(backup.stderr)).toBe(0);
      expect(JSON.parse(String(backup.stdout)).endpoint).toBe(`https://${b.ip}:2379`);
      await store.put('/knarr-test/after', '2');
      // While the cluster is up, a restore on one member says what it would do to the others.
      const dry = await knarr(a, '--dry-run', 'etcd', 'restore', file);
      expect(dry.exitCode, String(dry.stderr)).toBe(0);
      expect(String(dry.stderr)).toContain('members b, c of this cluster are up: restoring here takes a out of their cluster');
    } finally {
      await store.close();
    }

    // The cluster is lost: two members gone, b left running alone (it keeps asking its old peers for votes).
    kill(a);
    kill(c);
    const restore = await knarr(a, '--json', 'etcd', 'restore', file, '--yes');
    expect(restore.exitCode, String(restore.stderr)).toBe(0);
    expect(JSON.parse(String(restore.stdout)).next).toContain(`knarr etcd join https://${a.ip}:2379`);
    const newCluster = await clusterId(a);
    expect(newCluster).not.toBe(oldCluster);
    // b's old member calls on a all along: a stays the one healthy leader of its own cluster.
    await new Promise((r) => setTimeout(r, 3000));
    expect((await members(a)).map((m) => [m.name, m.learner, m.healthy])).toEqual([['a', false, true]]);
    expect(await read(a, '/knarr-test/before')).toBe('1');
    expect(await read(a, '/knarr-test/after')).toBeNull();

    // b's old member runs: joining would have to stop it; refused, nothing moved.
    const bData = stateOf(b).dataDir;
    const refused = await knarr(b, 'etcd', 'join', `https://${a.ip}:2379`, '--token', token);
    expect(refused.exitCode).not.toBe(0);
    expect(String(refused.stderr)).toContain('knarr etcd down');
    expect(existsSync(`${bData}/member`)).toBe(true);

    expect((await knarr(b, 'etcd', 'down')).exitCode).toBe(0);
    const join = await knarr(b, '--json', 'etcd', 'join', `https://${a.ip}:2379`, '--token', token);
    expect(join.exitCode, String(join.stderr)).toBe(0);
    expect(String(join.stderr)).toContain('set aside');
    const aside = readdirSync(bData).filter((n) => n.startsWith('member.before-join-'));
    expect(aside).toHaveLength(1);
    expect(existsSync(`${bData}/${aside[0]}/snap/db`)).toBe(true);
    expect((await members(a)).map((m) => [m.name, m.learner, m.healthy])).toEqual([
      ['a', false, true],
      ['b', false, true],
    ]);
    expect(await clusterId(b)).toBe(newCluster);
    expect(await read(b, '/knarr-test/before')).toBe('1');
    expect(await read(b, '/knarr-test/after')).toBeNull();
    // Running the join again changes nothing: b is a member of that cluster now.
    const again = await knarr(b, '--json', 'etcd', 'join', `https://${a.ip}:2379`, '--token', token);
    expect(again.exitCode, String(again.stderr)).toBe(0);
    expect(readdirSync(bData).filter((n) => n.startsWith('member.before-join-'))).toHaveLength(1);
    // c, down since the loss, joins through b.
    const joinC = await knarr(c, 'etcd', 'join', `https://${b.ip}:2379`, '--token', token);
    expect(joinC.exitCode, String(joinC.stderr)).toBe(0);
    expect((await members(c)).map((m) => [m.name, m.learner, m.healthy])).toEqual([
      ['a', false, true],
      ['b', false, true],
      ['c', false, true],
    ]);
    expect(await read(c, '/knarr-test/before')).toBe('1');
  }, 300_000);

  it('a rebooted member comes back with onboot on its data and membership, though onboot makes a pool', async () => {
    const [a, b] = hosts as [NetHost, NetHost];
    const before = (await etcdPost<{ members: { ID: string; name: string }[] }>(stateOf(a).clientUrl, '/v3/cluster/member/list', {}, tlsOf(a))).members;
    kill(b);
    const device = `${tmp.path}/b-disk.img`;
    await execa('truncate', ['-s', '256M', device]);
    const boot = b.spawn(KNARR, ['--state-dir', `${b.dir}/state`, 'onboot', '--storage-device', device, '--pool', pool, '--daemon'], {
      reject: false,
      env,
      extendEnv: false,
    });
    try {
      await eventually(
        async () => {
          expect(alive(stateOf(b).pid)).toBe(true);
          expect((await members(a)).every((m) => m.healthy && !m.learner)).toBe(true);
        },
        60_000,
        500,
      );
      const after = (await etcdPost<{ members: { ID: string; name: string }[] }>(stateOf(a).clientUrl, '/v3/cluster/member/list', {}, tlsOf(a))).members;
      expect(after).toEqual(before);
      expect(stateOf(b).dataDir).toBe(`${b.dir}/state/etcd/data`);
      expect(await read(b, '/knarr-test/before')).toBe('1');
    } finally {
      boot.kill('SIGTERM');
      const r = await boot;
      expect(r.exitCode, String(r.stderr)).toBe(0);
    }
    expect(alive(stateOf(b).pid)).toBe(false);
  }, 180_000);

  it('a member whose address changed is not started: a clear error with the fix, its data untouched; the fix works', async () => {
    const [a, b] = hosts as [NetHost, NetHost];
    const oldIp = b.ip;
    const newIp = oldIp.replace(/\.\d+$/, '.200');
    const recorded = readFileSync(`${b.dir}/state/etcd/server.json`, 'utf8');
    await execa('ip', ['-n', b.ns, 'addr', 'del', `${oldIp}/24`, 'dev', 'eth0']);
    await execa('ip', ['-n', b.ns, 'addr', 'add', `${newIp}/24`, 'dev', 'eth0']);
    await execa('ip', ['-n', b.ns, 'route', 'replace', 'default', 'via', fabric.gateway]);
    for (const argv of [
      ['etcd', 'up'],
      ['onboot', '--storage-device', `${tmp.path}/b-disk.img`, '--pool', pool, '--daemon'],
    ]) {
      const r = await knarr(b, ...argv);
      expect(r.exitCode, argv.join(' ')).not.toBe(0);
      expect(String(r.stderr)).toContain(`${oldIp} is not an address of this host`);
      expect(String(r.stderr)).toContain('knarr etcd remove b');
      // Another member's address, whichever its list has first.
      const join = /knarr etcd join https:\/\/([\d.]+):2379 --token TOKEN/.exec(String(r.stderr));
      expect(join?.[1], String(r.stderr)).toBeDefined();
      expect(join![1]).not.toBe(oldIp);
      expect(readFileSync(`${b.dir}/state/etcd/server.json`, 'utf8')).toBe(recorded);
      expect(existsSync(`${stateOf(b).dataDir}/member/snap/db`)).toBe(true);
    }
    // The fix the error names.
    const removed = await knarr(a, 'etcd', 'remove', 'b');
    expect(removed.exitCode, String(removed.stderr)).toBe(0);
    const token = String((await knarr(a, 'etcd', 'token')).stdout).trim();
    const join = await knarr(b, 'etcd', 'join', `https://${a.ip}:2379`, '--token', token);
    expect(join.exitCode, String(join.stderr)).toBe(0);
    const list = await members(a);
    expect(list.map((m) => [m.name, m.learner, m.healthy])).toEqual([
      ['a', false, true],
      ['b', false, true],
      ['c', false, true],
    ]);
    expect(list.find((m) => m.name === 'b')!.clientUrls).toEqual([`https://${newIp}:2379`]);
    expect(await read(b, '/knarr-test/before')).toBe('1');
    // Its old data stays where it was, set aside; the new member's data goes where etcd up would put it now (the pool onboot made).
    expect(readdirSync(`${b.dir}/state/etcd/data`).filter((n) => n.startsWith('member.before-join-'))).toHaveLength(2);
    expect(stateOf(b).dataDir).not.toBe(`${b.dir}/state/etcd/data`);
    // A join to a URL that does not answer cannot tell whether b is still a member there: it changes nothing.
    const before = readFileSync(`${b.dir}/state/etcd/server.json`, 'utf8');
    const nowhere = await knarr(b, 'etcd', 'join', `https://${a.ip}:2399`, '--token', token);
    expect(nowhere.exitCode).toBe(6);
    expect(String(nowhere.stderr)).toContain('knarr etcd up restarts it as it was');
    expect(readFileSync(`${b.dir}/state/etcd/server.json`, 'utf8')).toBe(before);
    expect((await members(a)).every((m) => m.healthy)).toBe(true);
  }, 180_000);
});
