import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomInt } from 'node:crypto';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/state/store.js';
import { fleetKeys } from '../../src/state/keys.js';
import { OpRepo } from '../../src/state/ops.js';
import { knarr } from '../harness/cli.js';
import { clusterWorld, type ClusterWorld } from '../harness/clusters.js';
import type { TempDir } from '../harness/tmp.js';
import { freePort } from '../harness/ports.js';
import { haveTools, integration } from '../harness/tools.js';
import { eventually } from '../harness/eventually.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';

const run = integration(
  'clusters',
  process.getuid?.() === 0 && haveTools('lxc-start', 'lxc-attach', 'lxc-ls', 'busybox', 'ip', 'etcd'),
  'needs root, lxc, busybox-static, iproute2 and etcd (Debian packages lxc, busybox-static, iproute2, etcd-server)',
);
const runZfs = run && integration('clusters beside a zfs pool', await zfsAnswers(), 'zpool does not answer (install zfs-fuse)');
const bin = new URL('../../bin/knarr', import.meta.url).pathname;
/** The system dockerd's firewall: FORWARD drops, and bridged frames go through iptables. */
const dockerFirewall = async () =>
  haveTools('iptables') &&
  /^-P FORWARD DROP/m.test((await execa('iptables', ['-w', '-S', 'FORWARD'], { reject: false })).stdout) &&
  readFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8').trim() === '1';
const firewalled =
  run &&
  integration(
    "clusters behind docker's firewall",
    await dockerFirewall().catch(() => false),
    'FORWARD policy is not DROP with bridge-nf-call-iptables=1: start the system dockerd (knarr doctor --fix)',
  );

