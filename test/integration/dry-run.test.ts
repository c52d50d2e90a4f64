import { createHash } from 'node:crypto';
import { randomInt } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostname } from 'node:os';
import { PassThrough } from 'node:stream';
import { leafCommands } from '../../src/cli/commands-table.js';
import { createContext, loadConfig } from '../../src/cli/context.js';
import { AgentClient } from '../../src/commands/job/agent-client.js';
import { DryRunWriteError } from '../../src/core/errors.js';
import { DockerEngine } from '../../src/host/docker.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { fleetKeys } from '../../src/state/keys.js';
import { OpRepo } from '../../src/state/ops.js';
import { OpRunner } from '../../src/ops/runner.js';
import { pickNetwork } from '../harness/net.js';
import { knarr } from '../harness/cli.js';
import { startDockerd, haveDockerd, type Dockerd } from '../harness/dockerd.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';

describe('the command table says what each command does under --dry-run', () => {
  it('every leaf command is classified reads, plans or refuses', () => {
    const missing = leafCommands()
      .filter((l) => !['reads', 'plans', 'refuses'].includes(l.def.dryRun as string))
      .map((l) => l.path.join(' '));
    expect(missing, 'add dryRun to these commands in src/cli/commands-table.ts').toEqual([]);
  });
});

const run = integration(
  'dry-run',
  process.getuid?.() === 0 && haveTools('etcd', 'etcdctl', 'lxc-start', 'lxc-ls', 'busybox', 'ip') && haveDockerd() && (await zfsAnswers()),
  'needs root, etcd (etcd-server, etcd-client), lxc, busybox-static, docker.io and a zpool that answers (zfs-fuse)',
);

/** Every path under root with its type, mode, size and a hash of its content (a symlink's target). */
async function treeDigest(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const path = `${dir}/${name}`;
      const st = await lstat(path);
      const rel = path.slice(root.length);
      if (st.isDirectory()) {
        out.push(`${rel}/ ${st.mode.toString(8)}`);
        await walk(path);
      } else if (st.isSymbolicLink()) out.push(`${rel} -> ${await readlink(path)}`);
      else if (st.isFile())
        out.push(
          `${rel} ${st.mode.toString(8)} ${createHash('sha256')
            .update(await readFile(path))
            .digest('hex')
            .slice(0, 16)}`,
        );
      else out.push(`${rel} special ${st.mode.toString(8)}`);
    }
  };
  await walk(root);
  return out;
}

