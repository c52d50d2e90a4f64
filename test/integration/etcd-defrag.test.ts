import { existsSync, readFileSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdDefrag } from '../../src/daemon/etcd-defrag.js';
import { clientTls } from '../../src/host/etcd-server.js';
import { probeSpace, type DefragRecord } from '../../src/host/etcd-space.js';
import { etcdClusterKeys } from '../../src/state/keys.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { knarr } from '../harness/cli.js';
import { eventually } from '../harness/eventually.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('scheduled etcd defrag', haveTools('etcd', 'etcdctl', 'openssl'), 'needs etcd, etcdctl and openssl');
const bin = new URL('../../bin/knarr', import.meta.url).pathname;

interface ServerState {
  pid: number | null;
  name: string;
  clientUrl: string;
  endpoints?: string[];
  tls?: { caCert: string; clientCert: string; clientKey: string; memberCert: string; memberKey: string; trusted: string } | null;
}
const serverState = (stateDir: string) => JSON.parse(readFileSync(`${stateDir}/etcd/server.json`, 'utf8')) as ServerState;
const storeOf = (s: ServerState) => connectEtcd(s.endpoints ?? [s.clientUrl], s.tls ? { ca: s.tls.caCert, cert: s.tls.clientCert, key: s.tls.clientKey } : {});
const spaceOf = (s: ServerState) => probeSpace(s.clientUrl, 2000, s.tls ? clientTls(s.tls) : undefined);

/** Writes and deletes a few megabytes under prefix: a database file mostly free once compacted. */
async function fragment(store: Store, prefix: string): Promise<void> {
  const value = 'x'.repeat(64 * 1024);
  for (let round = 0; round < 3; round++) for (let i = 0; i < 40; i++) await store.put(`${prefix}/${i}`, `${round}${value}`);
  await store.deletePrefix(`${prefix}/`);
}

/** The member's space once its compacted pages count as free: bbolt frees them with the writes that follow. */
async function compacted(member: ServerState) {
  const store = await storeOf(member);
  try {
    return await eventually(
      async () => {
        await store.put('/knarr-test/tick', String(Date.now()));
        const space = await spaceOf(member);
        expect(space.dbBytes! - space.dbInUseBytes!).toBeGreaterThan(4 * 1024 * 1024);
        return space;
      },
      20_000,
      200,
    );
  } finally {
    await store.close();
  }
}

