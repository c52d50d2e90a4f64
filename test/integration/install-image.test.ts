import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveDockerd, startDockerd, type Dockerd } from '../harness/dockerd.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { integration } from '../harness/tools.js';

const root = new URL('../../', import.meta.url).pathname;
const install = readFileSync(`${root}scripts/install.sh`, 'utf8');
/** The install's last part: the busybox tag and the first job. */
const imageStep = install.slice(install.indexOf('# A first job on the local dockerd'));
/** The install's doctor line, which makes the image that step tags. */
const doctorLine = install.split('\n').find((l) => l.startsWith('knarr doctor --fix'));
/** What the README's jobs run in the image. */
const APPLETS = ['sh', 'cat', 'tr', 'wc', 'echo', 'true', 'sleep', 'head', 'ls', 'env', 'hostname', 'httpd', 'wget', 'nc'];

const run = integration(
  'the install makes busybox',
  process.getuid?.() === 0 && haveDockerd(),
  'needs root, dockerd, docker and busybox-static (docker.io, busybox-static)',
);

describe.skipIf(!run)("scripts/install.sh's image step on a private dockerd", () => {
  let tmp: TempDir;
  let d: Dockerd;
  const step = () =>
    execa('bash', ['-c', `set -euo pipefail\n${doctorLine}\n${imageStep}`], {
      env: { ...process.env, ...d.env, PATH: `${root}bin:${process.env.PATH}`, KNARR_STATE_DIR: `${tmp.path}/state` },
      reject: false,
    });
  const imageId = async (name: string) =>
    (await execa('docker', ['-H', `unix://${d.socket}`, 'image', 'inspect', '-f', '{{.Id}}', name], { reject: false })).stdout;

  beforeAll(async () => {
    tmp = await tempDir('knarr-install-');
    d = await startDockerd(`${tmp.path}/docker`);
    // A fresh engine has no busybox image: the harness's is kept under a name doctor does not take for one.
    await d.docker('tag', d.image, 'spare:1');
    await d.docker('rmi', d.image);
  }, 120_000);
  afterAll(async () => {
    await d?.stop();
    await tmp?.cleanup();
  }, 60_000);

  it('doctor --fix imports knarr/busybox:local, the step tags it busybox, and the printed pipeline runs on it; a re-run changes nothing', async () => {
    expect(doctorLine).toBeDefined();
    expect(install.indexOf(doctorLine!)).toBeLessThan(install.indexOf(imageStep));
    expect(imageStep).toContain('docker tag');
    const first = await step();
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/\n6$/);
    const local = await imageId('knarr/busybox:local');
    expect(local).not.toBe('');
    expect(await imageId('busybox')).toBe(local);
    // The README's daemonized job needs httpd and the tour's pipeline tr and wc in the image, on the engine's PATH.
    const found = await d.docker(
      'run',
      '--rm',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      `for a in ${APPLETS.join(' ')}; do busybox which $a || echo "no $a"; done`,
    );
    expect(found).not.toMatch(/^no /m);
    expect(found.split('\n')).toHaveLength(APPLETS.length);
    const again = await step();
    expect(again.exitCode, again.stderr).toBe(0);
    expect(await imageId('busybox')).toBe(local);
  }, 180_000);

  it('leaves a busybox image the engine already has alone', async () => {
    await d.docker('rmi', 'busybox:latest');
    await d.docker('tag', 'spare:1', 'busybox:latest');
    const theirs = await imageId('busybox');
    const r = await step();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await imageId('busybox')).toBe(theirs);
    expect(theirs).not.toBe(await imageId('knarr/busybox:local'));
  }, 180_000);

  it('an engine with only another busybox-named image gets ours too, tagged busybox, for the examples', async () => {
    // Whatever the tests before left: no busybox:latest, no image of ours.
    for (const image of ['busybox:latest', 'knarr/busybox:local']) await d.docker('rmi', image).catch(() => undefined);
    await d.docker('tag', 'spare:1', 'foo/busybox:1');
    const r = await step();
    expect(r.exitCode, r.stderr).toBe(0);
    const ours = await imageId('knarr/busybox:local');
    expect(ours).not.toBe('');
    expect(await imageId('busybox')).toBe(ours);
    expect(await imageId('foo/busybox:1')).toBe(await imageId('spare:1'));
  }, 180_000);
});