describe.skipIf(!run)('--dry-run changes nothing: every mutating command of the table, against real etcd, dockerd, LXC, zfs and the state directory', () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  let store: Store;
  let d: Dockerd;
  let env: Record<string, string>;
  let state: string;
  let lxcPath: string;
  let bridge: string;
  let pool: string;
  let queuedOp: string;
  let doneOp: string;
  let snapshot: string;
  let commit: string;
  let hubToken: string;
  const fleet = 'dryrun';
  const k = (argv: string[]) => knarr(argv, { env });
  const ok = async (argv: string[]) => {
    const r = await k(argv);
    expect(r.code, `knarr ${argv.join(' ')}: ${r.stderr}`).toBe(0);
    return r;
  };

  /** What the command must leave as it found it: etcd, the engine, LXC, zfs, mounts and the state directory. */
  const observe = async (): Promise<Record<string, unknown>> => ({
    etcd: (await store.list('/')).map((kv) => `${kv.key}=${kv.value}`),
    docker: (await d.docker('ps', '-a', '--no-trunc', '--format', '{{.ID}} {{.Names}} {{.State}} {{.Image}}')).split('\n').sort(),
    images: (await d.docker('images', '-q', '--no-trunc')).split('\n').sort(),
    lxc: (await execa('lxc-ls', ['-P', lxcPath, '-f', '-F', 'NAME,STATE'], { reject: false })).stdout,
    zfs: (await execa('zfs', ['list', '-t', 'all', '-H', '-o', 'name,mounted,mountpoint', '-r', pool])).stdout,
    mounts: (await readFile('/proc/self/mounts', 'utf8'))
      .split('\n')
      .filter((l) => l.includes(tmp.path))
      .sort(),
    links: (await execa('ip', ['-o', 'link', 'show'])).stdout
      .split('\n')
      .map((l) => l.split(':')[1]?.trim())
      .filter((n) => n?.startsWith(bridge)),
    state: await treeDigest(state),
  });

  beforeAll(async () => {
    tmp = await tempDir('knarr-dryrun-');
    state = `${tmp.path}/state`;
    lxcPath = `${state}/lxc`;
    pool = uniqueName('kdr');
    bridge = `kr${randomInt(36 ** 4)
      .toString(36)
      .padStart(4, '0')}`;
    [etcd, d] = await Promise.all([startEtcd(), startDockerd(`${tmp.path}/docker`)]);
    store = await connectEtcd([etcd.url]);
    const config = `${tmp.path}/config.yaml`;
    await writeFile(config, `pool:\n  name: ${pool}\netcdServer:\n  clientPort: ${await freePort()}\n  peerPort: ${await freePort()}\n`);
    env = {
      ...d.env,
      KNARR_STATE_DIR: state,
      KNARR_ETCD: etcd.url,
      KNARR_FLEET: fleet,
      KNARR_CONFIG: config,
      KNARR_CLUSTER_NETWORK: await pickNetwork(),
      KNARR_CLUSTER_BRIDGE: bridge,
      KNARR_USER: 'alice',
    };
    // Dots on zfs; cluster nodes and images on a dir pool (overlayfs refuses zfs-fuse as an upper layer).
    await ok(['pool', 'init', '--name', pool, '--loop-file', `${tmp.path}/pool.img`, '--size', '256M']);
    await ok(['pool', 'init', '--name', 'nodes', '--driver', 'dir']);
    await ok(['dot', 'init', 'd1']);
    const mountpoint = (await ok(['--json', 'dot', 'show', 'd1'])).json().path as string;
    await writeFile(`${mountpoint}/data.txt`, 'one\n');
    commit = (await ok(['--json', 'dot', 'commit', 'd1', '-m', 'first'])).json().id as string;
    await ok(['dot', 'branch', 'd1', 'dev']);
    await mkdir(`${tmp.path}/remote`);
    await ok(['dot', 'remote', 'add', 'origin', `file://${tmp.path}/remote`]);
    await ok(['dot', 'push', 'd1', 'origin']);
    await mkdir(`${tmp.path}/empty`);
    await ok(['dot', 'remote', 'add', 'empty', `file://${tmp.path}/empty`]);
    hubToken = (await ok(['--json', 'hub', 'token', 'create', 'alice', '--hub', `${tmp.path}/hub`])).json().id as string;
    // Drift for fsck --repair to mend: a dot whose commit record is gone from etcd.
    await ok(['dot', 'init', 'd5']);
    const drifted = (await ok(['--json', 'dot', 'commit', 'd5', '-m', 'lost'])).json().id as string;
    await store.delete(fleetKeys(fleet).hostDotCommit(hostname(), 'd5', drifted));
    await ok(['image', 'import', 'base', '--busybox']);
    await ok(['image', 'import', 'spare', '--busybox']);
    doneOp = (await ok(['--json', 'cluster', 'create', 'lab', '--size', '1'])).json().id as string;
    await ok(['job', 'run', '-d', '--name', 'web', '--network', 'none', d.image, '--', 'sleep', '3600']);
    // A host record, as an agent that stopped leaves it, and an operation queued for that host.
    const now = new Date().toISOString();
    await store.put(
      fleetKeys(fleet).host('h9'),
      JSON.stringify({
        name: 'h9',
        address: 'http://127.0.0.1:9',
        dockerEndpoint: 'unix:///nowhere',
        tags: ['a'],
        capacity: { cpu: 1000, memory: 1 << 30 },
        load: { runningJobs: 0, freeMemory: 1 << 30 },
        state: 'ok',
        joinedAt: now,
        updatedAt: now,
      }),
    );
    queuedOp = (await new OpRepo(store, fleet).submit('cluster.stop', { user: 'bob', name: 'gone' }, 'h9')).id;
    snapshot = `${tmp.path}/etcd.snapshot`;
    await execa('etcdctl', ['--endpoints', etcd.url, 'snapshot', 'save', snapshot], { env: { ETCDCTL_API: '3' } });
  }, 180_000);

  afterAll(async () => {
    for (const name of lxcPath ? (await execa('lxc-ls', ['-P', lxcPath, '-1'], { reject: false })).stdout.split('\n').filter(Boolean) : [])
      await execa('lxc-stop', ['-P', lxcPath, '-n', name, '-k'], { reject: false });
    if (env) await k(['dot', 'unmount', 'd1']).catch(() => undefined);
    await d?.stop();
    if (pool) await destroyPoolQuietly(pool);
    if (bridge) await execa('ip', ['link', 'del', bridge], { reject: false });
    await store?.close();
    await etcd?.stop();
    await tmp?.cleanup();
  }, 120_000);

  /** Commands about this host's own managed etcd, run without --etcd. */
  const LOCAL_ETCD = new Set(['etcd up', 'etcd down', 'etcd restore', 'etcd join']);

  /** Realistic arguments for each command that is not a plain read; a new mutating command needs a line here. */
  const argvOf = (): Record<string, string[][]> => ({
    'pool init': [
      ['--name', 'more', '--driver', 'dir'],
      ['--name', 'z2', '--loop-file', `${tmp.path}/z2.img`, '--size', '128M'],
    ],
    'pool destroy': [
      [pool, '--yes'],
      [pool, '--yes', '--force'],
      ['nodes', '--yes', '--force'],
    ],
    // The managed local etcd (not running here): --etcd must not point elsewhere for these.
    'etcd up': [[], ['--advertise', '127.0.0.1', '--name', 'dry']],
    'etcd down': [[]],
    // A join plans its certificates and the learner it would add; it reaches no member.
    'etcd join': [['https://127.0.0.1:2379', '--token', `knarr1.${'a'.repeat(64)}.${Buffer.alloc(32, 1).toString('base64url')}`, '--name', 'dry']],
    // The test's etcd is its only member: removing it is refused before anything is planned.
    'etcd remove': [['t']],
    'etcd backup': [[`${tmp.path}/backup.db`]],
    'etcd restore': [[snapshot, '--yes']],
    'etcd compact': [[]],
    'etcd defrag': [[], ['--disarm']],
    'dot init': [['d2'], ['d1.sub']],
    'dot commit': [['d1', '-m', 'again']],
    'dot branch': [['d1', 'exp']],
    'dot status': [['d1']],
    'dot diff': [['d1'], ['d1', commit], ['d1', commit, commit]],
    'dot checkout': [
      ['d1', 'dev'],
      ['d1', 'master'],
    ],
    'dot reset': [['d1', '--hard', commit, '--force']],
    'dot clone': [['d1', 'd3']],
    'dot mount': [['d1', `${tmp.path}/elsewhere`]],
    'dot unmount': [['d1']],
    'dot fsck': [['--repair']],
    'dot push': [
      ['d1', 'origin'],
      ['d1', 'empty'],
    ],
    'dot pull': [['origin/d1', '--as', 'd4'], ['origin/d1']],
    'dot remote add': [['backup', `file://${tmp.path}/backup`]],
    'dot remote rm': [['origin']],
    'hub token create': [['alice', '--write', '--hub', `${tmp.path}/hub`]],
    'hub token revoke': [[hubToken, '--hub', `${tmp.path}/hub`]],
    'hub gc': [['--older-than', '1s', '--hub', `${tmp.path}/hub`]],
    'dot receive': [['d1', '--record', JSON.stringify({ id: 'x' })]],
    'dot rm': [['d1', '--force']],
    'job run': [
      ['-d', '--name', 'web2', d.image, '--', 'sleep', '60'],
      ['--name', 'once', d.image, '--', 'true'],
    ],
    'job stop': [['web']],
    'job rm': [['web']],
    'job restart': [['web'], ['--all']],
    'host drain': [['h9']],
    'host tag': [
      ['h9', 'ssd'],
      ['h9', 'a', '--remove'],
    ],
    'host leave': [['h9']],
    // h9's agent is down: the evacuation is planned as queued for it.
    'host evacuate': [['h9', '--detach']],
    'host restore': [['h9']],
    'cluster create': [['lab2', '--size', '2']],
    'cluster plan': [['lab2', '--size', '3', '--pack', '--memory', '64M']],
    'cluster start': [['lab']],
    'cluster stop': [['lab']],
    'cluster delete': [['lab']],
    'cluster scale': [['lab', '--size', '2']],
    'cluster exec': [['lab', '0', '--', 'touch', '/root/x']],
    'cluster suspend': [['lab'], ['lab', 'host-0']],
    'cluster resume': [['lab']],
    'cluster reboot': [['lab', '0']],
    'cluster update': [
      ['lab', '--memory', '256M'],
      ['lab', '0', '--cpus', '0.5'],
    ],
    'cluster clone': [['lab', 'lab3']],
    // h9 has no agent up: refused before anything is planned (the plan itself is in cluster-migrate.test.ts).
    'cluster migrate': [['lab', '0', '--to', 'h9']],
    // No environment exists here: a create plans; the others are refused as not found, before anything is planned (env.test.ts plans them on a real one).
    'env create': [['shop']],
    'env add': [['shop', 'web']],
    'env remove': [['shop', 'shop-web-1']],
    'env start': [['shop']],
    'env stop': [['shop']],
    'env suspend': [['shop']],
    'env resume': [['shop']],
    'env destroy': [['shop']],
    'image import': [['img2', '--busybox']],
    'image rm': [['spare']],
    'image save': [['lab', '0', 'saved']],
    'op cancel': [[queuedOp]],
    'op gc': [[], ['--older-than', '1s']],
    events: [[], ['--kind', 'job', '--since', '1h', '-n', '5']],
    'op run': [[queuedOp]],
    daemon: [['--listen', `127.0.0.1:${9}`]],
    onboot: [['--storage-device', `${tmp.path}/boot.img`, '--pool', uniqueName('kdb'), '--dot', 'app', '--mountpoint', `${tmp.path}/boot`]],
    doctor: [['--fix']],
    // Reads: run once each, they must change nothing either.
    'pool status': [[pool]],
    'pool list': [[]],
    'etcd status': [[]],
    'etcd members': [[]],
    'dot list': [[]],
    'dot show': [['d1']],
    'dot log': [['d1']],
    'dot remote list': [[]],
    'hub token list': [['--hub', `${tmp.path}/hub`]],
    'hub list': [['--hub', `${tmp.path}/hub`]],
    'dot manifest': [['d1']],
    'dot send': [['d1', commit]],
    'job plan': [['--name', 'p', d.image, '--', 'true']],
    'job list': [[]],
    ps: [[]],
    'job show': [['web']],
    'job logs': [['web']],
    'job history': [['web']],
    'service list': [[]],
    'host list': [[]],
    'host show': [['h9']],
    'cluster list': [[]],
    'env list': [[]],
    'env show': [['shop']],
    'env events': [['shop']],
    'cluster show': [['lab']],
    'image list': [[]],
    'op list': [[]],
    'op show': [[queuedOp]],
    'op wait': [[doneOp]],
    completion: [['bash']],
    // Shell completion's hidden lookup.
    __complete: [['dot'], ['branch', 'd1'], ['node', 'lab'], ['pool'], ['op'], ['host'], ['docker-image']],
  });

  it('each command, with realistic arguments, leaves etcd, docker, LXC, zfs, mounts and the state directory as they were', async () => {
    const argv = argvOf();
    const leaves = leafCommands();
    const untested = leaves.filter((l) => l.def.dryRun !== 'reads' && !argv[l.path.join(' ')]).map((l) => l.path.join(' '));
    expect(untested, 'give these commands arguments in argvOf()').toEqual([]);
    let before = await observe();
    const failures: string[] = [];
    for (const leaf of leaves) {
      const path = leaf.path.join(' ');
      for (const args of argv[path] ?? []) {
        const r = await knarr(['--dry-run', ...leaf.path, ...args], { env: { ...env, ...(LOCAL_ETCD.has(path) ? { KNARR_ETCD: undefined } : {}) } });
        const shown = `knarr --dry-run ${path} ${args.join(' ')}`;
        if (leaf.def.dryRun === 'refuses') {
          if (r.code !== 2 || !/does not support --dry-run/.test(r.stderr))
            failures.push(`${shown}: should refuse --dry-run, exited ${r.code}: ${r.stderr.trim()}`);
        } else if ((leaf.def.dryRun === 'plans' && r.code === 1) || /internal error|tried to/.test(r.stderr))
          failures.push(`${shown}: exited ${r.code}: ${r.stderr.trim()}`);
        const after = await observe();
        for (const key of Object.keys(before)) {
          try {
            expect(after[key]).toEqual(before[key]);
          } catch (e) {
            failures.push(`${shown} changed ${key}:\n${(e as Error).message.slice(0, 1500)}`);
          }
        }
        // Each command is judged on its own: a change is reported once, by the command that made it.
        before = after;
      }
    }
    expect(failures).toEqual([]);
  }, 600_000);

  it('a planning command prints what it would do', async () => {
    const rm = await k(['--dry-run', 'job', 'rm', 'web']);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toMatch(/docker .* rm -f /);
    const stop = await k(['--dry-run', 'cluster', 'stop', 'lab']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toMatch(/^# queue operation cluster\.stop .*name=lab/m);
    expect(stop.stdout).toMatch(/^lxc-stop -P \S+ -n alice-\d+-0 /m);
    const del = await k(['--dry-run', 'cluster', 'delete', 'lab']);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toMatch(/^lxc-stop -P \S+ -n alice-\d+-0 -k$/m);
    expect(del.stdout).toMatch(/^rm -rf \S+\/lxc\/alice-\d+-0$/m);
    const suspend = await k(['--dry-run', 'cluster', 'suspend', 'lab', '0']);
    expect(suspend.stdout).toMatch(/^lxc-freeze -P \S+ -n alice-\d+-0$/m);
    const update = await k(['--dry-run', 'cluster', 'update', 'lab', '--memory', '256M']);
    expect(update.stdout).toMatch(/^lxc-cgroup -P \S+ -n alice-\d+-0 memory\.\S+ 268435456$/m);
    const clone = await k(['--dry-run', 'cluster', 'clone', 'lab', 'lab3']);
    expect(clone.stdout).toMatch(/^lxc-freeze -P \S+ -n alice-\d+-0$/m);
    expect(clone.stdout).toMatch(/^cp -a --reflink=auto \S+\/delta \S+\/knarr-clusters\/alice-ID-0\/delta$/m);
    const fsck = await k(['--dry-run', 'dot', 'fsck', '--repair']);
    expect(fsck.code, fsck.stderr).toBe(0);
    expect(fsck.stdout).toMatch(/^# repair d5 \(/m);
    const tag = await k(['--dry-run', 'host', 'tag', 'h9', 'ssd']);
    expect(tag.stdout).toMatch(/# set host h9's tags to a,ssd/);
  });
  it('under --dry-run the store, the Docker engine and an agent refuse every write: a handler that forgets to plan fails and changes nothing', async () => {
    const before = await observe();
    const config = await loadConfig({ dryRun: true }, env, tmp.path);
    const ctx = createContext(config, { stderr: new PassThrough(), stderrIsTTY: false, env, cwd: tmp.path, signal: new AbortController().signal });
    const guarded = await ctx.openStore();
    try {
      expect((await guarded.list(fleetKeys(fleet).clusters)).length).toBeGreaterThan(0);
      await expect(guarded.put(`/knarr/${fleet}/x`, 'y')).rejects.toBeInstanceOf(DryRunWriteError);
      await expect(guarded.delete(fleetKeys(fleet).host('h9'))).rejects.toBeInstanceOf(DryRunWriteError);
      await expect(guarded.createIfAbsent(`/knarr/${fleet}/x`, 'y')).rejects.toBeInstanceOf(DryRunWriteError);
      await expect(guarded.transact([], [{ key: `/knarr/${fleet}/x`, value: 'y' }], [])).rejects.toBeInstanceOf(DryRunWriteError);
      await expect(guarded.increment(`/knarr/${fleet}/x`)).rejects.toBeInstanceOf(DryRunWriteError);
      await expect(guarded.deletePrefix(`/knarr/${fleet}/`)).rejects.toBeInstanceOf(DryRunWriteError);
      await expect(guarded.grantLease(5)).rejects.toBeInstanceOf(DryRunWriteError);
    } finally {
      await guarded.close();
    }
    const engine = new DockerEngine(d.socket, ctx.runner.dryRun);
    expect((await engine.list(true)).length).toBeGreaterThan(0);
    await expect(engine.create('dry', { Image: d.image, Cmd: ['true'] })).rejects.toBeInstanceOf(DryRunWriteError);
    await expect(engine.remove('knarr-web')).rejects.toBeInstanceOf(DryRunWriteError);
    await expect(engine.attach('knarr-web', false)).rejects.toBeInstanceOf(DryRunWriteError);
    const h9 = JSON.parse((await store.get(fleetKeys(fleet).host('h9')))!);
    const agent = await AgentClient.connect({ ...ctx, config: { ...ctx.config, jobs: { ...ctx.config.jobs, agentToken: 't' } } }, h9);
    await expect(agent.converge()).rejects.toBeInstanceOf(DryRunWriteError);
    // An operation is planned, never run: even a runner handed a writable store refuses.
    await expect(
      new OpRunner(
        ctx,
        store,
        'h9',
        'dry',
        () => '0',
        () => undefined,
      ).execute(queuedOp),
    ).rejects.toBeInstanceOf(DryRunWriteError);
    expect(await observe()).toEqual(before);
  });
});
