import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveDockerd, startDockerd, type Dockerd } from '../harness/dockerd.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { integration } from '../harness/tools.js';

const root = new URL('../../', import.meta.url).pathname;
const install = readFileSync(`${root}scripts/install.sh`, 'utf8');
/** The install's last part: the local busybox image, its tags and the first job. */
const imageStep = install.slice(install.indexOf('# A first job on the local dockerd'));

const run = integration(
  'the install makes busybox',
  process.getuid?.() === 0 && haveDockerd(),
  'needs root, dockerd, docker and busybox-static (docker.io, busybox-static)',
);

describe.skipIf(!run)("scripts/install.sh's image step on a private dockerd", () => {
  let tmp: TempDir;
  let d: Dockerd;
  const step = () =>
    execa('bash', ['-c', `set -euo pipefail\n${imageStep}`], {
      env: { ...process.env, ...d.env, PATH: `${root}bin:${process.env.PATH}`, KNARR_STATE_DIR: `${tmp.path}/state` },
      reject: false,
    });
  const imageId = async (name: string) =>
    (await execa('docker', ['-H', `unix://${d.socket}`, 'image', 'inspect', '-f', '{{.Id}}', name], { reject: false })).stdout;

  beforeAll(async () => {
    tmp = await tempDir('knarr-install-');
    d = await startDockerd(`${tmp.path}/docker`);
  }, 120_000);
  afterAll(async () => {
    await d?.stop();
    await tmp?.cleanup();
  }, 60_000);

  it('builds knarr/busybox:local, tags it busybox, and the printed pipeline runs on it; a re-run changes nothing', async () => {
    expect(imageStep).toContain('docker tag');
    const first = await step();
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/\n6$/);
    const local = await imageId('knarr/busybox:local');
    expect(local).not.toBe('');
    expect(await imageId('busybox')).toBe(local);
    // The README's daemonized job needs httpd and the tour's pipeline tr and wc in the image.
    const applets = await d.docker('run', '--rm', 'busybox', 'ls', '/bin');
    for (const applet of ['sh', 'tr', 'wc', 'httpd']) expect(applets.split('\n'), applet).toContain(applet);
    const again = await step();
    expect(again.exitCode, again.stderr).toBe(0);
    expect(await imageId('busybox')).toBe(local);
  }, 180_000);

  it('leaves a busybox image the engine already has alone', async () => {
    await d.docker('rmi', 'busybox:latest');
    await d.docker('tag', d.image, 'busybox:latest');
    const theirs = await imageId('busybox');
    const r = await step();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await imageId('busybox')).toBe(theirs);
    expect(theirs).not.toBe(await imageId('knarr/busybox:local'));
  }, 180_000);
});
