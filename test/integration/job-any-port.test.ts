import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentUnderTest, type AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { haveDockerd, startDockerd, type Dockerd } from '../harness/dockerd.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { integration } from '../harness/tools.js';

const run = integration(
  'job ports on any host port',
  haveDockerd(),
  'dockerd, docker or busybox-static is missing (Debian packages docker.io, busybox-static)',
);

/** The body of GET http://127.0.0.1:port/, or null while nothing answers. */
async function fetchText(port: number): Promise<string | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3000) });
    return res.ok ? (await res.text()).trim() : null;
  } catch {
    return null;
  }
}

interface Service {
  name: string;
  job: string;
  address: string;
  port: number;
}

/**
 * Jobs publishing `0:80` (busybox httpd serving its own hostname) on a real dockerd: the engine picks
 * each host port, the job's service records it, and two such jobs share the host. Once with no agent
 * (the CLI runs the reconciler inline), once through an agent on that engine.
 */
describe.skipIf(!run)('a job port on any free host port (0:80)', () => {
  let tmp: TempDir;
  let d: Dockerd;
  let etcd: EtcdInstance;
  let agent: AgentUnderTest | null = null;

  beforeAll(async () => {
    tmp = await tempDir('hb14-anyport-');
    d = await startDockerd(`${tmp.path}/docker`);
    etcd = await startEtcd();
  }, 120_000);
  afterAll(async () => {
    await agent?.stop('SIGTERM');
    await d?.stop();
    await etcd?.stop();
    await tmp?.cleanup();
  }, 60_000);

  /** Runs two 0:80 jobs in fleet and checks each answers through the port its service records. */
  async function twoWebs(fleet: string, stateDir: string, prefix: string): Promise<void> {
    const k = (argv: string[]) => knarr(['--etcd', etcd.url, '--fleet', fleet, ...argv], { env: { ...d.env, KNARR_STATE_DIR: stateDir } });
    const argv = (name: string, port: string[]) => [
      'job',
      'run',
      '-d',
      '--name',
      name,
      ...port,
      d.image,
      '--',
      'sh',
      '-c',
      'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www',
    ];
    const first = await k(argv(`${prefix}1`, ['-p', '0:80']));
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`job ${prefix}1 runs on \\S+ \\(container [0-9a-f]{12}\\); 80/tcp on host port \\d+`));
    const file = `${tmp.path}/${prefix}2.yaml`;
    const { writeFileSync } = await import('node:fs');
    writeFileSync(
      file,
      `name: ${prefix}2\nimage: ${d.image}\ncommand: [sh, -c, "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h ` +
        `/www"]\nports: [{host: 0, container: 80}]\n`,
    );
    const second = await k(['job', 'run', '-f', file]);
    expect(second.code, second.stderr).toBe(0);

    const services = (await k(['--json', 'service', 'list'])).json() as Service[];
    const mine = [`${prefix}1-80`, `${prefix}2-80`].map((n) => services.find((s) => s.name === n)!);
    expect(mine.every((s) => s && s.address === '127.0.0.1' && s.port > 0)).toBe(true);
    expect(mine[0]!.port).not.toBe(mine[1]!.port);
    // Each answers with its own container's hostname on the port its service says.
    const names: string[] = [];
    for (const s of mine) {
      let text: string | null = null;
      await eventually(async () => {
        text = await fetchText(s.port);
        expect(text).toMatch(/^[0-9a-f]{12}$/);
      }, 20_000);
      names.push(text!);
    }
    expect(names[0]).not.toBe(names[1]);
    const ps = await k(['--json', 'job', 'list']);
    const rows = ps.json() as { name: string; state: string; ports: { host: number; container: number; published?: number }[] }[];
    for (const [i, s] of mine.entries())
      expect(rows.find((r) => r.name === `${prefix}${i + 1}`)).toMatchObject({ state: 'running', ports: [{ host: 0, container: 80, published: s.port }] });
    expect((await k(['job', 'list'])).stdout).toContain(`${mine[0]!.port}->80/tcp`);
    expect((await k(['job', 'show', `${prefix}2`])).stdout).toMatch(new RegExp(`^ports: +${mine[1]!.port}->80/tcp$`, 'm'));

    if (agent) {
      // Both behind an environment's balancer served by the agent: a job linked to the environment's service reaches each through its ambassador.
      const { connectEtcd } = await import('../../src/state/store.js');
      const { BalancerRepo } = await import('../../src/state/balancers.js');
      const store = await connectEtcd([etcd.url]);
      try {
        const env = `${prefix.replace(/[^a-z0-9]/g, '')}shop`;
        await new BalancerRepo(store, fleet).put('hb14-h1', { env, member: `${env}-balancer-1`, port: 0, backends: mine.map((s) => s.name), state: 'running' });
        await eventually(async () => expect(((await k(['--json', 'service', 'list'])).json() as Service[]).some((s) => s.name === env)).toBe(true));
        const addr = `$${env.toUpperCase()}_ADDR`;
        const linked = await k(['job', 'run', '--link', env, d.image, '--', 'sh', '-c', `for i in 1 2 3 4; do wget -qO- "http://${addr}/"; done`]);
        expect(linked.code, linked.stderr).toBe(0);
        expect(new Set(linked.stdout.trim().split('\n'))).toEqual(new Set(names));
      } finally {
        await store.close();
      }
    }

    // docker restart: the container may get another port; the service follows what the engine says.
    await d.docker('restart', '-t', '0', `knarr-${prefix}1`);
    const bound = async () => Number((await d.docker('port', `knarr-${prefix}1`, '80/tcp')).split('\n')[0]!.split(':').pop());
    if (agent) {
      await eventually(async () => {
        const now = ((await k(['--json', 'service', 'list'])).json() as Service[]).find((s) => s.name === `${prefix}1-80`)!;
        expect(now.port).toBe(await bound());
        expect(await fetchText(now.port)).toBe(names[0]);
      }, 30_000);
    }
    for (const n of [1, 2]) expect((await k(['job', 'rm', `${prefix}${n}`])).code).toBe(0);
    expect(((await k(['--json', 'service', 'list'])).json() as Service[]).filter((s) => s.job.startsWith(prefix))).toEqual([]);
  }

  it('with no agent: two jobs with 0:80 both run, each reached on the port its service records', async () => {
    await twoWebs('hb14-inline', `${tmp.path}/inline-state`, 'hb14-in');
  }, 120_000);

  it('the dry run prints the engine command with docker’s spelling of any port', async () => {
    const r = await knarr(
      ['--etcd', etcd.url, '--fleet', 'hb14-dry', '--dry-run', 'job', 'run', '-d', '--name', 'hb14-dry', '-p', '0:80', d.image, '--', 'true'],
      {
        env: { ...d.env, KNARR_STATE_DIR: `${tmp.path}/dry-state` },
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/-p 0:80\/tcp/);
  });

  it('through an agent on that engine: two jobs with 0:80 both run, a job linked to a balancer in front of them reaches both, and a container ' +
    'restarted keeps its service right', async () => {
    const fleet = 'hb14-agent';
    const stateDir = `${tmp.path}/agent-state`;
    agent = await agentUnderTest({ etcd: etcd.url, fleet, stateDir, name: 'hb14-h1', listen: `127.0.0.1:${await freePort()}`, env: d.env });
    await twoWebs(fleet, stateDir, 'hb14-ag');
  }, 180_000);
});
