import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pickNetwork } from '../harness/net.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { destroyPoolQuietly, zfsAnswers } from '../harness/zfs.js';

const root = new URL('../../', import.meta.url).pathname;
const TOUR = '## A ten-minute tour';

/** The ```sh blocks of the README's tour, in order: what a newcomer pastes. */
function tourBlocks(readme: string): string[] {
  const start = readme.indexOf(`\n${TOUR}\n`);
  if (start < 0) return [];
  const end = readme.indexOf('\n## ', start + TOUR.length + 2);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

const blocks = tourBlocks(readFileSync(`${root}README.md`, 'utf8'));
/** Why the system dockerd cannot run the tour's images, or null when it can. */
async function systemImageMissing(name: string): Promise<string | null> {
  const r = await execa('docker', ['image', 'inspect', name], { reject: false }).catch(() => null);
  if (r?.exitCode === 0) return null;
  if (/cannot connect|daemon running/i.test(r?.stderr ?? '')) return 'the system dockerd does not answer: run scripts/install.sh, which starts it';
  return `the system dockerd has no image ${name}: run scripts/install.sh, which builds it and tags it ${name}`;
}
const imageMissing = await systemImageMissing('busybox');
const run =
  integration(
    'README tour',
    process.getuid?.() === 0 && haveTools('zpool', 'etcd', 'lxc-start', 'lxc-attach', 'docker', 'busybox', 'ip') && (await zfsAnswers()),
    'needs root, zfs-fuse, etcd, lxc, docker and busybox-static (run scripts/install.sh)',
  ) && integration('README tour on the system dockerd', imageMissing === null, imageMissing ?? '');

describe('the README tour', () => {
  it('has the blocks a newcomer pastes, each a line of commands', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(6);
    const tour = blocks.join('');
    for (const step of [
      'dot commit',
      'dot clone',
      'dot log',
      'job run -i',
      'job logs',
      'knarr daemon',
      'host list',
      'cluster create',
      'cluster exec',
      'op list',
      'events',
    ]) {
      expect(tour, step).toContain(step);
    }
  });
});

