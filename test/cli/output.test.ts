import { readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostRecord } from '../../src/core/hosts.js';
import { newOp } from '../../src/core/ops.js';
import { shellCommand } from '../../src/core/shell.js';
import { HostRepo } from '../../src/state/hosts.js';
import { fleetKeys } from '../../src/state/keys.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const bin = new URL('../../bin/knarr', import.meta.url).pathname;
const minute = 60_000;
const day = 86_400_000;
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

let tmp: TempDir;
let state: string;
beforeAll(async () => {
  tmp = await tempDir('knarr-output-');
  state = `${tmp.path}/state`;
});
afterAll(() => tmp?.cleanup());

/** The test's environment without knarr's own settings or a COLUMNS, plus env. */
const environment = (env: Record<string, string>) => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KNARR_') && k !== 'COLUMNS')),
  ...env,
});

/** bin/knarr as a script runs it: stdout a pipe, no terminal. */
const knarr = (args: string[], env: Record<string, string> = {}) => execa(bin, args, { reject: false, env: environment(env), extendEnv: false });

/** bin/knarr with stdout on a terminal (a pty that script(1) makes, whose size is 0x0 when ours is no terminal). */
const onTerminal = (args: string[], env: Record<string, string> = {}) =>
  execa('script', ['-qec', shellCommand([bin, ...args]), '/dev/null'], { reject: false, env: environment(env), extendEnv: false });

describe('help', () => {
  for (const words of [['help'], ['help', 'pool'], ['help', 'pool', 'init'], ['pool', 'help', 'init']]) {
    it(`knarr ${words.join(' ')} prints the help on stdout and exits 0`, async () => {
      const r = await knarr(words);
      expect(r.exitCode, r.stderr).toBe(0);
      const usage = words.filter((w) => w !== 'help').join(' ');
      expect(r.stdout).toMatch(new RegExp(`^Usage: knarr ${usage}${usage ? ' ' : ''}\\[options\\]`));
      expect(r.stderr).toBe('');
    });
  }

  it('help lists allowed values where an option or argument has them, and every alias', async () => {
    expect((await knarr(['--help'])).stdout).toMatch(/^ {2}-o, --output table\|json\|yaml\|wide {2}/m);
    expect((await knarr(['pool', 'init', '--help'])).stdout).toMatch(/^ {2}--driver zfs\|btrfs\|lvm\|dir {2}/m);
    expect((await knarr(['completion', '--help'])).stdout).toMatch(/^ {2}shell bash\|zsh\|fish {2}/m);
    expect((await knarr(['job', '--help'])).stdout).toMatch(/^ {2}list\|ls\|ps {2,}daemonized jobs/m);
    expect((await knarr(['pool', '--help'])).stdout).toMatch(/^ {2}list\|ls {2,}pools on this host/m);
    expect((await knarr(['pool', '--help'])).stdout).toMatch(/^ {2}destroy\|rm \[options\] <pool> {2,}destroy a pool/m);
  });
});

describe('an unknown subcommand is unknown, with --help too', () => {
  const cases: [string[], RegExp][] = [
    [['dot', 'nosuch', '--help'], /^knarr: unknown command 'nosuch'\n  hint: add --help for usage$/m],
    [['help', 'dot', 'nosuch'], /^knarr: unknown command 'nosuch'$/m],
    [['pool', 'lst', '--help'], /^knarr: unknown command 'lst'\n  hint: did you mean one of list, ls\?$/m],
    [['-h', 'pool', 'inti'], /^knarr: unknown command 'inti'\n  hint: did you mean init\?$/m],
    [['nosuch', '--help'], /^knarr: unknown command 'nosuch'$/m],
    [['dot', 'remote', 'lst', '--help'], /^knarr: unknown command 'lst'\n  hint: did you mean one of list, ls\?$/m],
    [['--state-dir', '/tmp', 'pool', 'stauts', '-h'], /^knarr: unknown command 'stauts'\n  hint: did you mean status\?$/m],
  ];
  for (const [argv, message] of cases) {
    it(`knarr ${argv.join(' ')}: exit 2, says so, no help on stdout`, async () => {
      const r = await knarr(argv);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
    });
  }
});

