import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pickCheckImage } from '../../src/commands/doctor.js';
import { knarr } from '../harness/cli.js';
import { execa } from 'execa';
import { haveDockerd, startDockerd } from '../harness/dockerd.js';
import { tempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

describe('the image doctor starts its test container from', () => {
  it("is the install's, else a busybox, never another image (it may have no `true`)", () => {
    expect(pickCheckImage(['nginx:1', 'busybox:1.36', 'knarr/busybox:local'])).toBe('knarr/busybox:local');
    expect(pickCheckImage(['nginx:1', 'busybox:latest', 'my/busybox:2'])).toBe('busybox:latest');
    expect(pickCheckImage(['nginx:1', 'my/busybox:2'])).toBe('my/busybox:2');
    expect(pickCheckImage(['nginx:1', 'notbusybox:1', '<none>:<none>'])).toBeNull();
  });
});

describe('knarr doctor', () => {
  it('reports every prerequisite with its package, as JSON', async () => {
    const r = await knarr(['--json', 'doctor']);
    const names = r.json().checks.map((c: { name: string }) => c.name);
    expect(names).toEqual(expect.arrayContaining(['zfs', 'btrfs', 'lvm', 'lxc', 'docker', 'etcd', 'overlayfs', 'loop devices', 'cgroups']));
    for (const c of r.json().checks) expect(['ok', 'missing', 'warn']).toContain(c.status);
    expect(r.code).toBe(r.json().ok ? 0 : 5);
  });

  it('with nothing on PATH, reports tools missing and exits 5', async () => {
    const r = await knarr(['--json', 'doctor'], { env: { PATH: '/nonexistent', DOCKER_HOST: 'unix:///nonexistent.sock' } });
    expect(r.code).toBe(5);
    const byName = Object.fromEntries(r.json().checks.map((c: { name: string }) => [c.name, c]));
    expect(byName.etcd).toMatchObject({ status: 'missing', package: 'etcd-server' });
    expect(byName.zfs).toMatchObject({ status: 'missing', package: 'zfs-fuse' });
    expect(byName.docker).toMatchObject({ status: 'missing', package: 'docker.io' });
  });

  it('--dry-run --fix prints the apt-get commands it would run and installs nothing', async () => {
    const r = await knarr(['--dry-run', 'doctor', '--fix'], { env: { PATH: '/nonexistent', DOCKER_HOST: 'unix:///nonexistent.sock' } });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('apt-get update -q');
    expect(lines[1]).toMatch(/^apt-get install -y -q .*\bzfs-fuse\b.*\betcd-server\b/);
    expect(lines[1]).toMatch(/\bdocker\.io\b/);
    expect(lines[1]).toMatch(/\blxc\b/);
  });

  it('--fix installs every Debian package the CI installs for the test suite, so a fresh host runs every test', async () => {
    const ci = readFileSync(new URL('../../.ci/run', import.meta.url), 'utf8');
    const line = /apt-get install -y -q \\\n([^>]*)>/.exec(ci)?.[1] ?? '';
    const wanted = line.split(/\s+/).filter((w) => /^[a-z0-9][a-z0-9.+-]+$/.test(w));
    expect(wanted).toEqual(expect.arrayContaining(['openssh-server', 'zsh', 'fish', 'openssl', 'man-db']));
    const env = { PATH: '/nonexistent', DOCKER_HOST: 'unix:///nonexistent.sock' };
    const r = await knarr(['--dry-run', 'doctor', '--fix'], { env });
    const install = r.stdout.split('\n').find((l) => l.startsWith('apt-get install')) ?? '';
    // With no PATH every tool reads as missing; a package found by its files (bash-completion) is only installed when absent.
    const checks = (await knarr(['--json', 'doctor'], { env })).json().checks as { package: string | null; status: string }[];
    const present = checks.filter((c) => c.status === 'ok' && c.package).map((c) => c.package!);
    expect([...install.split(' '), ...present]).toEqual(expect.arrayContaining(wanted));
  });

  it.skipIf(!integration('doctor --fix with dockerd', haveTools('dockerd'), 'dockerd is not installed'))(
    '--fix starts a stopped dockerd rather than reinstalling its package',
    async () => {
      const socket = '/tmp/knarr-doctor-test-none.sock';
      const r = await knarr(['--dry-run', 'doctor', '--fix'], { env: { DOCKER_HOST: `unix://${socket}` } });
      expect(r.code).toBe(0);
      expect(r.stdout).not.toMatch(/apt-get install .*docker\.io/);
      expect(r.stdout).toMatch(new RegExp(`^(dockerd -H unix://${socket}|systemctl start docker)$`, 'm'));
    },
  );

  it.skipIf(!integration('doctor with a private dockerd', haveDockerd() && process.getuid?.() === 0, 'needs root, dockerd, docker and busybox-static'))(
    "reports a dockerd whose default bridge is gone (as a dockerd started with --bridge=none leaves the host's), with the hint to restart it",
    async () => {
      const tmp = await tempDir('knarr-doctor-');
      const d = await startDockerd(tmp.path);
      try {
        const docker = (r: { json(): { checks: { name: string; status: string; detail: string }[] } }) => r.json().checks.find((c) => c.name === 'docker')!;
        expect(docker(await knarr(['--json', 'doctor'], { env: d.env }))).toMatchObject({ status: 'ok' });
        const bridge = await d.docker('network', 'inspect', 'bridge', '--format', '{{index .Options "com.docker.network.bridge.name"}}');
        await execa('ip', ['link', 'del', bridge]);
        const r = await knarr(['--json', 'doctor'], { env: d.env });
        expect(r.code).toBe(5);
        expect(docker(r)).toMatchObject({ status: 'missing', detail: expect.stringMatching(new RegExp(`default bridge ${bridge} is gone.*restart dockerd`)) });
      } finally {
        await d.stop();
        await tmp.cleanup();
      }
    },
    120_000,
  );

  it.skipIf(!integration('doctor starts a container', haveDockerd() && process.getuid?.() === 0, 'needs root, dockerd, docker and busybox-static'))(
    'starts a test container on the default network: not ok when its bridge is no bridge or there is no image, and leaves no container behind',
    async () => {
      const tmp = await tempDir('knarr-doctor-');
      const d = await startDockerd(tmp.path);
      try {
        const docker = (r: { json(): { checks: { name: string; status: string; detail: string }[] } }) => r.json().checks.find((c) => c.name === 'docker')!;
        const good = await knarr(['--json', 'doctor'], { env: d.env });
        expect(docker(good)).toMatchObject({ status: 'ok', detail: expect.stringMatching(/test container started/) });
        expect(await d.docker('ps', '-aq')).toBe('');
        // The bridge's name is there, but as a device no container can be plugged into: dockerd still answers.
        const bridge = await d.docker('network', 'inspect', 'bridge', '--format', '{{index .Options "com.docker.network.bridge.name"}}');
        await execa('ip', ['link', 'del', bridge]);
        await execa('ip', ['link', 'add', bridge, 'type', 'veth', 'peer', 'name', `${bridge}p`]);
        const broken = await knarr(['--json', 'doctor'], { env: d.env });
        expect(broken.code).toBe(5);
        expect(docker(broken)).toMatchObject({ status: 'missing', detail: expect.stringMatching(/cannot start on the default network: .*restart dockerd/) });
        expect(await d.docker('ps', '-aq')).toBe('');
        await execa('ip', ['link', 'del', bridge]);
        await execa('ip', ['link', 'add', bridge, 'type', 'bridge']);
        await d.docker('rmi', d.image);
        const bare = await knarr(['--json', 'doctor'], { env: d.env });
        expect(bare.code).toBe(5);
        expect(docker(bare)).toMatchObject({ status: 'missing', detail: expect.stringMatching(/no busybox image .*never pulls.*doctor --fix/) });
        // --fix makes the image from busybox-static, and the container then starts.
        const fixed = await knarr(['--json', 'doctor', '--fix'], { env: d.env });
        expect(docker(fixed), fixed.stderr).toMatchObject({ status: 'ok' });
        expect(await d.docker('image', 'ls', '--format', '{{.Repository}}:{{.Tag}}')).toBe('knarr/busybox:local');
        // Each applet where busybox links it (tr in /usr/bin, httpd in /usr/sbin), found on the engine's PATH.
        const found = await d.docker(
          'run',
          '--rm',
          '--network',
          'none',
          'knarr/busybox:local',
          'sh',
          '-c',
          'for a in true tr wc httpd; do busybox which $a; done',
        );
        expect(found).toBe('/bin/true\n/usr/bin/tr\n/usr/bin/wc\n/usr/sbin/httpd');
      } finally {
        await d.stop();
        await tmp.cleanup();
      }
    },
    120_000,
  );
});
