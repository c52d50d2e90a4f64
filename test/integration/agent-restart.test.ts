import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnHostAgent, stopAgents, type AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { haveNetns, makeFabric, type Fabric, type NetHost } from '../harness/netns.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { integration } from '../harness/tools.js';

const run = integration(
  'agent restart',
  haveNetns(),
  'needs root, iproute2, dockerd, docker and busybox-static (Debian packages iproute2, docker.io, busybox-static)',
);
const GRACE = 6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Hits url every 100 ms until stopped; counts the answers and the failures. */
function probe(url: string): { stop(): Promise<{ ok: number; failed: number; errors: string[] }> } {
  let running = true;
  const seen = { ok: 0, failed: 0, errors: [] as string[] };
  const loop = (async () => {
    while (running) {
      const t = Date.now();
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
        await res.text();
        if (res.ok) seen.ok++;
        else seen.failed++, seen.errors.push(`status ${res.status}`);
      } catch (e) {
        seen.failed++;
        seen.errors.push((e as Error).message);
      }
      await sleep(Math.max(0, 100 - (Date.now() - t)));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return seen;
    },
  };
}

/**
 * Two hosts (network namespaces, each with its own dockerd and agent, lease 2 s, restart grace 6 s)
 * on one etcd: an agent restarted within the grace keeps its jobs and their containers; a host down
 * longer loses them; a placement that cannot start never costs the running copy.
 */
