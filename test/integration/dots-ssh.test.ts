import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHost, type TestHost } from '../harness/hosts.js';
import { haveSshd, startSshd, type Sshd } from '../harness/sshd.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';
import { zfsAnswers } from '../harness/zfs.js';

const run = integration(
  'dots over ssh',
  (await zfsAnswers()) && haveTools('etcd') && haveSshd(),
  'zpool does not answer, or etcd or openssh-server is missing',
);
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const bin = new URL('../../bin/knarr', import.meta.url).pathname;

describe.skipIf(!run)('dot push and pull over ssh (a real sshd on loopback)', () => {
  let tmp: TempDir;
  let sshd: Sshd;
  let a: TestHost;
  let b: TestHost;
  let env: Record<string, string>;
  let url: string;
  beforeAll(async () => {
    tmp = await tempDir('knarr-ssh-');
    sshd = await startSshd(tmp.path);
    a = await makeHost(tmp.path, 'zfs', 'a');
    b = await makeHost(tmp.path, 'zfs', 'b');
    // A command of several words, as "sudo knarr" would be.
    env = { KNARR_SSH_CONFIG: sshd.clientConfig, KNARR_REMOTE_KNARR: `env KNARR_QUIET_REMOTE=1 ${bin}` };
    // The URL's path is the other host's state directory.
    url = `ssh://root@127.0.0.1:${sshd.port}${b.state}`;
  });
  afterAll(async () => {
    await a?.teardown();
    await b?.teardown();
    await sshd?.stop();
    await tmp?.cleanup();
  });

  it('pushes to knarr on the other host, incrementally, and pulls back', async () => {
    const dot = uniqueName('s');
    await a.run(['dot', 'init', dot]);
    writeFileSync(`${a.dotPath(dot)}/big.bin`, randomBytes(2 * 1024 * 1024));
    const c1 = (await a.run(['--json', 'dot', 'commit', dot, '-m', 'one'])).json();
    expect((await a.run(['dot', 'remote', 'add', 'b', url])).code).toBe(0);

    const push = await a.run(['--json', 'dot', 'push', dot, 'b'], env);
    expect(push.code, push.stderr).toBe(0);
    expect(push.json().sent).toEqual([expect.objectContaining({ id: c1.id, incremental: false })]);
    expect(sha(`${b.dotPath(dot)}/big.bin`)).toBe(sha(`${a.dotPath(dot)}/big.bin`));

    writeFileSync(`${a.dotPath(dot)}/note`, 'second');
    const c2 = (await a.run(['--json', 'dot', 'commit', dot, '-m', 'two'])).json();
    const push2 = await a.run(['--json', 'dot', 'push', dot, 'b'], env);
    expect(push2.code, push2.stderr).toBe(0);
    expect(push2.json().sent).toEqual([expect.objectContaining({ id: c2.id, incremental: true })]);
    expect(push2.json().sent[0].bytes).toBeLessThan(512 * 1024);
    const log = await b.run(['--json', 'dot', 'log', dot]);
    expect(log.json().map((c: { id: string }) => c.id)).toEqual([c2.id, c1.id]);
    expect(readFileSync(`${b.dotPath(dot)}/note`, 'utf8')).toBe('second');
    expect((await a.run(['--json', 'dot', 'push', dot, 'b'], env)).json().action).toBe('up-to-date');

    // b moves on; a pulls the new commit back over ssh.
    writeFileSync(`${b.dotPath(dot)}/note`, 'third, from b');
    const c3 = (await b.run(['--json', 'dot', 'commit', dot, '-m', 'three'])).json();
    const pull = await a.run(['--json', 'dot', 'pull', `b/${dot}`], env);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.json()).toMatchObject({ action: 'fast-forward', received: [c3.id] });
    expect(readFileSync(`${a.dotPath(dot)}/note`, 'utf8')).toBe('third, from b');
  });

  it('pulls a whole dot from the other host under another name', async () => {
    const dot = uniqueName('p');
    await b.run(['dot', 'init', dot]);
    writeFileSync(`${b.dotPath(dot)}/f`, 'from b');
    await b.run(['dot', 'commit', dot, '-m', 'b one']);
    const pulled = await a.run(['--json', 'dot', 'pull', `${url}/${dot}`, '--as', `${dot}x`], env);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(readFileSync(`${a.dotPath(`${dot}x`)}/f`, 'utf8')).toBe('from b');
    // Its commits are the local dot's: its log has them, and fsck finds nothing astray.
    const log = await a.run(['--json', 'dot', 'log', `${dot}x`]);
    expect(log.json().map((c: { message: string; dot: string }) => [c.message, c.dot])).toEqual([['b one', `${dot}x`]]);
    const fsck = await a.run(['--json', 'dot', 'fsck']);
    expect(fsck.code, fsck.stdout).toBe(0);
  });

  it('refuses a push that would overwrite commits the other host has', async () => {
    const dot = uniqueName('r');
    await a.run(['dot', 'init', dot]);
    await a.run(['dot', 'commit', dot, '-m', 'base']);
    expect((await a.run(['dot', 'push', dot, url], env)).code).toBe(0);
    await b.run(['dot', 'commit', dot, '-m', 'b only']);
    await a.run(['dot', 'commit', dot, '-m', 'a only']);
    const refused = await a.run(['dot', 'push', dot, url], env);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/has commits of .* this host lacks/);
  });

  it('an unreachable host is a clear error', async () => {
    const r = await a.run(['dot', 'pull', 'ssh://root@127.0.0.1:1/x/y'], env);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot reach ssh:\/\/root@127\.0\.0\.1:1\/x over ssh/);
  });
});