function kill(pid: number | null | undefined): void {
  try {
    if (pid) process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

describe.skipIf(!run)('the agent defragments its own etcd member on a schedule', () => {
  let tmp: TempDir;
  const stateDirs: string[] = [];
  let agent: ResultPromise | null = null;

  beforeAll(async () => {
    tmp = await tempDir('knarr-etcd-defrag-');
  });
  afterAll(async () => {
    agent?.kill('SIGKILL');
    await agent;
    for (const dir of stateDirs) if (existsSync(`${dir}/etcd/server.json`)) kill(serverState(dir).pid);
    await tmp?.cleanup();
  });

  it('knarr daemon on a host with a managed etcd: a fragmented database is defragmented, its size drops, etcd status says when', async () => {
    const state = `${tmp.path}/single`;
    stateDirs.push(state);
    const at = (...argv: string[]) => knarr(['--state-dir', state, ...argv], { env: { KNARR_ETCD: undefined } });
    const up = await at('etcd', 'up', '--client-port', String(await freePort()), '--peer-port', String(await freePort()));
    expect(up.code, up.stderr).toBe(0);
    const member = serverState(state);
    const store = await storeOf(member);
    try {
      await fragment(store, '/knarr-test/churn');
    } finally {
      await store.close();
    }
    expect((await at('etcd', 'compact')).code).toBe(0);
    const before = await compacted(member);
    expect((await at('--json', 'etcd', 'status')).json().lastDefrag).toBeNull();

    agent = execa(bin, ['--state-dir', state, 'daemon', '--name', 'solo', '--listen', `127.0.0.1:${await freePort()}`, '--ttl', '2'], {
      reject: false,
      env: {
        KNARR_ETCD: undefined,
        DOCKER_HOST: `unix://${tmp.path}/no-docker.sock`,
        KNARR_DAEMON_ETCD_DEFRAG_CHECK: '1',
        KNARR_DAEMON_ETCD_DEFRAG_MIN_FREE: '1M',
      },
    });
    const status = await eventually(
      async () => {
        const s = await at('--json', 'etcd', 'status');
        expect(s.json().lastDefrag, s.stderr).not.toBeNull();
        return s;
      },
      30_000,
      500,
    );
    const last = status.json().lastDefrag as DefragRecord;
    expect(last.beforeBytes).toBe(before.dbBytes);
    expect(last.afterBytes!).toBeLessThan(before.dbBytes! / 2);
    expect(status.json().dbBytes).toBeLessThan(before.dbBytes! / 2);
    expect((await at('etcd', 'status')).stdout).toMatch(/^last defrag: +\S+ \(\S+ -> \S+\)$/m);
    const events = await at('--json', 'events');
    expect(events.code, events.stderr).toBe(0);
    expect((events.json() as { event: string; object: string }[]).filter((e) => e.event === 'etcd-defrag').map((e) => e.object)).toEqual(['solo']);
    agent.kill('SIGTERM');
    expect((await agent).exitCode).toBe(0);
    agent = null;
  }, 90_000);

  it('two members of one cluster: never both at once; a member waits while another holds the lock', async () => {
    const ip = (n: number) => `127.0.${60 + Math.floor(Math.random() * 150)}.${n}`;
    const hosts = [
      { name: 'd1', ip: ip(2), state: `${tmp.path}/d1` },
      { name: 'd2', ip: '', state: `${tmp.path}/d2` },
    ];
    hosts[1]!.ip = hosts[0]!.ip.replace(/\.2$/, '.3');
    stateDirs.push(...hosts.map((h) => h.state));
    const ports = await Promise.all(hosts.map(async () => [String(await freePort()), String(await freePort())] as const));
    const at = (i: number, ...argv: string[]) => knarr(['--state-dir', hosts[i]!.state, ...argv], { env: { KNARR_ETCD: undefined } });
    const flags = (i: number) => ['--name', hosts[i]!.name, '--client-port', ports[i]![0], '--peer-port', ports[i]![1], '--advertise', hosts[i]!.ip];
    const up = await at(0, 'etcd', 'up', ...flags(0));
    expect(up.code, up.stderr).toBe(0);
    const token = (await at(0, 'etcd', 'token')).stdout.trim();
    const join = await at(1, 'etcd', 'join', `https://${hosts[0]!.ip}:${ports[0]![0]}`, '--token', token, ...flags(1));
    expect(join.code, join.stderr).toBe(0);

    const members = hosts.map((h) => serverState(h.state));
    const stores = await Promise.all(members.map((m) => storeOf(m)));
    const stop = new AbortController();
    try {
      await fragment(stores[0]!, '/knarr-test/churn');
      expect((await at(0, 'etcd', 'compact')).code).toBe(0);
      for (const m of members) await compacted(m);
      const agents = hosts.map(
        (h, i) => new EtcdDefrag(stores[i]!, { stateDir: h.state, fleet: 'default', host: h.name, checkMs: 100, minFreeBytes: 1024 * 1024 }, () => {}),
      );

      // Another member's defragmentation under way (its lock held): this one waits and changes nothing.
      const lease = await stores[1]!.grantLease(30);
      await stores[1]!.put(etcdClusterKeys.defragLock, JSON.stringify({ member: 'other' }), lease);
      const size = (await spaceOf(members[0]!)).dbBytes!;
      const waited = await agents[0]!.check();
      expect(waited).toMatchObject({ done: false, reason: 'locked' });
      expect((await spaceOf(members[0]!)).dbBytes).toBe(size);
      await stores[1]!.revokeLease(lease);

      // Both agents check every 100 ms: each defragments its member once, one after the other.
      const runs = agents.map((a) => a.run(stop.signal));
      const records = await eventually(
        async () => {
          const r = hosts.map((h) => JSON.parse(readFileSync(`${h.state}/etcd/defrag.json`, 'utf8')) as DefragRecord);
          return r;
        },
        30_000,
        200,
      );
      stop.abort();
      await Promise.all(runs);
      expect(records.map((r) => r.member)).toEqual(['d1', 'd2']);
      const [first, second] = [...records].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
      expect(Date.parse(second!.startedAt)).toBeGreaterThanOrEqual(Date.parse(first!.endedAt));
      for (const [i, r] of records.entries()) {
        expect(r.afterBytes!).toBeLessThan(r.beforeBytes / 2);
        expect((await spaceOf(members[i]!)).dbBytes).toBeLessThan(r.beforeBytes / 2);
      }
      // Done lately: the next check leaves it alone.
      expect(await agents[0]!.check()).toMatchObject({ done: false, reason: 'recently' });
      expect(await stores[0]!.get(etcdClusterKeys.defragLock)).toBeNull();
    } finally {
      stop.abort();
      await Promise.all(stores.map((s) => s.close()));
    }
  }, 120_000);
});
