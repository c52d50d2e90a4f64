import { existsSync, writeFileSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetKeys } from '../../src/state/keys.js';
import { clusterWorld, type ClusterWorld } from '../harness/clusters.js';
import { eventually } from '../harness/eventually.js';
import { freePort } from '../harness/ports.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'the cluster collector',
  process.getuid?.() === 0 && haveTools('lxc-start', 'lxc-attach', 'lxc-ls', 'busybox', 'ip', 'etcd'),
  'needs root, lxc, busybox-static, iproute2 and etcd (Debian packages lxc, busybox-static, iproute2, etcd-server)',
);
const bin = new URL('../../bin/knarr', import.meta.url).pathname;

/**
 * A cluster whose record went while its nodes stayed (a host that was away when it was deleted, a
 * crash no operation resumes): the agent's collector removes its containers, volumes and hosts file,
 * and says so; a cluster that has its record is never touched.
 */
describe.skipIf(!run)("the agent's collector of cluster parts no cluster owns (real LXC)", () => {
  let w: ClusterWorld;
  let agent: ResultPromise | undefined;
  const fleet = 'collector';
  const k = (argv: string[]) => w.k(argv);

  beforeAll(async () => {
    w = await clusterWorld('knarr-collector-', fleet, 'carol');
    const tokenFile = `${w.tmp.path}/agent.token`;
    writeFileSync(tokenFile, 'collector-test-token\n', { mode: 0o600 });
    w.env.KNARR_AGENT_TOKEN_FILE = tokenFile;
  }, 60_000);

  afterAll(async () => {
    agent?.kill('SIGKILL');
    await agent;
    await w?.teardown();
  }, 60_000);

  it('removes the nodes, volumes and hosts file of a cluster with no record, after two passes; leaves a cluster that has one', async () => {
    for (const name of ['gone', 'kept']) {
      const r = await k(['cluster', 'create', name, '--size', '2']);
      expect(r.code, r.stderr).toBe(0);
    }
    const gone = (await k(['--json', 'cluster', 'show', 'gone'])).json() as { id: number; nodes: { container: string }[] };
    const kept = (await k(['--json', 'cluster', 'show', 'kept'])).json() as { id: number; nodes: { container: string }[] };
    // The record goes behind knarr's back: as if deleted while this host was away.
    expect(await w.store.delete(fleetKeys(fleet).cluster('carol', 'gone'))).toBe(true);

    const port = await freePort();
    const started = Date.now();
    agent = execa(bin, ['daemon', '--listen', `127.0.0.1:${port}`, '--collect-every', '2', '--ttl', '2'], {
      env: { ...process.env, ...w.env },
      reject: false,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    await eventually(async () => expect(await w.lxcLs()).toEqual(kept.nodes.map((n) => n.container).sort()), 40_000, 500);
    // Never at its first sighting: two passes at least 10 s apart.
    expect(Date.now() - started).toBeGreaterThan(9_000);
    for (const n of gone.nodes) expect(existsSync(`${w.poolDir}/knarr-clusters/${n.container}`), n.container).toBe(false);
    for (const n of kept.nodes) expect(existsSync(`${w.poolDir}/knarr-clusters/${n.container}`), n.container).toBe(true);
    expect(existsSync(`${w.poolDir}/knarr-users/carol/hosts/${gone.id}`)).toBe(false);
    expect(existsSync(`${w.poolDir}/knarr-users/carol/hosts/${kept.id}`)).toBe(true);

    // What it removed is in the host's record, and in the fleet's events.
    const [host] = (await k(['--json', 'host', 'list'])).json() as { name: string }[];
    await eventually(async () => {
      const shown = (await k(['--json', 'host', 'show', host!.name])).json() as { collected?: { removed: string[] } };
      expect(shown.collected?.removed).toEqual(expect.arrayContaining(gone.nodes.map((n) => `container ${n.container}`)));
    }, 10_000);
    const events = (await k(['--json', 'events', '--kind', 'host'])).json() as { event: string; message: string }[];
    expect(events.some((e) => e.event === 'collected' && e.message.includes(gone.nodes[0]!.container))).toBe(true);
    // The cluster that has its record still runs.
    const still = (await k(['cluster', 'exec', 'kept', '1', '--', 'hostname'])).stdout;
    expect(still.trim()).toBe('host-1');
  }, 120_000);
  it("removes a node's container and volume here when its record puts the node on another fleet host (a move's or a scale's " +
    'leftover), keeping its address', async () => {
    const kept = (await k(['--json', 'cluster', 'show', 'kept'])).json() as { id: number; nodes: { container: string; host: string; ip: string }[] };
    const keys = fleetKeys(fleet);
    // Another fleet host, as a record: the node is recorded there now, as after a migration whose source copy stayed.
    await w.store.put(keys.host('elsewhere'), JSON.stringify({ name: 'elsewhere', address: 'http://192.0.2.1:7946', tags: [], state: 'ok' }));
    const key = keys.cluster('carol', 'kept');
    const record = JSON.parse((await w.store.get(key))!) as { nodes: { container: string; host: string }[] };
    record.nodes[1]!.host = 'elsewhere';
    await w.store.put(key, JSON.stringify(record));
    const moved = kept.nodes[1]!.container;
    await eventually(async () => expect(await w.lxcLs()).toEqual([kept.nodes[0]!.container]), 40_000, 500);
    expect(existsSync(`${w.poolDir}/knarr-clusters/${moved}`)).toBe(false);
    // The node lives on elsewhere: its address stays held for it.
    const held = (await w.store.list(keys.userAddresses('carol'))).map((kv) => kv.value);
    expect(held).toContain(moved);
    // The node recorded here is never touched.
    expect((await k(['cluster', 'exec', 'kept', '0', '--', 'hostname'])).stdout.trim()).toBe('host-0');
  }, 120_000);
});