describe.skipIf(!run)('LXC clusters driven by durable operations (real LXC, a busybox base image)', () => {
  let w: ClusterWorld;
  let tmp: TempDir;
  let bridge: string;
  let store: Store;
  let env: Record<string, string>;
  let lxcPath: string;
  let poolDir: string;
  const fleet = 'clusters';
  const k = (argv: string[]) => knarr(argv, { env });
  const lxcLs = () => w.lxcLs();
  const attach = (container: string, ...cmd: string[]) => w.attach(container, ...cmd);
  const show = async (name: string) => (await k(['--json', 'cluster', 'show', name])).json();

  beforeAll(async () => {
    w = await clusterWorld('knarr-clusters-', fleet, 'alice');
    ({ tmp, store, env, lxcPath, poolDir, bridge } = w);
  }, 60_000);

  afterAll(async () => {
    await w?.teardown();
  }, 60_000);

  it("a 3-node cluster: hostnames, /etc/hosts, a shared /nfs, each node's writes in its own volume, and a network between them", async () => {
    const r = await k(['cluster', 'create', 'lab', '--size', '3', '--memory', '128M']);
    expect(r.code, r.stderr).toBe(0);
    const c = await show('lab');
    expect(c).toMatchObject({ name: 'lab', user: 'alice', status: 'running', size: 3 });
    expect(c.nodes.map((n: { container: string; hostname: string; state: string }) => [n.container, n.hostname, n.state])).toEqual(
      [0, 1, 2].map((i) => [`alice-${c.id}-${i}`, `host-${i}`, 'RUNNING']),
    );
    expect(await lxcLs()).toEqual([0, 1, 2].map((i) => `alice-${c.id}-${i}`));
    for (const i of [0, 1, 2]) expect(await attach(`alice-${c.id}-${i}`, 'hostname')).toBe(`host-${i}`);

    const hosts = await attach(`alice-${c.id}-0`, 'cat', '/etc/hosts');
    for (const n of c.nodes) expect(hosts).toContain(`${n.ip} ${n.hostname} ${n.hostname}.lab`);
    const readOnly = await execa('lxc-attach', ['-P', lxcPath, '-n', `alice-${c.id}-1`, '--', 'sh', '-c', 'echo x >> /etc/hosts'], { reject: false });
    expect(readOnly.exitCode).not.toBe(0);

    await attach(`alice-${c.id}-0`, 'sh', '-c', 'echo from-node-0 > /nfs/shared.txt');
    expect(await attach(`alice-${c.id}-2`, 'cat', '/nfs/shared.txt')).toBe('from-node-0');
    await attach(`alice-${c.id}-1`, 'sh', '-c', 'echo one > /root/own.txt');
    expect(readFileSync(`${poolDir}/knarr-clusters/alice-${c.id}-1/delta/root/own.txt`, 'utf8')).toBe('one\n');
    expect(existsSync(`${poolDir}/knarr-clusters/alice-${c.id}-2/delta/root/own.txt`)).toBe(false);

    const ping = await execa('lxc-attach', ['-P', lxcPath, '-n', `alice-${c.id}-0`, '--', 'ping', '-c', '1', '-W', '3', 'host-2'], { reject: false });
    expect(ping.exitCode, ping.stdout + ping.stderr).toBe(0);
    const exec = await k(['cluster', 'exec', 'lab', 'host-2', '--', 'sh', '-c', 'hostname; exit 4']);
    expect(exec.code).toBe(4);
    expect(exec.stdout).toBe('host-2\n');
    // -i feeds stdin to the command; output and errors come apart, as they are made.
    const fed = await execa(bin, ['cluster', 'exec', '-i', 'lab', '1', '--', 'sh', '-c', 'cat > /root/fed.txt; wc -c < /root/fed.txt; echo done >&2'], {
      env: { ...process.env, ...env },
      input: 'x'.repeat(100_000),
      reject: false,
    });
    expect(fed.exitCode, fed.stderr).toBe(0);
    expect(fed.stdout.trim()).toBe('100000');
    expect(fed.stderr).toBe('done');
    // A command that stops reading ends the exec, whatever stdin still holds.
    const early = await execa('bash', ['-c', `yes | "$0" cluster exec -i lab 1 -- head -n 1`, bin], { env: { ...process.env, ...env }, timeout: 20_000 });
    expect(early.stdout).toBe('y');
  }, 60_000);

  it("scale 3 -> 5 -> 2 and stop/start keep the remaining nodes' data; delete leaves nothing behind", async () => {
    const { id } = await show('lab');
    await attach(`alice-${id}-0`, 'sh', '-c', 'echo zero > /root/keep.txt');
    expect((await k(['cluster', 'scale', 'lab', '--size', '5'])).code).toBe(0);
    expect(await lxcLs()).toHaveLength(5);
    expect(await attach(`alice-${id}-4`, 'cat', '/etc/hosts')).toContain('host-0.lab');
    expect(await attach(`alice-${id}-0`, 'cat', '/etc/hosts')).toContain('host-4.lab');
    expect((await k(['cluster', 'scale', 'lab', '--size', '2'])).code).toBe(0);
    expect(await lxcLs()).toEqual([`alice-${id}-0`, `alice-${id}-1`]);
    expect(await attach(`alice-${id}-0`, 'cat', '/etc/hosts')).not.toContain('host-2');
    expect(await attach(`alice-${id}-0`, 'cat', '/root/keep.txt')).toBe('zero');
    expect(await attach(`alice-${id}-1`, 'cat', '/root/own.txt')).toBe('one');

    expect((await k(['cluster', 'stop', 'lab'])).code).toBe(0);
    expect((await show('lab')).nodes.map((n: { state: string }) => n.state)).toEqual(['STOPPED', 'STOPPED']);
    // A stopped cluster grows stopped.
    expect((await k(['cluster', 'scale', 'lab', '--size', '3'])).code).toBe(0);
    expect(await show('lab')).toMatchObject({ status: 'stopped' });
    expect((await show('lab')).nodes.map((n: { state: string }) => n.state)).toEqual(['STOPPED', 'STOPPED', 'STOPPED']);
    expect((await k(['cluster', 'start', 'lab'])).code).toBe(0);
    expect((await show('lab')).nodes.map((n: { state: string }) => n.state)).toEqual(['RUNNING', 'RUNNING', 'RUNNING']);
    expect(await attach(`alice-${id}-0`, 'cat', '/root/keep.txt')).toBe('zero');
    // Each step of its life is an event of the cluster, which cluster show lists last.
    const shown = (await show('lab')).events as { event: string; message: string }[];
    expect(shown.map((e) => `${e.event} ${e.message.replace(/(, )?by op-\d+$/, '')}`.trim())).toEqual([
      'scaled 5 node(s)',
      'scaled 2 node(s)',
      'stopped',
      'scaled 3 node(s)',
      'started',
    ]);

    expect((await k(['cluster', 'delete', 'lab'])).code).toBe(0);
    expect(await lxcLs()).toEqual([]);
    expect(readdirSync(`${poolDir}/knarr-clusters`)).toEqual([]);
    const keys = fleetKeys(fleet);
    expect(await store.list(keys.clusters)).toEqual([]);
    expect(await store.list(keys.userAddresses('alice'))).toEqual([]);
    expect(await store.get(keys.userSubnet('alice'))).toBeNull();
    const events = (await k(['--json', 'events', '--kind', 'cluster'])).json() as { object: string; event: string }[];
    expect(events.filter((e) => e.object === 'alice/lab').map((e) => e.event)).toEqual([
      'created',
      'scaled',
      'scaled',
      'stopped',
      'scaled',
      'started',
      'deleted',
    ]);
    // The user's own data outlives the cluster.
    expect(readFileSync(`${poolDir}/knarr-users/alice/data/shared.txt`, 'utf8')).toBe('from-node-0\n');
  }, 90_000);

  it("image save: a node's filesystem, its deletions too, becomes an image a new cluster starts from", async () => {
    expect((await k(['cluster', 'create', 'src', '--size', '1'])).code).toBe(0);
    const { id } = await show('src');
    // A file of the base image the node deletes: the image keeps the deletion.
    const gone = await attach(`alice-${id}-0`, 'sh', '-c', 'echo saved > /root/kept.txt; f=/usr/bin/$(ls /usr/bin | head -n 1); rm "$f"; echo "$f"');
    const saved = await k(['--json', 'image', 'save', 'src', '0', 'snap']);
    expect(saved.code, saved.stderr).toBe(0);
    expect(
      (await k(['--json', 'image', 'list']))
        .json()
        .map((i: { name: string }) => i.name)
        .sort(),
    ).toEqual(['base', 'snap']);
    expect((await k(['cluster', 'create', 'from-snap', '--size', '1', '--image', 'snap'])).code).toBe(0);
    const copy = (await show('from-snap')).id;
    expect(await attach(`alice-${copy}-0`, 'cat', '/root/kept.txt')).toBe('saved');
    expect(gone).toMatch(/^\/usr\/bin\/\S+$/);
    expect((await execa('lxc-attach', ['-P', lxcPath, '-n', `alice-${copy}-0`, '--', 'test', '-L', gone], { reject: false })).exitCode).not.toBe(0);
    expect((await execa('lxc-attach', ['-P', lxcPath, '-n', `alice-${copy}-0`, '--', 'test', '-L', '/bin/sh'], { reject: false })).exitCode).toBe(0);
    // Saved once: a second save under the same name is refused and changes nothing.
    expect((await k(['image', 'save', 'src', '0', 'snap'])).code).not.toBe(0);
    for (const name of ['from-snap', 'src']) expect((await k(['cluster', 'delete', name])).code).toBe(0);
    expect((await k(['image', 'rm', 'snap'])).code).toBe(0);
  }, 90_000);

  it('two concurrent creates get different ids', async () => {
    const both = await Promise.all(
      ['one', 'two'].map((name) => execa(bin, ['--json', 'cluster', 'create', name, '--size', '1'], { env: { ...process.env, ...env }, reject: false })),
    );
    for (const r of both) expect(r.exitCode, r.stderr).toBe(0);
    const ids = await Promise.all(['one', 'two'].map(async (n) => (await show(n)).id));
    expect(new Set(ids).size).toBe(2);
    for (const n of ['one', 'two']) expect((await k(['cluster', 'delete', n])).code).toBe(0);
  }, 60_000);

  it.skipIf(!firewalled)(
    "opens its bridge in docker's firewall (FORWARD DROP) while it has clusters, without duplicates, and closes it with the bridge",
    async () => {
      const rules = async () => (await execa('iptables', ['-w', '-S'])).stdout.split('\n').filter((l) => l.includes(`knarr bridge ${bridge}`));
      const check = async () =>
        ((await k(['--json', 'doctor'])).json().checks as { name: string; status: string; detail: string }[]).find((c) => c.name === 'cluster bridge')!;
      expect((await k(['cluster', 'create', 'fw', '--size', '2', '--memory', '64M'])).code).toBe(0);
      const { id } = await show('fw');
      // docker's chain for the operator's rules, one rule in and one out.
      const rule = (dir: string) => [dir, bridge, '-m', 'comment', '--comment', `knarr bridge ${bridge}`, '-j', 'ACCEPT'];
      expect((await rules()).sort()).toEqual(['-i', '-o'].map((d) => `-A DOCKER-USER ${d} ${bridge} -m comment --comment "knarr bridge ${bridge}" -j ACCEPT`));
      const ping = await execa('lxc-attach', ['-P', lxcPath, '-n', `alice-${id}-0`, '--', 'ping', '-c', '1', '-W', '3', 'host-1'], { reject: false });
      expect(ping.exitCode, ping.stdout + ping.stderr).toBe(0);
      expect(await check()).toMatchObject({ status: 'ok' });

      // Rules lost (iptables flushed by hand): doctor says so, and starting the cluster again puts them back, once.
      for (const d of ['-i', '-o']) await execa('iptables', ['-w', '-D', 'DOCKER-USER', ...rule(d)]);
      expect(await rules()).toEqual([]);
      expect(await check()).toMatchObject({ status: 'missing', detail: expect.stringContaining(`no ACCEPT rule for ${bridge}`) });
      const cut = await execa('lxc-attach', ['-P', lxcPath, '-n', `alice-${id}-0`, '--', 'ping', '-c', '1', '-W', '2', 'host-1'], { reject: false });
      expect(cut.exitCode).not.toBe(0);
      expect((await k(['cluster', 'stop', 'fw'])).code).toBe(0);
      expect((await k(['cluster', 'start', 'fw'])).code).toBe(0);
      expect((await k(['cluster', 'start', 'fw'])).code).toBe(0);
      expect(await rules()).toHaveLength(2);

      expect((await k(['cluster', 'delete', 'fw'])).code).toBe(0);
      expect(existsSync(`/sys/class/net/${bridge}`)).toBe(false);
      expect(await rules()).toEqual([]);
    },
    120_000,
  );

  it('imports a rootfs from a compressed tar file, read through knarr (a pipe tar cannot guess compression from)', async () => {
    mkdirSync(`${tmp.path}/gzroot/bin`, { recursive: true });
    copyFileSync('/bin/busybox', `${tmp.path}/gzroot/bin/sh`);
    await execa('tar', ['-C', `${tmp.path}/gzroot`, '-czf', `${tmp.path}/root.tar.gz`, '.']);
    const r = await k(['--json', 'image', 'import', 'gz', `${tmp.path}/root.tar.gz`]);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(`${r.json().rootfs}/bin/sh`)).toBe(true);
    expect((await k(['image', 'rm', 'gz'])).code).toBe(0);
  });

  it('bad input gets a clear error naming the field, and nothing is created', async () => {
    const ops = (await new OpRepo(store, fleet).list()).length;
    const cases: [string[], RegExp][] = [
      [['x', '--size', '0'], /--size: "0" is not a cluster size/],
      [['x', '--size', '-1'], /--size: "-1" is not a cluster size/],
      [['x', '--size', '10000'], /--size: "10000" is not a cluster size/],
      [['x', '--size', '1', '--image', 'nosuch'], /no image nosuch/],
      [['a/b', '--size', '1'], /NAME: "a\/b" is not a cluster name/],
      [['a b', '--size', '1'], /NAME: "a b" is not a cluster name/],
      [['c'.repeat(65), '--size', '1'], /NAME: cluster names are at most 64 characters/],
    ];
    for (const [argv, message] of cases) {
      const r = await k(['cluster', 'create', ...argv]);
      expect(r.code, argv.join(' ')).toBeGreaterThan(1);
      expect(r.stderr).toMatch(message);
    }
    // An imported rootfs whose /sbin is a symlink would make knarr write outside it: refused, and nothing written there.
    const { symlinkSync } = await import('node:fs');
    mkdirSync(`${tmp.path}/evil/bin`, { recursive: true });
    mkdirSync(`${tmp.path}/outside`);
    copyFileSync('/bin/busybox', `${tmp.path}/evil/bin/sh`);
    symlinkSync(`${tmp.path}/outside`, `${tmp.path}/evil/sbin`);
    const evil = await k(['image', 'import', 'evil', `${tmp.path}/evil`]);
    expect(evil.code).toBe(2);
    expect(evil.stderr).toMatch(/\/sbin in the image goes through a symlink/);
    expect(readdirSync(`${tmp.path}/outside`)).toEqual([]);
    expect((await new OpRepo(store, fleet).list()).length).toBe(ops);
    expect(await lxcLs()).toEqual([]);
    expect((await k(['--json', 'cluster', 'list'])).json()).toEqual([]);
  });

  it.skipIf(!runZfs)('a configured pool on zfs-fuse is passed over for the one pool that can hold nodes; named, it is refused', async () => {
    // The default pool name (knarr) on zfs-fuse, beside the dir pool "nodes".
    const zpool = `kcz${randomInt(36 ** 4).toString(36)}`;
    const init = await k(['pool', 'init', '--name', zpool, '--driver', 'zfs', '--loop-file', `${tmp.path}/z.img`, '--size', '128M']);
    expect(init.code, init.stderr).toBe(0);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${tmp.path}/zfs-default.yaml`, `pool:\n  name: ${zpool}\n`);
    const zenv = { ...env, KNARR_CONFIG: `${tmp.path}/zfs-default.yaml` };
    try {
      const img = await knarr(['--json', 'image', 'import', 'onzfs', '--busybox'], { env: zenv });
      expect(img.code, img.stderr).toBe(0);
      expect(img.json()).toMatchObject({ name: 'onzfs', pool: 'nodes' });
      const named = await knarr(['image', 'import', 'refused', '--busybox', '--pool', zpool], { env: zenv });
      expect(named.code).toBe(5);
      expect(named.stderr).toMatch(/cannot hold cluster nodes: overlayfs refuses it/);
      expect((await knarr(['image', 'rm', 'onzfs'], { env: zenv })).code).toBe(0);
    } finally {
      await k(['pool', 'destroy', zpool, '--yes', '--force']);
      await destroyPoolQuietly(zpool);
    }
  });

  it('one operation at a time on a cluster: a second command is refused while the first is not over', async () => {
    const ops = new OpRepo(store, fleet);
    expect((await k(['cluster', 'create', 'busy', '--size', '1'])).code).toBe(0);
    // An operation for a host whose agent is away: queued, it holds the cluster.
    const held = await ops.submit('cluster.scale', { user: 'alice', name: 'busy', size: 2 }, 'elsewhere');
    const r = await k(['cluster', 'delete', 'busy']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(
      new RegExp(
        `cluster busy of user alice has ${held.id} \\(cluster.scale\\) queued\n  hint: it waits for the agent of elsewhere; or take it ` +
          `back: knarr op cancel ${held.id}`,
      ),
    );
    expect((await k(['op', 'cancel', held.id])).code).toBe(0);
    // One of this host's, with no agent here: waiting would never end, so the hint says how to run it.
    const mine = await ops.submit('cluster.scale', { user: 'alice', name: 'busy', size: 2 }, hostname());
    const again = await k(['cluster', 'delete', 'busy']);
    expect(again.code).toBe(4);
    expect(again.stderr).toContain(`hint: no agent runs it: resume it with knarr op run ${mine.id}; or take it back: knarr op cancel ${mine.id}`);
    expect((await k(['op', 'cancel', mine.id])).code).toBe(0);
    expect((await show('busy')).nodes).toHaveLength(1);
    // Over: the command goes ahead.
    expect((await k(['cluster', 'delete', 'busy'])).code).toBe(0);
    expect(await lxcLs()).toEqual([]);
  });

  describe('with an agent on this host', () => {
    let agent: ResultPromise | null = null;
    let port: number;
    const startAgent = async (...extra: string[]) => {
      if (agent && agent.exitCode === null) {
        agent.kill('SIGTERM');
        await agent;
      }
      agent = execa(bin, ['daemon', '--name', hostname(), '--listen', `127.0.0.1:${port}`, '--ttl', '2', ...extra], {
        env: { ...process.env, ...env },
        reject: false,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      await eventually(async () => expect((await k(['--json', 'host', 'show', hostname()])).json()).toMatchObject({ up: true, join: 'ok' }));
    };
    const killAgent = async () => {
      agent?.kill('SIGKILL');
      await agent;
    };
    beforeAll(async () => {
      port = await freePort();
    });
    afterAll(async () => {
      agent?.kill('SIGTERM');
      await agent;
    });

    /** Submits a create with --detach and kills the agent once two nodes are up. */
    async function createAndKill(name: string, size: number): Promise<string> {
      await startAgent();
      const r = await k(['--json', 'cluster', 'create', name, '--size', String(size), '--detach']);
      expect(r.code, r.stderr).toBe(0);
      const id = r.json().id as string;
      const ops = new OpRepo(store, fleet);
      // Polled straight from etcd: the create must be caught half-way.
      for (let i = 0; i < 1500 && ((await ops.get(id))?.progress.done ?? 0) < 2; i++) await new Promise((r) => setTimeout(r, 20));
      await killAgent();
      expect((await ops.get(id))!.status).toBe('running');
      return id;
    }

    it('an agent killed in the middle of a create resumes it when it starts again: a complete cluster, no orphan', async () => {
      const op = await createAndKill('big', 40);
      await startAgent();
      const waited = await k(['--json', 'op', 'wait', op, '--timeout', '60']);
      expect(waited.code, waited.stderr).toBe(0);
      expect(waited.json()).toMatchObject({ status: 'done', attempts: 2 });
      const c = await show('big');
      expect(c.nodes.map((n: { state: string }) => n.state)).toEqual(Array(40).fill('RUNNING'));
      expect(await lxcLs()).toHaveLength(40);
      expect(readdirSync(`${poolDir}/knarr-clusters`)).toHaveLength(40);
      expect((await k(['cluster', 'delete', 'big'])).code).toBe(0);
      expect(await lxcLs()).toEqual([]);
    }, 120_000);

    it('an interrupted create that is cancelled is undone: no container, volume or key', async () => {
      const op = await createAndKill('gone', 40);
      // Once the dead agent's lease lapses, the host has no runner: the CLI undoes it inline.
      await eventually(async () => expect((await k(['--json', 'host', 'show', hostname()])).json()).toMatchObject({ up: false }));
      const cancelled = await k(['--json', 'op', 'cancel', op]);
      expect(cancelled.code, cancelled.stderr).toBe(0);
      expect(cancelled.json()).toMatchObject({ status: 'cancelled' });
      expect(await lxcLs()).toEqual([]);
      expect(readdirSync(`${poolDir}/knarr-clusters`)).toEqual([]);
      expect((await k(['--json', 'cluster', 'list'])).json()).toEqual([]);
      expect(await store.list(fleetKeys(fleet).userAddresses('alice'))).toEqual([]);
    }, 120_000);

    it('a host that comes back (its nodes stopped, as after a reboot) starts its clusters on joining in recovery mode; new mode deletes them', async () => {
      await startAgent();
      expect((await k(['cluster', 'create', 'rec', '--size', '2'])).code).toBe(0);
      const { id } = await show('rec');
      agent!.kill('SIGTERM');
      await agent;
      for (const i of [0, 1]) await execa('lxc-stop', ['-P', lxcPath, '-n', `alice-${id}-${i}`, '-k']);
      expect((await show('rec')).nodes.map((n: { state: string }) => n.state)).toEqual(['STOPPED', 'STOPPED']);

      await startAgent('--mode', 'recovery');
      await eventually(async () => expect((await show('rec')).nodes.map((n: { state: string }) => n.state)).toEqual(['RUNNING', 'RUNNING']));
      expect((await k(['--json', 'host', 'show', hostname()])).json()).toMatchObject({ join: 'ok' });
      // One host.init operation, its child the cluster's start, each naming the other.
      const ops = (await k(['--json', 'op', 'list'])).json() as { id: string; kind: string; status: string; parent: string | null; children: string[] }[];
      const init = ops.filter((o) => o.kind === 'host.init').at(-1)!;
      await eventually(async () =>
        expect((await k(['--json', 'op', 'show', init.id])).json()).toMatchObject({ status: 'done', children: [expect.any(String)] }),
      );
      const [childId] = (await k(['--json', 'op', 'show', init.id])).json().children as string[];
      expect((await k(['--json', 'op', 'show', childId!])).json()).toMatchObject({
        kind: 'cluster.start',
        parent: init.id,
        status: 'done',
        args: { user: 'alice', name: 'rec' },
      });

      await startAgent('--mode', 'new');
      await eventually(async () => expect((await k(['--json', 'cluster', 'list'])).json()).toEqual([]));
      expect(await lxcLs()).toEqual([]);
    }, 60_000);
  });
});
