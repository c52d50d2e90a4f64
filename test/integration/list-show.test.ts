import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterRecord } from '../../src/core/cluster.js';
import type { HostRecord } from '../../src/core/hosts.js';
import { parseJobSpec } from '../../src/core/job-spec.js';
import { newOp } from '../../src/core/ops.js';
import { hostId } from '../../src/host/identity.js';
import { ClusterRepo } from '../../src/state/clusters.js';
import { HostRepo } from '../../src/state/hosts.js';
import { JobRepo } from '../../src/state/jobs.js';
import { fleetKeys } from '../../src/state/keys.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('list and show', haveTools('etcd'), 'etcd is not installed (Debian package etcd-server)');

type Json = Record<string, unknown>;
const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** Every key a list item has, show has too, with a value of the same JSON type; the object's own name is `name` (an operation's, its `id`). */
function expectSameFields(noun: string, item: Json, shown: Json): void {
  const identity = noun === 'op' ? 'id' : 'name';
  expect(Object.keys(item), `${noun} list`).toContain(identity);
  expect(Object.keys(item), `${noun} list names the ${noun} "name"`).not.toContain(noun);
  expect(Object.keys(shown), `${noun} show names the ${noun} "name"`).not.toContain(noun);
  const missing = Object.keys(item).filter((k) => !(k in shown));
  expect(missing, `${noun} list fields that ${noun} show lacks`).toEqual([]);
  const differ = Object.keys(item).filter((k) => kind(item[k]) !== kind(shown[k]));
  expect(
    differ.map((k) => `${k}: ${kind(item[k])} in list, ${kind(shown[k])} in show`),
    `${noun} fields typed differently`,
  ).toEqual([]);
  expect(shown[identity]).toBe(item[identity]);
  if ('createdAt' in shown) expect(item.createdAt, `${noun} list keeps createdAt`).toBe(shown.createdAt);
}

