import { existsSync, readFileSync, statSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEtcd } from '../../src/state/store.js';
import { knarr } from '../harness/cli.js';
import { eventually } from '../harness/eventually.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('etcd cluster', haveTools('etcd', 'etcdctl', 'openssl'), 'needs etcd, etcdctl (etcd-server, etcd-client) and openssl');

/** A "host": its own loopback address, state directory and ports. */
interface Host {
  name: string;
  ip: string;
  stateDir: string;
  clientPort: number;
  peerPort: number;
}

const serverState = (h: Host) => JSON.parse(readFileSync(`${h.stateDir}/etcd/server.json`, 'utf8')) as { pid: number | null; endpoints?: string[] };
const pidOf = (h: Host) => (existsSync(`${h.stateDir}/etcd/server.json`) ? serverState(h).pid : null);
const at = (h: Host, ...argv: string[]) => knarr(['--state-dir', h.stateDir, ...argv]);

function kill(pid: number | null, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    if (pid) process.kill(pid, signal);
  } catch {
    /* gone */
  }
}

describe.skipIf(!run)('a managed etcd cluster over TLS: up --advertise, join, members, remove', () => {
  let tmp: TempDir;
  const hosts: Host[] = [];
  const started = new Set<number>();
  let token = '';
  let base = 0;

  beforeAll(async () => {
    tmp = await tempDir('etcd-cluster');
    // 127.0.0.0/8 is all loopback on Linux: each host its own address, as on a LAN.
    base = 20 + Math.floor(Math.random() * 200);
    for (const [i, name] of ['h1', 'h2', 'h3'].entries()) {
      hosts.push({ name, ip: `127.0.${base}.${i + 2}`, stateDir: `${tmp.path}/${name}`, clientPort: await freePort(), peerPort: await freePort() });
    }
  });

  afterAll(async () => {
    for (const h of hosts) {
      const pid = pidOf(h);
      if (pid) started.add(pid);
    }
    for (const pid of started) kill(pid);
    await tmp?.cleanup();
  });

  const remember = (h: Host) => {
    const pid = pidOf(h);
    if (pid) started.add(pid);
  };
  const ports = (h: Host) => ['--name', h.name, '--client-port', String(h.clientPort), '--peer-port', String(h.peerPort)];
  const join = (h: Host, t = token) => at(h, 'etcd', 'join', `https://${hosts[0]!.ip}:${hosts[0]!.clientPort}`, '--token', t, '--advertise', h.ip, ...ports(h));

  it('the first member: a fleet CA with 0600 keys, a join token naming the CA, TLS required of clients', async () => {
    const [h1] = hosts as [Host];
    const up = await at(h1, '--json', 'etcd', 'up', '--advertise', h1.ip, ...ports(h1));
    remember(h1);
    expect(up.code, up.stderr).toBe(0);
    expect(up.json().endpoints).toEqual([`https://${h1.ip}:${h1.clientPort}`]);
    for (const key of ['ca.key', 'member.key', 'client.key', 'join.key', 'token']) {
      expect(statSync(`${h1.stateDir}/etcd/pki/${key}`).mode & 0o777, key).toBe(0o600);
    }
    const t = await at(h1, 'etcd', 'token');
    expect(t.code).toBe(0);
    token = t.stdout.trim();
    expect(token).toMatch(/^knarr1\.[0-9a-f]{64}\.[A-Za-z0-9_-]{43}$/);
    // Without a client certificate etcd refuses, even with the right CA.
    await expect(connectEtcd([`https://${h1.ip}:${h1.clientPort}`], { ca: `${h1.stateDir}/etcd/pki/ca.crt` })).rejects.toThrow();
    // The status names the etcdctl command that reaches it, and it works.
    const status = await at(h1, '--json', 'etcd', 'status');
    expect(status.json().etcdctl).toContain(`--cert ${h1.stateDir}/etcd/pki/client.crt`);
    // Running it again changes nothing.
    const again = await at(h1, '--json', 'etcd', 'up', '--advertise', h1.ip, ...ports(h1));
    expect(again.json().action).toBe('running');
  });

  it('a wrong CA hash or a wrong secret is refused with a clear error, and the joining host is left as it was', async () => {
    const [, h2] = hosts as [Host, Host];
    const [prefix, hash, secret] = token.split('.') as [string, string, string];
    const badHash = `${prefix}.${hash.replace(/^./, hash[0] === 'a' ? 'b' : 'a')}.${secret}`;
    const r = await join(h2, badHash);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('does not present the CA the token names');
    expect(r.stderr).toContain(`sha256:${hash}`);
    expect(existsSync(`${h2.stateDir}/etcd/server.json`)).toBe(false);
    expect(existsSync(`${h2.stateDir}/etcd/pki`)).toBe(false);

    const badSecret = `${prefix}.${hash}.${Buffer.alloc(32, 7).toString('base64url')}`;
    const s = await join(h2, badSecret);
    expect(s.code).not.toBe(0);
    expect(s.stderr).toMatch(/refused this host's join credentials|no CA key this token opens/);
    expect(existsSync(`${h2.stateDir}/etcd/pki`)).toBe(false);
    expect((await at(hosts[0]!, '--json', 'etcd', 'members')).json()).toHaveLength(1);
  });

  it('two hosts join at once (one of them twice): three voters, and a member host reaches the store with its certificates', async () => {
    const [h1, h2, h3] = hosts as [Host, Host, Host];
    const results = await Promise.all([join(h2), join(h3), join(h2)]);
    for (const h of [h2, h3]) remember(h);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const members = (await at(h1, '--json', 'etcd', 'members')).json() as { name: string; learner: boolean; healthy: boolean; leader: boolean }[];
    expect(members.map((m) => m.name)).toEqual(['h1', 'h2', 'h3']);
    expect(members.every((m) => !m.learner && m.healthy)).toBe(true);
    expect(members.filter((m) => m.leader)).toHaveLength(1);
    // The store commands on a member host use its TLS endpoints without any --etcd.
    const list = await at(h3, '--json', 'host', 'list');
    expect(list.code, list.stderr).toBe(0);
  }, 240_000);

  it('one member killed: the store still answers; `etcd up` brings it back on its data; remove refuses below quorum', async () => {
    const [h1, h2, h3] = hosts as [Host, Host, Host];
    // Each host learns every member's endpoint.
    for (const h of hosts) expect((await at(h, 'etcd', 'members')).code).toBe(0);
    const certs = (h: Host) => ({ ca: `${h.stateDir}/etcd/pki/ca.crt`, cert: `${h.stateDir}/etcd/pki/client.crt`, key: `${h.stateDir}/etcd/pki/client.key` });
    const store = await connectEtcd(serverState(h2).endpoints!, certs(h2));
    try {
      await store.put('/knarr-test/before', '1');
      kill(pidOf(h1));
      await eventually(async () => expect((await at(h2, 'host', 'list')).code).toBe(0), 20_000);
      await store.put('/knarr-test/during', '2');

      // With h1 down, removing a healthy member would leave one healthy of two voters.
      const refused = await at(h2, 'etcd', 'remove', 'h3');
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('below the quorum');
      expect((await at(h2, '--json', 'etcd', 'members')).json()).toHaveLength(3);

      const up = await at(h1, '--json', 'etcd', 'up');
      remember(h1);
      // Its member frozen, a store command on h1 goes to the others at once instead of waiting for it.
      process.kill(pidOf(h1)!, 'SIGSTOP');
      try {
        const t0 = Date.now();
        const frozen = await at(h1, 'host', 'list');
        expect(frozen.code, frozen.stderr).toBe(0);
        expect(Date.now() - t0).toBeLessThan(5000);
      } finally {
        process.kill(pidOf(h1)!, 'SIGCONT');
      }
      expect(up.code, up.stderr).toBe(0);
      expect(up.json().action).toBe('started');
      // Its data came back with it and it caught up with what was written while it was down.
      const direct = await connectEtcd([`https://${h1.ip}:${h1.clientPort}`], certs(h1));
      try {
        await eventually(async () => expect(await direct.get('/knarr-test/during')).toBe('2'), 20_000);
        expect(await direct.get('/knarr-test/before')).toBe('1');
      } finally {
        await direct.close();
      }
      const members = (await at(h3, '--json', 'etcd', 'members')).json() as { healthy: boolean }[];
      expect(members.filter((m) => m.healthy)).toHaveLength(3);
    } finally {
      await store.close();
    }
  }, 120_000);

  it('backup takes a snapshot over TLS; restore brings the member back as a one-member cluster with that data', async () => {
    const [h1, h2, h3] = hosts as [Host, Host, Host];
    const file = `${tmp.path}/cluster.db`;
    const backup = await at(h2, '--json', 'etcd', 'backup', file);
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.json().keys).toBeGreaterThan(0);
    // The old cluster goes away (as after a disaster); the snapshot founds the new one on h1.
    kill(pidOf(h2));
    kill(pidOf(h3));
    const restore = await at(h1, '--json', 'etcd', 'restore', file, '--yes');
    remember(h1);
    expect(restore.code, restore.stderr).toBe(0);
    const members = (await at(h1, '--json', 'etcd', 'members')).json() as { name: string; healthy: boolean }[];
    expect(members.map((m) => [m.name, m.healthy])).toEqual([['h1', true]]);
    const store = await connectEtcd([`https://${h1.ip}:${h1.clientPort}`], {
      ca: `${h1.stateDir}/etcd/pki/ca.crt`,
      cert: `${h1.stateDir}/etcd/pki/client.crt`,
      key: `${h1.stateDir}/etcd/pki/client.key`,
    });
    try {
      expect(await store.get('/knarr-test/during')).toBe('2');
    } finally {
      await store.close();
    }
  }, 120_000);

  it('a join cut short right after its learner was added is finished by running it again', async () => {
    const h1 = hosts[0]!;
    const h4: Host = { name: 'h4', ip: `127.0.${base}.5`, stateDir: `${tmp.path}/h4`, clientPort: await freePort(), peerPort: await freePort() };
    hosts.push(h4);
    // What a join killed just after `member add` leaves: a learner that never started.
    const pki = `${h1.stateDir}/etcd/pki`;
    await execa(
      'etcdctl',
      [
        '--endpoints',
        `https://${h1.ip}:${h1.clientPort}`,
        '--cacert',
        `${pki}/ca.crt`,
        '--cert',
        `${pki}/client.crt`,
        '--key',
        `${pki}/client.key`,
        'member',
        'add',
        'h4',
        '--learner',
        `--peer-urls=https://${h4.ip}:${h4.peerPort}`,
      ],
      { env: { ETCDCTL_API: '3' } },
    );
    const r = await join(h4);
    remember(h4);
    expect(r.code, r.stderr).toBe(0);
    const members = (await at(h1, '--json', 'etcd', 'members')).json() as { name: string; learner: boolean; healthy: boolean }[];
    expect(members.map((m) => [m.name, m.learner, m.healthy])).toEqual([
      ['h1', false, true],
      ['h4', false, true],
    ]);
  }, 120_000);
});
