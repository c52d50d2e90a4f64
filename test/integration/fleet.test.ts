import { writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnHostAgent, stopAgents, type AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { haveNetns, makeFabric, type Fabric, type NetHost } from '../harness/netns.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { integration } from '../harness/tools.js';
import { eventually } from '../harness/eventually.js';

const run = integration('fleet', haveNetns(), 'needs root, iproute2, dockerd, docker and busybox-static (Debian packages iproute2, docker.io, busybox-static)');
const bin = new URL('../../bin/knarr', import.meta.url).pathname;

/**
 * Three simulated hosts (network namespaces, each with its own dockerd and agent) on one shared etcd:
 * jobs placed by the scheduler, piped across hosts, moved when a host goes down, reached through
 * the ambassador at an address that survives the move.
 */
describe.skipIf(!run)('a fleet of three hosts, one agent each', () => {
  let tmp: TempDir;
  let fabric: Fabric;
  let etcd: EtcdInstance;
  let tokenFile: string;
  const hosts: Record<string, NetHost> = {};
  const agents: Record<string, AgentUnderTest> = {};
  let image: string;
  let env: Record<string, string>;
  const k = (argv: string[]) => knarr(argv, { env });

  const startAgent = (name: string, tags: string, extra: string[] = []) => {
    agents[name] = spawnHostAgent(hosts[name]!, {
      etcd: etcd.url,
      stateDir: `${tmp.path}/${name}-state`,
      tokenFile,
      // A host down is not waited for here (agent-restart.test.ts tests the grace).
      flags: ['--tags', tags, '--restart-grace', '0', ...extra],
    });
  };
  const upHosts = async () =>
    ((await k(['--json', 'host', 'list'])).json() as { name: string; up: boolean; join?: string }[])
      .filter((h) => h.up && h.join === 'ok')
      .map((h) => h.name)
      .sort();

  beforeAll(async () => {
    tmp = await tempDir('knarr-fleet-');
    fabric = await makeFabric(tmp.path);
    etcd = await startEtcd(fabric.gateway);
    tokenFile = `${tmp.path}/agent.token`;
    writeFileSync(tokenFile, 'fleet-test-token\n', { mode: 0o600 });
    for (const name of ['ha', 'hb', 'hc']) hosts[name] = await fabric.addHost(name);
    image = hosts.ha!.dockerd.image;
    env = { KNARR_ETCD: etcd.url, KNARR_AGENT_TOKEN_FILE: tokenFile, KNARR_STATE_DIR: `${tmp.path}/cli-state` };
    startAgent('ha', 'web,a');
    startAgent('hb', 'web');
    startAgent('hc', 'client');
    await eventually(async () => expect(await upHosts()).toEqual(['ha', 'hb', 'hc']));
  }, 180_000);

  afterAll(async () => {
    await stopAgents(Object.values(agents));
    await fabric?.teardown();
    await etcd?.stop();
    await tmp?.cleanup();
  }, 120_000);

  it('echo hello | job on ha | job on hb prints 6, and each job ran where it was pinned', async () => {
    const r = await execa(
      'sh',
      ['-c', `echo hello | "$0" job run -i --host ha --network none "$1" -- tr a-z A-Z | "$0" job run -i --host hb --network none "$1" -- wc -c`, bin, image],
      { env: { ...process.env, ...env } },
    );
    expect(r.stdout.trim()).toBe('6');
    // A job that stops reading early ends cleanly, and the agent lives on.
    const early = await execa('sh', ['-c', `yes | "$0" job run -i --host ha --network none "$1" -- head -n 1`, bin, image], {
      env: { ...process.env, ...env },
      reject: false,
    });
    expect(early.exitCode, early.stderr).toBe(0);
    expect(early.stdout).toBe('y');
    const exit = await k(['job', 'run', '--host', 'hb', '--network', 'none', image, '--', 'sh', '-c', 'echo on $KNARR_HOST; exit 3']);
    expect(exit.code).toBe(3);
    expect(exit.stdout).toBe('on hb\n');
    for (const h of Object.values(hosts)) expect(await h.dockerd.docker('ps', '-aq', '--filter', 'label=knarr.mode=foreground')).toBe('');
  });

  it('the agent API refuses a request without the token', async () => {
    const res = await fetch(`http://${hosts.ha!.ip}:7946/v1/health`);
    expect(res.status).toBe(401);
    const noToken = await knarr(['job', 'run', '--host', 'ha', image, '--', 'true'], { env: { ...env, KNARR_AGENT_TOKEN: 'wrong' } });
    expect(noToken.code).not.toBe(0);
    expect(noToken.stderr).toMatch(/refused \(401\)/);
  });

  it('a job whose host goes down moves; the linked job reaches it at the same address; a fixed job waits for its host', async () => {
    // hb takes no new jobs for a moment, so web and db land on ha.
    expect((await k(['host', 'drain', 'hb'])).code).toBe(0);
    const web = await k([
      '--json',
      'job',
      'run',
      '-d',
      '--name',
      'web',
      '--tag',
      'web',
      '--network',
      'host',
      '-p',
      '8080:8080',
      '--restart',
      'always',
      image,
      '--',
      'sh',
      '-c',
      'mkdir -p /www && echo "$KNARR_HOST" > /www/index.html && exec httpd -f -p 8080 -h /www',
    ]);
    expect(web.code, web.stderr).toBe(0);
    expect(web.json()).toMatchObject({ name: 'web', host: 'ha', state: 'running' });
    writeFileSync(`${tmp.path}/db.yaml`, `name: db\nimage: ${image}\ncommand: [sleep, "3600"]\ntags: [web]\nnetwork: none\ndaemonize: true\nfixed: true\n`);
    const db = await k(['--json', 'job', 'run', '-f', `${tmp.path}/db.yaml`]);
    expect(db.code, db.stderr).toBe(0);
    expect(db.json()).toMatchObject({ host: 'ha' });
    expect((await k(['host', 'drain', 'hb', '--undo'])).code).toBe(0);

    // The client on hc fetches web through its host's ambassador, twice a second.
    const client = await k([
      'job',
      'run',
      '-d',
      '--name',
      'client',
      '--tag',
      'client',
      '--network',
      'host',
      '--link',
      'web-8080',
      image,
      '--',
      'sh',
      '-c',
      'while true; do wget -qO- "http://$WEB_8080_ADDR/" || echo failed; sleep 0.5; done',
    ]);
    expect(client.code, client.stderr).toBe(0);
    await eventually(async () => expect((await k(['job', 'logs', 'client'])).stdout).toContain('ha\n'));
    // Through the agent of the job's host, as from the engine: the last line only, with its time.
    expect((await k(['job', 'logs', 'client', '--tail', '1', '--timestamps', '--since', '5m'])).stdout).toMatch(/^\d{4}-\d{2}-\d{2}T\S+Z (ha|failed)\n$/);
    // A bridged job reaches the same forwarder at its network's gateway.
    await hosts.hc!.dockerd.docker('network', 'create', '--subnet', '10.251.77.0/24', 'knet');
    const bridged = await k([
      'job',
      'run',
      '-d',
      '--name',
      'bridged',
      '--host',
      'hc',
      '--network',
      'knet',
      '--link',
      'web-8080',
      image,
      '--',
      'sh',
      '-c',
      'echo "via $WEB_8080_ADDR"; while true; do wget -qO- "http://$WEB_8080_ADDR/" || echo failed; sleep 0.5; done',
    ]);
    expect(bridged.code, bridged.stderr).toBe(0);
    await eventually(async () => expect((await k(['job', 'logs', 'bridged'])).stdout).toMatch(/via 10\.251\.77\.1:\d+\n(.|\n)*ha\n/));

    agents.ha!.proc.kill('SIGKILL');
    await eventually(async () => expect((await k(['--json', 'job', 'show', 'web'])).json()).toMatchObject({ host: 'hb', state: 'running' }));
    await eventually(async () =>
      expect((await k(['--json', 'service', 'list'])).json()).toEqual(
        expect.arrayContaining([expect.objectContaining({ name: 'web-8080', host: 'hb', address: hosts.hb!.ip })]),
      ),
    );
    await eventually(async () => expect((await k(['job', 'logs', 'client'])).stdout).toContain('hb\n'));
    await eventually(async () => expect((await k(['job', 'logs', 'bridged'])).stdout).toContain('hb\n'));

    // db is fixed on ha: it waits, and nothing of it runs on hb.
    expect((await k(['--json', 'job', 'show', 'db'])).json()).toMatchObject({ host: 'ha', state: 'pending (ha is down)' });
    expect(await hosts.hb!.dockerd.docker('ps', '-aq', '--filter', 'label=knarr.job=db')).toBe('');
    const history = (await k(['--json', 'job', 'history', 'web'])).json() as { event: string; host: string }[];
    expect(history.map((e) => `${e.event}@${e.host}`)).toEqual(expect.arrayContaining(['started@ha', 'moved@hb', 'started@hb']));
    // The fleet's events say so too: web moved, and ha went down once (two agents saw it).
    const events = (await k(['--json', 'events', '-n', '0'])).json() as { kind: string; object: string; host: string; event: string; message: string }[];
    expect(events.filter((e) => e.kind === 'job' && e.object === 'web').map((e) => `${e.event}@${e.host} ${e.message}`)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^started@ha /), 'moved@hb from ha, which is down', expect.stringMatching(/^started@hb /)]),
    );
    expect(events.filter((e) => e.kind === 'host' && e.object === 'ha' && e.event === 'down')).toHaveLength(1);

    // ha comes back: its stale web container goes, db runs there again.
    startAgent('ha', 'web,a');
    await eventually(async () => expect(await hosts.ha!.dockerd.docker('ps', '-aq', '--filter', 'label=knarr.job=web')).toBe(''));
    await eventually(async () => expect((await k(['--json', 'job', 'show', 'db'])).json()).toMatchObject({ host: 'ha', state: 'running' }));
  }, 120_000);

  it('a crashed job restarts per its policy; a container removed behind knarr is made again', async () => {
    const r = await k([
      'job',
      'run',
      '-d',
      '--name',
      'crashy',
      '--host',
      'hc',
      '--network',
      'none',
      '--restart',
      'on-failure:2',
      image,
      '--',
      'sh',
      '-c',
      'sleep 1; exit 1',
    ]);
    expect(r.code, r.stderr).toBe(0);
    await eventually(async () =>
      expect((await k(['--json', 'job', 'show', 'crashy'])).json()).toMatchObject({ state: 'exited', actual: { restarts: 2, exitCode: 1 } }),
    );

    const id = (await k(['--json', 'job', 'show', 'db'])).json().actual.container as string;
    await hosts.ha!.dockerd.docker('rm', '-f', id);
    await eventually(async () => {
      const now = (await k(['--json', 'job', 'show', 'db'])).json();
      expect(now.state).toBe('running');
      expect(now.actual.container).not.toBe(id);
    });
  }, 60_000);

  it('a container knarr does not know is reported, and removed by an agent with --prune', async () => {
    await hosts.hc!.dockerd.docker('run', '-d', '--name', 'stray', '--network', 'none', image, 'sleep', '3600');
    await eventually(async () =>
      expect((await k(['--json', 'host', 'show', 'hc'])).json().unknownContainers).toEqual([expect.objectContaining({ name: 'stray' })]),
    );
    await agents.hc!.stop('SIGTERM');
    startAgent('hc', 'client', ['--prune']);
    await eventually(async () => expect(await hosts.hc!.dockerd.docker('ps', '-aq', '--filter', 'name=stray')).toBe(''));
  }, 60_000);

  it('job restart --all makes every job but static ones anew; job rm removes the container on its host', async () => {
    const before = (await k(['--json', 'job', 'list'])).json() as { name: string }[];
    const r = await k(['--json', 'job', 'restart', '--all']);
    expect(r.code, r.stderr).toBe(0);
    expect((r.json() as { name: string }[]).map((x) => x.name).sort()).toEqual(before.map((x) => x.name).sort());
    expect((await k(['--json', 'job', 'show', 'web'])).json()).toMatchObject({ generation: 1, state: 'running' });
    expect((await k(['job', 'rm', 'web'])).code).toBe(0);
    expect(await hosts.hb!.dockerd.docker('ps', '-aq', '--filter', 'label=knarr.job=web')).toBe('');
    expect((await k(['--json', 'service', 'list'])).json().map((s: { name: string }) => s.name)).not.toContain('web-8080');
  }, 60_000);

  it('SIGTERM drains: a running foreground job ends with its output and code, a new one is refused meanwhile, then the host ' +
    'is down and the agent exits 0', async () => {
    const running = execa(bin, ['job', 'run', '--host', 'hc', '--network', 'none', image, '--', 'sh', '-c', 'sleep 2; echo finished; exit 4'], {
      env: { ...process.env, ...env },
      reject: false,
    });
    await eventually(async () => expect(await hosts.hc!.dockerd.docker('ps', '-q', '--filter', 'label=knarr.mode=foreground')).not.toBe(''));
    agents.hc!.proc.kill('SIGTERM');
    await eventually(async () => {
      const refused = await k(['job', 'run', '--host', 'hc', '--network', 'none', image, '--', 'true']);
      expect(refused.stderr).toMatch(/hc is shutting down; it takes no new jobs/);
    });
    const done = await running;
    expect(done.stdout).toBe('finished');
    expect(done.exitCode).toBe(4);
    expect((await agents.hc!.proc).exitCode).toBe(0);
    expect(await upHosts()).not.toContain('hc');

    // Past --drain-timeout, what still runs is stopped: the agent exits, the job's container goes.
    startAgent('hc', 'client', ['--drain-timeout', '1']);
    await eventually(async () => expect(await upHosts()).toContain('hc'));
    const long = execa(bin, ['job', 'run', '--host', 'hc', '--network', 'none', image, '--', 'sleep', '60'], {
      env: { ...process.env, ...env },
      reject: false,
    });
    await eventually(async () => expect(await hosts.hc!.dockerd.docker('ps', '-q', '--filter', 'label=knarr.mode=foreground')).not.toBe(''));
    const t0 = Date.now();
    agents.hc!.proc.kill('SIGTERM');
    expect((await agents.hc!.proc).exitCode).toBe(0);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect((await long).exitCode).not.toBe(0);
    await eventually(async () => expect(await hosts.hc!.dockerd.docker('ps', '-aq', '--filter', 'label=knarr.mode=foreground')).toBe(''));
    // A link to a service that does not exist is refused by the agent too.
    startAgent('hc', 'client');
    await eventually(async () => expect(await upHosts()).toContain('hc'));
    const missing = await k(['job', 'run', '--host', 'hc', '--network', 'none', '--link', 'nosuch-80', image, '--', 'true']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/links to service nosuch-80, which does not exist/);
  }, 90_000);
});
