import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { haveNetns, makeFabric, type Fabric, type NetHost } from '../harness/netns.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { integration } from '../harness/tools.js';

const run = integration('netns', haveNetns(), 'needs root and ip (iproute2), nsenter, dockerd, docker and busybox-static');

describe.skipIf(!run)('a fabric of simulated hosts: one netns, one IP and one dockerd each', () => {
  let tmp: TempDir;
  let fabric: Fabric;
  let a: NetHost;
  let b: NetHost;
  let etcd: EtcdInstance;
  const names = async () => ({ links: (await execa('ip', ['-o', 'link', 'show'])).stdout, netns: (await execa('ip', ['netns', 'list'])).stdout });

  beforeAll(async () => {
    tmp = await tempDir('knarr-netns-');
    fabric = await makeFabric(tmp.path);
    [a, b] = await Promise.all([fabric.addHost('a'), fabric.addHost('b')]);
    etcd = await startEtcd(fabric.gateway);
  });
  afterAll(async () => {
    await etcd?.stop();
    await fabric?.teardown();
    await tmp?.cleanup();
  });

  it('gives each host its own address, hostname and eth0', async () => {
    expect(a.ip).not.toBe(b.ip);
    expect((await a.exec('hostname')).stdout).toBe('a');
    expect((await b.exec('ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0'])).stdout).toContain(`${b.ip}/24`);
    expect(await a.dockerd.docker('run', '--rm', '--network', 'host', a.dockerd.image, 'hostname')).toBe('a');
  });

  it("a --network host container on A serves at A's address: from the root namespace and from B", async () => {
    await a.dockerd.docker(
      'run',
      '-d',
      '--name',
      'web',
      '--network',
      'host',
      a.dockerd.image,
      'sh',
      '-c',
      'mkdir -p /www && echo hello-from-a > /www/index.html && exec httpd -f -p 8080 -h /www',
    );
    let body = '';
    for (let i = 0; i < 50 && !body; i++) {
      body = await fetch(`http://${a.ip}:8080/`).then(
        (r) => r.text(),
        () => '',
      );
      if (!body) await new Promise((r) => setTimeout(r, 100));
    }
    expect(body).toBe('hello-from-a\n');
    // busybox wget's -T segfaults (busybox-static 1.35): docker's own exit is the timeout here.
    expect(await b.dockerd.docker('run', '--rm', '--network', 'host', b.dockerd.image, 'wget', '-qO-', `http://${a.ip}:8080/`)).toBe('hello-from-a');
    // The port is A's alone: B's loopback has nothing on 8080.
    const local = await b.exec('busybox', ['wget', '-qO-', 'http://127.0.0.1:8080/'], { reject: false });
    expect(local.exitCode).not.toBe(0);
  });

  it("reaches the root namespace's etcd on the gateway, from a host process and from a container", async () => {
    expect(etcd.url).toContain(`//${fabric.gateway}:`);
    const node = await a.exec(process.execPath, [
      '-e',
      `fetch(${JSON.stringify(`${etcd.url}/health`)}).then((r) => r.text()).then((t) => process.stdout.write(t))`,
    ]);
    expect(JSON.parse(node.stdout)).toMatchObject({ health: 'true' });
    expect(await b.dockerd.docker('run', '--rm', '--network', 'host', b.dockerd.image, 'wget', '-qO-', `${etcd.url}/health`)).toContain('"health":"true"');
  });

  it('teardown leaves no netns, veth or bridge behind, and is safe to repeat', async () => {
    const before = await names();
    expect(before.netns).toContain(a.ns);
    expect(before.links).toContain(fabric.bridge);
    const slow = a.spawn('sleep', ['600'], { reject: false });
    await fabric.teardown();
    expect((await slow).isTerminated).toBe(true);
    const after = await names();
    expect(after.netns).not.toContain(fabric.tag);
    expect(after.links).not.toContain(fabric.tag);
    await fabric.teardown();
  });
});