describe.skipIf(!run)('the README tour, as printed, on real components (zfs-fuse, etcd, the system dockerd, LXC)', () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  let env: Record<string, string>;
  const pool = uniqueName('kt');
  const bridge = `kt${randomInt(36 ** 4)
    .toString(36)
    .padStart(4, '0')}`;
  let out = '';
  let stdout = '';
  const block = (i: number, text = stdout) => text.split(`@@ block ${i}\n`)[1]?.split('@@ block ')[0] ?? '';
  const find = (needle: string) => blocks.findIndex((b) => b.includes(needle));

  beforeAll(async () => {
    tmp = await tempDir('knarr-tour-');
    etcd = await startEtcd();
    // Everything the tour makes goes to a private state, etcd, fleet, pool, bridge and agent port; the printed commands stay as they are.
    // A config file of its own, so a host's /etc/knarr/config.yaml does not leak into the tour.
    writeFileSync(`${tmp.path}/config.yaml`, '# the README tour: defaults only\n');
    env = {
      KNARR_CONFIG: `${tmp.path}/config.yaml`,
      PATH: `${root}bin:${process.env.PATH}`,
      TMPDIR: tmp.path,
      KNARR_STATE_DIR: `${tmp.path}/state`,
      KNARR_ETCD: etcd.url,
      KNARR_FLEET: uniqueName('tour'),
      KNARR_POOL_NAME: pool,
      KNARR_POOL_SIZE: '512M',
      KNARR_CLUSTER_BRIDGE: bridge,
      KNARR_CLUSTER_NETWORK: await pickNetwork(),
      KNARR_DAEMON_LISTEN: `127.0.0.1:${await freePort()}`,
    };
    const init = await execa('knarr', ['pool', 'init'], { env: { ...process.env, ...env }, reject: false });
    expect(init.exitCode, init.stderr).toBe(0);
  }, 120_000);

  afterAll(async () => {
    // What the tour's own clean-up did not reach when it failed half-way.
    const state = `${tmp?.path}/state`;
    if (existsSync(`${state}/agent.json`)) {
      const pid = JSON.parse(readFileSync(`${state}/agent.json`, 'utf8')).pid as number;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await execa('docker', ['rm', '-f', 'knarr-web', 'knarr-shop-web-1', 'knarr-shop-web-2'], { reject: false });
    const lxc = (await execa('lxc-ls', ['-P', `${state}/lxc`, '-1'], { reject: false })).stdout.split('\n').filter(Boolean);
    for (const name of lxc) await execa('lxc-stop', ['-P', `${state}/lxc`, '-n', name, '-k'], { reject: false });
    await execa('ip', ['link', 'del', bridge], { reject: false });
    for (const rule of ['-i', '-o']) {
      for (let i = 0; i < 3; i++) {
        const r = await execa('iptables', ['-w', '-D', 'DOCKER-USER', rule, bridge, '-m', 'comment', '--comment', `knarr bridge ${bridge}`, '-j', 'ACCEPT'], {
          reject: false,
        });
        if (r.exitCode !== 0) break;
      }
    }
    const mounts = readFileSync('/proc/mounts', 'utf8').split('\n');
    for (const m of mounts
      .map((l) => l.split(' ')[1] ?? '')
      .filter((p) => tmp && p.startsWith(tmp.path))
      .reverse()) {
      await execa('umount', ['-l', m], { reject: false });
    }
    await destroyPoolQuietly(pool);
    await etcd?.stop();
    await tmp?.cleanup();
  }, 120_000);

  it('runs every block in one shell, and shows what the README says', async () => {
    // A marker between blocks, so each block's output can be looked at alone.
    const script = ['set -eo pipefail', ...blocks.flatMap((b, i) => [`echo '@@ block ${i}'`, b])].join('\n');
    const r = await execa('bash', ['-c', script], { env: { ...process.env, ...env }, cwd: tmp.path, reject: false, timeout: 300_000, all: true });
    out = r.all ?? '';
    stdout = r.stdout;
    expect(r.exitCode, out).toBe(0);

    // The clone holds the file.
    expect(block(find('dot clone'))).toContain('hello from a dot\n');
    // hi -> HI -> 3 bytes.
    expect(block(find('job run -i'))).toBe('3\n');
    // The daemonized job answers on its port, and its logs (httpd logs to stderr) show the request.
    const web = block(find('--name web'), out);
    expect(web).toContain('hello from web\n');
    expect(web).toMatch(/response:200/);
    expect(web).toMatch(/^web\s.*\brunning\b.*\b8080:80\b/m);
    // The second web brought the balancer before itself; through the service, each web answers in turn.
    const shop = block(find('env create shop'));
    expect(shop).toMatch(/^shop-web-1\s.*\brunning\nshop-balancer-1\s.*\brunning\nshop-web-2\s.*\brunning$/m);
    const hostnames = shop.trim().split('\n').slice(-2);
    expect(hostnames[0]).toMatch(/^[0-9a-f]{12}$/);
    expect(hostnames[1]).toMatch(/^[0-9a-f]{12}$/);
    expect(hostnames[0]).not.toBe(hostnames[1]);
    // The agent registers the host: up.
    expect(block(find('host list'))).toMatch(/^\S+ +up\b/m);
    // Three nodes, each with its hostname, and every node in /etc/hosts.
    const cluster = block(find('cluster create'));
    expect(cluster).toContain('host-0\n');
    for (const n of [0, 1, 2]) expect(cluster).toMatch(new RegExp(`^10\\.\\d+\\.\\d+\\.\\d+ host-${n} host-${n}\\.lab$`, 'm'));
    expect(block(find('op list'))).toMatch(/cluster\.create\b.*\bdone\b/);
    // The operation's steps are events of the fleet.
    expect(block(find('op list'))).toMatch(/^(now|\d+[smhd] ago) +op +op-\d+ +\S+ +done +cluster\.create$/m);

    // The clean-up left nothing: no agent, no container, no LXC node, no bridge, no dot.
    const state = `${tmp.path}/state`;
    expect(existsSync(`${state}/agent.json`)).toBe(false);
    expect((await execa('docker', ['ps', '-a', '-q', '--filter', 'name=^knarr-web$'])).stdout).toBe('');
    expect((await execa('docker', ['ps', '-a', '-q', '--filter', 'name=^knarr-shop-'])).stdout).toBe('');
    expect((await execa('lxc-ls', ['-P', `${state}/lxc`, '-1'], { reject: false })).stdout).toBe('');
    expect((await execa('ip', ['link', 'show', bridge], { reject: false })).exitCode).not.toBe(0);
    const dots = await execa('knarr', ['--json', 'dot', 'list'], { env: { ...process.env, ...env } });
    expect(JSON.parse(dots.stdout)).toEqual([]);
  }, 360_000);

  it("the clone's log shows the commit it was cloned from", () => {
    expect(block(find('dot clone'))).toMatch(/^[0-9a-z]{8,}\s.*\bfirst page\s*$/m);
  });
});