/** `--json` of list and show (or status) of every noun name the same fields alike; op and dot show read as fields in table mode. */
describe.skipIf(!run)('list and show of every noun', () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  let store: Store;
  const k = (...argv: string[]) => knarr(['--etcd', etcd.url, '--state-dir', `${tmp.path}/state`, ...argv]);
  const json = async (...argv: string[]) => {
    const r = await k('--json', ...argv);
    expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
    return r.json();
  };
  const now = new Date().toISOString();

  beforeAll(async () => {
    tmp = await tempDir('knarr-list-show-');
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
    const host: HostRecord = {
      name: 'h1',
      address: 'http://127.0.0.1:1',
      dockerEndpoint: 'unix:///nonexistent.sock',
      tags: ['ssd'],
      capacity: { cpu: 2000, memory: 2 ** 30 },
      load: { runningJobs: 1, freeMemory: 2 ** 29 },
      state: 'ok',
      joinedAt: now,
      updatedAt: now,
    };
    await new HostRepo(store, 'default').put(host);
    const jobs = new JobRepo(store, 'default');
    const spec = parseJobSpec({ name: 'web', image: 'img', ports: ['18080:80'] }, 'test');
    await jobs.createIntent('web', { spec, host: 'h1', managed: true, createdAt: now });
    await jobs.putActual('web', { host: 'h1', container: 'c0ffee', state: 'running', startedAt: now, restarts: 2 });
    await jobs.putService({ name: 'web-18080', job: 'web', host: 'h1', address: '127.0.0.1', port: 18080, protocol: 'tcp' });
    const clusters = new ClusterRepo(store, 'default');
    const cluster: ClusterRecord = {
      id: 3,
      name: 'lab',
      user: 'alice',
      status: 'running',
      image: 'base',
      pool: 'p',
      host: 'h1',
      subnet: '10.20.0.0/24',
      memory: 0,
      cpu: 0,
      nodes: [{ index: 0, container: 'alice-3-0', hostname: 'host-0', ip: '10.20.0.2', host: 'h1', volume: 'v0' }],
      op: 'op-000001',
      createdAt: now,
      updatedAt: now,
    };
    await clusters.create(cluster);
    await clusters.putImage({ name: 'base', host: hostId(), pool: 'p', rootfs: '/nonexistent', source: 'busybox', createdAt: now });
    const op = {
      ...newOp(1, 'cluster.create', { user: 'alice', name: 'lab', size: 1, authorizedKeys: 'ssh-ed25519 AAAA a\n' }, 'h1'),
      status: 'done' as const,
    };
    await store.put(fleetKeys('default').op(op.id), JSON.stringify({ ...op, result: { id: 3, nodes: 1 }, state: { subnet: '10.20.0.0/24' } }));
    const save = newOp(2, 'image.save', { user: 'alice', name: 'lab', node: 0, image: 'snap', host: 'h1' }, 'h1');
    await store.put(fleetKeys('default').op(save.id), JSON.stringify(save));
    for (const argv of [
      ['pool', 'init', '--name', `ls${process.pid}`, '--driver', 'dir'],
      ['dot', 'init', 'site'],
      ['dot', 'commit', 'site', '-m', 'first'],
      ['dot', 'clone', 'site', 'copy'],
    ]) {
      const r = await k(...argv);
      expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
    }
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it.each([
    ['pool', ['pool', 'list'], (n: string) => ['pool', 'status', n]],
    ['dot', ['dot', 'list'], (n: string) => ['dot', 'show', n]],
    ['job', ['job', 'list'], (n: string) => ['job', 'show', n]],
    ['host', ['host', 'list'], (n: string) => ['host', 'show', n]],
    ['cluster', ['cluster', 'list'], (n: string) => ['cluster', 'show', n, '--user', 'alice']],
    ['op', ['op', 'list'], (_n: string, id: string) => ['op', 'show', id]],
  ] as const)('%s list and show give the same fields the same way', async (noun, listArgv, showArgv) => {
    const items = (await json(...listArgv)) as Json[];
    expect(items.length, `${noun} list is empty`).toBeGreaterThan(0);
    for (const item of items) expectSameFields(noun, item, await json(...showArgv(String(item.name), String(item.id))));
  });

  it('lists with no show name their objects "name" and keep createdAt', async () => {
    const images = (await json('image', 'list')) as Json[];
    expect(images).toEqual([expect.objectContaining({ name: 'base', createdAt: now })]);
    const services = (await json('service', 'list')) as Json[];
    expect(services).toEqual([expect.objectContaining({ name: 'web-18080', job: 'web' })]);
    // An external etcd's endpoints are URLs, as the managed etcd's are.
    const status = await json('etcd', 'status');
    expect(status.endpoints).toEqual([etcd.url]);
    expect(status.endpointHealth).toEqual([expect.objectContaining({ endpoint: etcd.url, healthy: true })]);
  });

  it('op list says what each operation acts on', async () => {
    const r = await k('op', 'list');
    expect(r.code, r.stderr).toBe(0);
    const [head, ...rows] = r.stdout.trimEnd().split('\n');
    expect(head).toMatch(/\bTARGET\b/);
    expect(rows.find((l) => l.startsWith('op-000001'))).toContain('cluster alice/lab');
    expect(rows.find((l) => l.startsWith('op-000002'))).toContain('image snap (from alice/lab node 0)');
  });

  it('op show reads as fields, not JSON; --json is the record as stored', async () => {
    const r = await k('op', 'show', 'op-000001');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/^\s*[{}"]/m);
    const fields = Object.fromEntries(
      r.stdout
        .trimEnd()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
    );
    expect(fields).toMatchObject({ op: 'op-000001', kind: 'cluster.create', target: 'cluster alice/lab', status: 'done', host: 'h1', result: 'id=3 nodes=1' });
    expect(fields.args).toBe('user=alice name=lab size=1 authorizedKeys=1 key(s)');
    expect(fields.state).toBe('subnet=10.20.0.0/24');
    const whole = await json('op', 'show', 'op-000001');
    expect(whole).toMatchObject({ id: 'op-000001', args: { authorizedKeys: 'ssh-ed25519 AAAA a\n' }, result: { id: 3, nodes: 1 } });
  });

  it('dot show reads as fields, its origin in words', async () => {
    const r = await k('dot', 'show', 'copy');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/[{}]/);
    const head = (await json('dot', 'show', 'site')).head as string;
    expect(r.stdout).toMatch(new RegExp(`^origin: +site at ${head.slice(0, 12)}$`, 'm'));
  });
});