describe.skipIf(!run)('an agent restarted within its grace keeps its jobs', () => {
  let tmp: TempDir;
  let fabric: Fabric;
  let etcd: EtcdInstance;
  let tokenFile: string;
  const hosts: Record<string, NetHost> = {};
  const agents: Record<string, AgentUnderTest> = {};
  let image: string;
  let env: Record<string, string>;
  const k = (argv: string[]) => knarr(argv, { env });

  const startAgent = (name: string, extra: string[] = []) => {
    agents[name] = spawnHostAgent(hosts[name]!, {
      etcd: etcd.url,
      stateDir: `${tmp.path}/${name}-state`,
      tokenFile,
      flags: ['--restart-grace', String(GRACE), ...extra],
    });
  };
  const upHosts = async () =>
    ((await k(['--json', 'host', 'list'])).json() as { name: string; up: boolean; join?: string }[])
      .filter((h) => h.up && h.join === 'ok')
      .map((h) => h.name)
      .sort();
  const show = async (job: string) => (await k(['--json', 'job', 'show', job])).json();
  const containerOf = async (h: string, job: string) => hosts[h]!.dockerd.docker('ps', '-q', '--no-trunc', '--filter', `label=knarr.job=${job}`);
  const moves = async (job: string) =>
    ((await k(['--json', 'job', 'history', job])).json() as { event: string; host: string }[]).filter((e) => e.event === 'moved').map((e) => e.host);

  /** A daemonized web server on ha (hb drained meanwhile), published on port. */
  const webOnHa = async (name: string, port: number) => {
    expect((await k(['host', 'drain', 'hb'])).code).toBe(0);
    const r = await k([
      '--json',
      'job',
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'knet',
      '-p',
      `${port}:80`,
      '--restart',
      'always',
      image,
      '--',
      'sh',
      '-c',
      'mkdir -p /www && echo "$KNARR_HOST" > /www/index.html && exec httpd -f -p 80 -h /www',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ host: 'ha', state: 'running' });
    expect((await k(['host', 'drain', 'hb', '--undo'])).code).toBe(0);
    await eventually(async () => expect(await (await fetch(`http://${hosts.ha!.ip}:${port}/`)).text()).toBe('ha\n'));
    return (await show(name)).actual.container as string;
  };

  beforeAll(async () => {
    tmp = await tempDir('knarr-restart-');
    fabric = await makeFabric(tmp.path);
    etcd = await startEtcd(fabric.gateway);
    tokenFile = `${tmp.path}/agent.token`;
    writeFileSync(tokenFile, 'restart-test-token\n', { mode: 0o600 });
    for (const [i, name] of ['ha', 'hb'].entries()) {
      hosts[name] = await fabric.addHost(name);
      // A bridge network of the same name on each host: a published port goes through docker's proxy, which cannot bind a port taken.
      await hosts[name]!.dockerd.docker('network', 'create', '--subnet', `10.252.${i + 1}.0/24`, 'knet');
    }
    image = hosts.ha!.dockerd.image;
    env = { KNARR_ETCD: etcd.url, KNARR_AGENT_TOKEN_FILE: tokenFile, KNARR_STATE_DIR: `${tmp.path}/cli-state` };
    startAgent('ha');
    startAgent('hb');
    await eventually(async () => expect(await upHosts()).toEqual(['ha', 'hb']));
    expect((await k(['--json', 'host', 'show', 'ha'])).json()).toMatchObject({ restartGraceSeconds: GRACE });
    expect((await k(['host', 'show', 'ha'])).stdout).toMatch(new RegExp(`^restart grace: +${GRACE}s$`, 'm'));
  }, 180_000);

  afterAll(async () => {
    await stopAgents(Object.values(agents));
    await fabric?.teardown();
    await etcd?.stop();
    await tmp?.cleanup();
  }, 120_000);

  /** Stops ha's agent with signal, waits until the fleet sees ha down, starts it again; the job stays past the grace. */
  const restartWithin = async (signal: 'SIGTERM' | 'SIGKILL', job: string, port: number, container: string) => {
    const prober = probe(`http://${hosts.ha!.ip}:${port}/`);
    await sleep(500);
    await agents.ha!.stop(signal);
    // Down for the fleet: at once after SIGTERM, once the lease lapsed after SIGKILL.
    await eventually(async () => expect(await upHosts()).toEqual(['hb']), 10_000);
    const down = Date.now();
    startAgent('ha');
    await eventually(async () => expect(await upHosts()).toEqual(['ha', 'hb']));
    // Past the end of the grace hb counted from ha going down: nothing moved meanwhile.
    await sleep(Math.max(0, down + (GRACE + 2) * 1000 - Date.now()));
    const seen = await prober.stop();
    expect(seen.failed, seen.errors.slice(0, 3).join('; ')).toBe(0);
    expect(seen.ok).toBeGreaterThan(50);
    expect(await show(job)).toMatchObject({ host: 'ha', state: 'running', actual: { container } });
    expect(await containerOf('ha', job)).toBe(container);
    expect(await containerOf('hb', job)).toBe('');
    expect(await moves(job)).toEqual([]);
  };

  it('SIGTERM, then the agent again within the grace: same container, no move, no failed connection', async () => {
    const container = await webOnHa('web1', 8081);
    await restartWithin('SIGTERM', 'web1', 8081, container);
  }, 90_000);

  it('SIGKILL, the lease lapsed, then the agent again within the grace: the same', async () => {
    const container = (await show('web1')).actual.container as string;
    await restartWithin('SIGKILL', 'web1', 8081, container);
  }, 90_000);

  it('a host down longer than its grace: the job moves, and the old copy goes once the new one runs', async () => {
    await agents.ha!.stop('SIGKILL');
    await eventually(async () => expect(await upHosts()).toEqual(['hb']), 10_000);
    const down = Date.now();
    await eventually(async () => expect(await show('web1')).toMatchObject({ host: 'hb', state: 'running' }), 30_000, 250);
    // Not before the grace (less a pass's slack).
    expect(Date.now() - down).toBeGreaterThan((GRACE - 1) * 1000);
    expect(await moves('web1')).toEqual(['hb']);
    // The agentless copy on ha ran on meanwhile; the agent back removes it, the job staying on hb.
    expect(await containerOf('ha', 'web1')).not.toBe('');
    startAgent('ha');
    await eventually(async () => expect(await containerOf('ha', 'web1')).toBe(''));
    expect(await show('web1')).toMatchObject({ host: 'hb', state: 'running' });
    expect((await k(['job', 'rm', 'web1'])).code).toBe(0);
  }, 90_000);

  it('moved to a host that cannot start it (its port taken), the job comes back to its running copy: no outage', async () => {
    await eventually(async () => expect(await upHosts()).toEqual(['ha', 'hb']));
    const container = await webOnHa('web4', 8084);
    await hosts.hb!.dockerd.docker('run', '-d', '--name', 'blocker', '--network', 'host', image, 'httpd', '-f', '-p', '8084');
    const prober = probe(`http://${hosts.ha!.ip}:8084/`);
    await agents.ha!.stop('SIGTERM');
    // Past the grace the job goes to hb, which cannot start it; the copy on ha serves on.
    await eventually(async () => expect(await show('web4')).toMatchObject({ host: 'hb', actual: { host: 'hb', state: 'failed' } }), 30_000, 250);
    expect((await show('web4')).actual.error).toMatch(/address already in use|port is already allocated/);
    startAgent('ha');
    await eventually(async () => expect(await show('web4')).toMatchObject({ host: 'ha', state: 'running', actual: { host: 'ha', container } }));
    // A while later it is still there, the same container, and hb has no copy.
    await sleep(3000);
    const seen = await prober.stop();
    expect(seen.failed, seen.errors.slice(0, 3).join('; ')).toBe(0);
    expect(await show('web4')).toMatchObject({ host: 'ha', state: 'running', actual: { container } });
    expect(await containerOf('ha', 'web4')).toBe(container);
    expect(await hosts.hb!.dockerd.docker('ps', '-aq', '--filter', 'label=knarr.job=web4')).toBe('');
    expect(await moves('web4')).toEqual(['hb', 'ha']);
  }, 90_000);

  it('--leave-on-stop, or host leave of a host that is down: its jobs move at once, not after the grace', async () => {
    await hosts.hb!.dockerd.docker('rm', '-f', 'blocker');
    await agents.ha!.stop('SIGTERM');
    startAgent('ha', ['--leave-on-stop']);
    await eventually(async () => expect(await upHosts()).toEqual(['ha', 'hb']));
    expect(await show('web4')).toMatchObject({ host: 'ha', state: 'running' });
    await agents.ha!.stop('SIGTERM');
    const stopped = Date.now();
    expect((await k(['--json', 'host', 'show', 'ha'])).json()).toMatchObject({ up: false, state: 'left' });
    expect((await k(['host', 'show', 'ha'])).stdout).toMatch(/^restart grace: +none \(left\)$/m);
    await eventually(async () => expect(await show('web4')).toMatchObject({ host: 'hb', state: 'running' }), 30_000, 250);
    expect(Date.now() - stopped).toBeLessThan((GRACE - 2) * 1000);
    // Back, it serves again, and its old copy goes.
    startAgent('ha');
    await eventually(async () => expect((await k(['--json', 'host', 'show', 'ha'])).json()).toMatchObject({ up: true, state: 'ok' }));
    await eventually(async () => expect(await containerOf('ha', 'web4')).toBe(''));

    await agents.hb!.stop('SIGKILL');
    await eventually(async () => expect(await upHosts()).toEqual(['ha']), 10_000, 250);
    const down = Date.now();
    expect((await k(['host', 'leave', 'hb'])).code).toBe(0);
    await eventually(async () => expect(await show('web4')).toMatchObject({ host: 'ha', state: 'running' }), 30_000, 250);
    expect(Date.now() - down).toBeLessThan((GRACE - 1) * 1000);
  }, 90_000);

  it('a placement that cannot start goes back to a host where the job ran, when that host has no copy left', async () => {
    startAgent('hb');
    await eventually(async () => expect(await upHosts()).toEqual(['ha', 'hb']));
    const first = await webOnHa('web6', 8086);
    await hosts.hb!.dockerd.docker('run', '-d', '--name', 'blocker6', '--network', 'host', image, 'httpd', '-f', '-p', '8086');
    await agents.ha!.stop('SIGKILL');
    await eventually(async () => expect(await show('web6')).toMatchObject({ host: 'hb', actual: { host: 'hb', state: 'failed' } }), 30_000, 250);
    // As after a reboot: ha's copy is gone when its agent starts again.
    await hosts.ha!.dockerd.docker('rm', '-f', first);
    startAgent('ha');
    // hb's next try fails too, and it hands the job back to ha, where it ran.
    await eventually(async () => expect(await show('web6')).toMatchObject({ host: 'ha', state: 'running', actual: { host: 'ha' } }));
    expect(await moves('web6')).toEqual(['hb', 'ha']);
    await eventually(async () => expect(await (await fetch(`http://${hosts.ha!.ip}:8086/`)).text()).toBe('ha\n'));
    expect(await hosts.hb!.dockerd.docker('ps', '-aq', '--filter', 'label=knarr.job=web6')).toBe('');
  }, 90_000);
});