describe('pool tables', () => {
  const long = 'a-pool-with-a-rather-long-name';
  let mountpoint: string;
  beforeAll(async () => {
    mountpoint = `${tmp.path}/a/directory/deep/enough/to/make/the/table/wider/than/eighty/columns`;
    for (const [name, path] of [
      ['p1', `${tmp.path}/p1`],
      [long, mountpoint],
    ]) {
      const r = await knarr(['--state-dir', state, 'pool', 'init', '--name', name!, '--driver', 'dir', '--path', path!]);
      expect(r.exitCode, r.stderr).toBe(0);
    }
    // p1 was made three days ago, as far as its record tells.
    const record = `${state}/pools/p1.json`;
    writeFileSync(record, JSON.stringify({ ...JSON.parse(readFileSync(record, 'utf8')), createdAt: ago(3 * day + minute) }));
  });

  it('ls is list; a pipe gets whole values and no wide columns', async () => {
    const r = await knarr(['--state-dir', state, 'pool', 'ls'], { COLUMNS: '40' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^NAME +DRIVER +HEALTH +SIZE +USED +FREE +MOUNTPOINT$/);
    expect(r.stdout).toContain(mountpoint);
    expect(r.stdout).not.toContain('…');
  });

  it('-o wide adds the sources and the creation time, relative; JSON and YAML keep ISO 8601', async () => {
    const wide = await knarr(['--state-dir', state, '-o', 'wide', 'pool', 'list']);
    expect(wide.stdout.split('\n')[0]).toMatch(/ MOUNTPOINT +SOURCES +CREATED$/);
    expect(wide.stdout).toMatch(/^p1 .* directory +3d ago$/m);
    expect(wide.stdout).toMatch(new RegExp(`^${long} .* directory +(now|\\d+s ago)$`, 'm'));
    const status = await knarr(['--state-dir', state, 'pool', 'status', 'p1']);
    expect(status.stdout).toMatch(/^created: +3d ago \(\d{4}-\d\d-\d\dT[\d:.]+Z\)$/m);
    const json = await knarr(['--state-dir', state, '--json', 'pool', 'status', 'p1']);
    expect(JSON.parse(json.stdout).createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    const yaml = await knarr(['--state-dir', state, '-o', 'yaml', 'pool', 'status', 'p1']);
    expect(yaml.stdout).toMatch(/^createdAt: \d{4}-\d\d-\d\dT/m);
  });

  it('rm is pool destroy: it asks for --yes as destroy does, then destroys', async () => {
    await knarr(['--state-dir', state, 'pool', 'init', '--name', 'gone', '--driver', 'dir', '--path', `${tmp.path}/gone`]);
    const refused = await knarr(['--state-dir', state, 'pool', 'rm', 'gone']);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(/^knarr: destroying pool gone deletes all its data; pass --yes to confirm$/m);
    expect((await knarr(['--state-dir', state, 'pool', 'rm', 'gone', '--yes'])).exitCode).toBe(0);
    expect((await knarr(['--state-dir', state, 'pool', 'list'])).stdout).not.toMatch(/^gone /m);
  });

  it('--no-headers and KNARR_HEADERS=0 print the rows only', async () => {
    for (const r of [
      await knarr(['--state-dir', state, '--no-headers', 'pool', 'list']),
      await knarr(['--state-dir', state, 'pool', 'list'], { KNARR_HEADERS: '0' }),
    ]) {
      expect(r.exitCode, r.stderr).toBe(0);
      expect(
        r.stdout
          .trimEnd()
          .split('\n')
          .map((l) => l.split(/ +/)[0]),
      ).toEqual([long, 'p1']);
    }
  });

  it('on a terminal of COLUMNS, the widest columns shrink with an ellipsis; the name column stays whole', async () => {
    const r = await onTerminal(['--state-dir', state, '-o', 'wide', 'pool', 'list'], { COLUMNS: '100' });
    expect(r.exitCode, r.stdout).toBe(0);
    const lines = r.stdout.replace(/\r/g, '').trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(100);
    expect(lines[1]).toMatch(new RegExp(`^${long} +dir +ONLINE .*…`));
    expect(lines[0]).toMatch(/ SOURCES +CREATED$/);
  });

  it('a terminal of 0 columns cuts nothing, a tiny one cuts down to the floors; neither fails', async () => {
    const zero = await onTerminal(['--state-dir', state, 'pool', 'list']);
    expect(zero.exitCode, zero.stdout).toBe(0);
    expect(zero.stdout).toContain(mountpoint);
    const tiny = await onTerminal(['--state-dir', state, 'pool', 'list'], { COLUMNS: '3' });
    expect(tiny.exitCode, tiny.stdout).toBe(0);
    expect(tiny.stdout).toMatch(new RegExp(`^${long} +dir +ONLINE +\\S+ +\\S+ +\\S+ +\\S{9}…\\r?$`, 'm'));
  });
});

const etcdReady = integration('output', haveTools('etcd'), 'etcd is not installed (Debian package etcd-server)');

/** Lists read from the fleet store show times relative, and -o wide their extra columns. */
describe.skipIf(!etcdReady)('times and wide columns of fleet lists', () => {
  let etcd: EtcdInstance;
  let store: Store;
  const fleet = 'output';
  const at = (args: string[]) => knarr(['--etcd', etcd.url, '--fleet', fleet, '--state-dir', state, ...args]);
  beforeAll(async () => {
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
    const keys = fleetKeys(fleet);
    const op = { ...newOp(7, 'cluster.create', { user: 'u', name: 'lab' }, 'h1'), createdAt: ago(5 * minute + 5000) };
    await store.put(keys.op(op.id), JSON.stringify(op));
    const child = { ...newOp(8, 'cluster.create', {}, 'h1'), parent: op.id, status: 'done', createdAt: ago(2 * day + 10), finishedAt: ago(2 * minute) };
    await store.put(keys.op(child.id), JSON.stringify(child));
    const line = ago(3 * 3_600_000 + minute);
    await store.put(`${keys.jobHistory('web')}${line}-1-0`, JSON.stringify({ at: line, host: 'h1', event: 'placed' }));
    const host: HostRecord = {
      name: 'h1',
      address: 'http://10.0.0.1:7946',
      dockerEndpoint: 'unix:///run/docker.sock',
      tags: [],
      capacity: { cpu: 2000, memory: 2 ** 30 },
      load: { runningJobs: 0, freeMemory: 2 ** 29 },
      state: 'active',
      joinedAt: ago(4 * day),
      updatedAt: ago(30_000),
    };
    await new HostRepo(store, fleet).put(host);
  });
  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
  });

  it('op list: CREATED relative; -o wide adds PARENT and FINISHED; JSON keeps ISO', async () => {
    const r = await at(['op', 'ls']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^op-000007 .* 5m ago$/m);
    expect(r.stdout).toMatch(/^op-000008 .* 2d ago$/m);
    const wide = await at(['-o', 'wide', 'op', 'list']);
    expect(wide.stdout).toMatch(/^op-000008 .* 2d ago +op-000007 +2m ago$/m);
    expect(wide.stdout).toMatch(/^op-000007 .* 5m ago +- +-$/m);
    const json = JSON.parse((await at(['--json', 'op', 'list'])).stdout) as { id: string; createdAt: string }[];
    expect(json.find((o) => o.id === 'op-000007')?.createdAt).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);
  });

  it('ps is job list, under job and at the top', async () => {
    const r = await at(['job', 'ps']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^JOB +HOST +STATE +IMAGE +PORTS$/);
    const top = await at(['ps']);
    expect(top.exitCode, top.stderr).toBe(0);
    expect(top.stdout).toBe((await at(['job', 'list'])).stdout);
  });

  it('job history: TIME relative', async () => {
    const r = await at(['job', 'history', 'web']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^3h ago +h1 +placed/m);
  });

  it('host list and show: JOINED and UPDATED relative under -o wide; joined in show', async () => {
    const list = await at(['host', 'ls']);
    expect(list.exitCode, list.stderr).toBe(0);
    expect(list.stdout.split('\n')[0]).not.toContain('JOINED');
    const wide = await at(['-o', 'wide', 'host', 'list']);
    expect(wide.stdout).toMatch(/^h1 +down .* 2000m cpu, 1G +unix:\/\/\/run\/docker\.sock +4d ago +(now|\d+s ago)$/m);
    const show = await at(['host', 'show', 'h1']);
    expect(show.stdout).toMatch(/^joined: +4d ago \(\d{4}-\d\d-\d\dT[\d:.]+Z\)$/m);
  });
});
