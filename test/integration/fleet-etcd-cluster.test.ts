import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostRepo } from '../../src/state/hosts.js';
import { fleetKeys } from '../../src/state/keys.js';
import { OpRepo } from '../../src/state/ops.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { eventually } from '../harness/eventually.js';
import { haveNetns, makeFabric, type Fabric, type NetHost } from '../harness/netns.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration(
  'fleet on a managed etcd cluster',
  haveNetns() && haveTools('etcd', 'etcdctl', 'openssl'),
  'needs root, iproute2, dockerd, docker, busybox-static, etcd and openssl',
);
const KNARR = resolve('bin/knarr');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// A job that ends at once on SIGTERM: a stop then measures knarr, not the engine's 10 s before it kills a PID 1 that ignores it.
const SERVE = ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'];

/**
 * Three netns hosts, each with its own managed etcd member (etcd up --advertise, etcd join) and its
 * own agent on it (lease 2 s): the fleet rides out one member killed or frozen, fails fast with
 * two gone, and a member host brought back with etcd up rejoins on its data.
 */
describe.skipIf(!run)('a fleet whose store is its own hosts’ etcd members', () => {
  let tmp: TempDir;
  let fabric: Fabric;
  let h1: NetHost, h2: NetHost, h3: NetHost;
  let tokenFile: string;
  let image: string;
  const agents: ResultPromise[] = [];
  const stopped = new Set<number>();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KNARR_')));
  const base = (h: NetHost) => ['--state-dir', `${h.dir}/state`];
  const cliEnv = () => ({ ...env, KNARR_AGENT_TOKEN_FILE: tokenFile });
  const knarr = (h: NetHost, ...argv: string[]) => h.exec(KNARR, [...base(h), ...argv], { reject: false, env: cliEnv(), extendEnv: false });
  const timed = async (h: NetHost, ...argv: string[]) => {
    const t = Date.now();
    const r = await knarr(h, ...argv);
    return { ...r, ms: Date.now() - t };
  };
  const json = async (h: NetHost, ...argv: string[]) => {
    const r = await knarr(h, '--json', ...argv);
    expect(r.exitCode, `${argv.join(' ')}: ${String(r.stderr)}`).toBe(0);
    return JSON.parse(String(r.stdout));
  };
  // The test's own client, h2's member first (never frozen here): it reads what host list shows, 10 times a second.
  let reader: Store | null = null;
  const fleetStore = async () => {
    if (!reader) {
      const server = JSON.parse(readFileSync(`${h2.dir}/state/etcd/server.json`, 'utf8')) as {
        tls: { caCert: string; clientCert: string; clientKey: string };
        endpoints: string[];
      };
      const mine = (e: string) => new URL(e).hostname === h2.ip;
      reader = await connectEtcd([...server.endpoints.filter(mine), ...server.endpoints.filter((e) => !mine(e))], {
        ca: server.tls.caCert,
        cert: server.tls.clientCert,
        key: server.tls.clientKey,
      });
    }
    return reader;
  };
  // Up and joined, as the scheduler counts a host.
  const upNow = async () =>
    (await new HostRepo(await fleetStore(), 'default').list())
      .filter((h) => h.up && (h.host.join ?? 'ok') === 'ok')
      .map((h) => h.host.name)
      .sort();
  // A host's registration (its "since" changes when its agent registers again after its lease lapsed).
  const registration = async (h: NetHost) => (await fleetStore()).get(fleetKeys('default').hostAlive(h.name));
  const leader = async () => ((await json(h2, 'etcd', 'members')) as { name: string; leader: boolean }[]).find((m) => m.leader)?.name ?? '?';
  const etcdPid = (h: NetHost) => (JSON.parse(readFileSync(`${h.dir}/state/etcd/server.json`, 'utf8')) as { pid: number }).pid;
  const voters = async (h: NetHost) =>
    ((await json(h, 'etcd', 'members')) as { name: string; learner: boolean; healthy: boolean }[]).map((m) => [m.name, m.learner, m.healthy]);
  /** Hosts up and through their join: those that take work. */
  const upHosts = async (h: NetHost) =>
    ((await json(h, 'host', 'list')) as { name: string; up: boolean; join?: string }[])
      .filter((x) => x.up && (x.join ?? 'ok') === 'ok')
      .map((x) => x.name)
      .sort();
  const freeze = (h: NetHost) => {
    const pid = etcdPid(h);
    stopped.add(pid);
    process.kill(pid, 'SIGSTOP');
  };
  const agentOf = new Map<string, ResultPromise>();
  const startAgent = (h: NetHost) => {
    const a = h.spawn(
      KNARR,
      [...base(h), 'daemon', '--name', h.name, '--listen', `${h.ip}:7946`, '--ttl', '2', '--restart-grace', '4', '--token-file', tokenFile],
      {
        env,
        extendEnv: false,
        reject: false,
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    agents.push(a);
    agentOf.set(h.name, a);
  };
  const crashAgent = async (h: NetHost) => {
    const a = agentOf.get(h.name)!;
    a.kill('SIGKILL');
    await a;
  };
  const thaw = (pid: number) => {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone already */
    }
    stopped.delete(pid);
  };

  beforeAll(async () => {
    tmp = await tempDir('knarr-fleet-etcd-');
    fabric = await makeFabric(tmp.path);
    [h1, h2, h3] = (await Promise.all(['h1', 'h2', 'h3'].map((n) => fabric.addHost(n)))) as [NetHost, NetHost, NetHost];
    image = h1.dockerd.image;
    tokenFile = `${tmp.path}/agent.token`;
    writeFileSync(tokenFile, 'fleet-etcd-test-token\n', { mode: 0o600 });
    const up = await knarr(h1, 'etcd', 'up', '--advertise', h1.ip);
    expect(up.exitCode, String(up.stderr)).toBe(0);
    const token = String((await knarr(h1, 'etcd', 'token')).stdout).trim();
    const joins = await Promise.all([h2, h3].map((h) => knarr(h, 'etcd', 'join', `https://${h1.ip}:2379`, '--token', token, '--advertise', h.ip)));
    for (const j of joins) expect(j.exitCode, String(j.stderr)).toBe(0);
    for (const h of [h1, h2, h3]) startAgent(h);
    const t = Date.now();
    await eventually(async () => expect(await upHosts(h1)).toEqual(['h1', 'h2', 'h3']), 30_000);
    console.info(`three agents started at once are up and joined in ${Date.now() - t} ms`);
  }, 240_000);

  afterAll(async () => {
    // A frozen member would outlive SIGTERM: thaw it first, whatever failed.
    for (const pid of [...stopped]) thaw(pid);
    await reader?.close();
    for (const a of agents) a.kill('SIGKILL');
    const ended = await Promise.all(agents);
    if (process.env.KNARR_TEST_AGENT_LOGS) for (const e of ended) console.warn(String(e.stderr));
    // The fabric's teardown kills whatever still runs in each host's netns, the etcd members included.
    await fabric?.teardown();
    await tmp?.cleanup();
  }, 120_000);

  it('etcd members on each host shows the same three voters', async () => {
    for (const h of [h1, h2, h3])
      expect(await voters(h)).toEqual([
        ['h1', false, true],
        ['h2', false, true],
        ['h3', false, true],
      ]);
  }, 60_000);

  // Measured while h3's member is dead; read by the check below.
  let stopOnDeadMember = Number.NaN;

  it('one member killed: a pipeline of jobs across the three hosts gives the right bytes; etcd up brings it back', async () => {
    process.kill(etcdPid(h3), 'SIGKILL');
    // From h1: a store command on h3 would start h3's member again (as etcd up does).
    const stage = (h: NetHost) => `"$0" ${base(h1).join(' ')} job run -i --host ${h.name} --network none "$1" -- sh -c 'read x; echo "$x@$KNARR_HOST"'`;
    const t = Date.now();
    const pipe = await h1.exec('sh', ['-c', `echo knarr | ${stage(h1)} | ${stage(h2)} | ${stage(h3)}`, KNARR, image], {
      reject: false,
      env: cliEnv(),
      extendEnv: false,
    });
    console.info(`pipeline across h1, h2, h3 with h3's member killed: ${Date.now() - t} ms`);
    expect(pipe.exitCode, String(pipe.stderr)).toBe(0);
    expect(pipe.stdout).toBe('knarr@h1@h2@h3');
    expect(await upHosts(h2)).toEqual(['h1', 'h2', 'h3']);
    // A daemonized job's whole life on the host whose member is dead, driven from the others.
    const lifeMs: Record<string, number> = {};
    const d = await json(h2, 'job', 'run', '-d', '--name', 'onh3', '--host', 'h3', '--network', 'none', image, '--', ...SERVE);
    expect(d).toMatchObject({ host: 'h3', state: 'running' });
    expect(await h3.dockerd.docker('ps', '-q', '--filter', 'label=knarr.job=onh3')).not.toBe('');
    expect((await json(h1, 'job', 'list')).map((j: { name: string }) => j.name)).toContain('onh3');
    for (const argv of [
      ['job', 'stop', 'onh3'],
      ['job', 'restart', 'onh3'],
      ['host', 'show', 'h3'],
      ['etcd', 'members'],
      ['job', 'rm', 'onh3'],
    ]) {
      const r = await timed(h1, ...argv);
      expect(r.exitCode, `${argv.join(' ')}: ${String(r.stderr)}`).toBe(0);
      lifeMs[argv.join(' ')] = r.ms;
    }
    console.info(`h3's member killed, commands from h1 (ms): ${JSON.stringify(lifeMs)}`);
    stopOnDeadMember = lifeMs['job stop onh3']!;
    await eventually(async () => expect(await h3.dockerd.docker('ps', '-aq', '--filter', 'label=knarr.job=onh3')).toBe(''));

    const back = await knarr(h3, '--json', 'etcd', 'up');
    expect(back.exitCode, String(back.stderr)).toBe(0);
    expect(JSON.parse(String(back.stdout)).action).toBe('started');
    await eventually(async () => expect((await voters(h3)).filter(([, l, ok]) => !l && ok)).toHaveLength(3), 30_000);
  }, 120_000);

  // A job stop waits for h3's agent, whose own member is dead (connections refused): it converges through the others.
  it('one member killed: an intent change on that host applies within 3 s', () => {
    expect(stopOnDeadMember).toBeLessThan(3_000);
  });

  // Measured while the first member is frozen; read by the checks below.
  let applied = Number.NaN;
  let frozeLeader = false;
  let ownFrozenExtra = Number.NaN;

  it('the first endpoint frozen: an intent change still applies, host list elsewhere pays no extra', async () => {
    const healthy: Record<string, number[]> = { h1: [], h2: [] };
    for (const h of [h1, h2, h1, h2, h1, h2]) {
      const r = await timed(h, '--json', 'host', 'list');
      expect(r.exitCode, String(r.stderr)).toBe(0);
      healthy[h.name]!.push(r.ms);
    }
    const d = await knarr(h1, '--json', 'job', 'run', '-d', '--name', 'idle', '--host', 'h1', '--network', 'none', image, '--', ...SERVE);
    expect(d.exitCode, String(d.stderr)).toBe(0);
    const running = () => h1.dockerd.docker('ps', '-q', '--filter', 'label=knarr.job=idle');
    await eventually(async () => expect(await running()).not.toBe(''));
    // The same change with every member up, for comparison; the job started again from another host.
    const th = Date.now();
    const healthyStop = await timed(h2, 'job', 'stop', 'idle');
    expect(healthyStop.exitCode, String(healthyStop.stderr)).toBe(0);
    await eventually(async () => expect(await running()).toBe(''), 35_000, 100);
    const healthyApplied = Date.now() - th;
    expect((await knarr(h2, 'job', 'restart', 'idle')).exitCode).toBe(0);
    await eventually(async () => expect(await running()).not.toBe(''));

    // h1's own member: the first endpoint of h1's CLI and of its agent, which runs the job.
    const wasLeader = await leader();
    frozeLeader = wasLeader === 'h1';
    const pid = etcdPid(h1);
    const registered = await registration(h1);
    expect(registered).not.toBeNull();
    freeze(h1);
    try {
      await sleep(300);
      const t = Date.now();
      const stop = await timed(h2, 'job', 'stop', 'idle');
      expect(stop.exitCode, String(stop.stderr)).toBe(0);
      // Within the agent's full pass (30 s) at worst: an agent that knew only its own member never applied it.
      await eventually(async () => expect(await running()).toBe(''), 35_000, 100);
      applied = Date.now() - t;
      const frozen: Record<string, number[]> = { h1: [], h2: [] };
      for (const h of [h1, h2, h1, h2, h1, h2]) {
        const r = await timed(h, '--json', 'host', 'list');
        expect(r.exitCode, String(r.stderr)).toBe(0);
        frozen[h.name]!.push(r.ms);
      }
      ownFrozenExtra = median(frozen.h1!) - median(healthy.h1!);
      console.info(
        `frozen first member (h1; the leader was ${wasLeader}): job stop took ${stop.ms} ms, applied in ${applied} ms (healthy: ${healthyStop.ms} ` +
          `ms, ${healthyApplied} ms); host ` +
          `list on h1 healthy ${healthy.h1!.join('/')} ms, ` +
          `frozen ${frozen.h1!.join('/')} ms; on h2 healthy ${healthy.h2!.join('/')} ms, frozen ${frozen.h2!.join('/')} ms`,
      );
      // h1's agent kept its lease all along: its renewals went to another member.
      expect(await registration(h1)).toBe(registered);
      expect(median(frozen.h2!) - median(healthy.h2!)).toBeLessThan(1_000);
      expect(Math.max(...frozen.h2!) - median(healthy.h2!)).toBeLessThan(1_500);
    } finally {
      thaw(pid);
    }
    expect((await knarr(h1, 'job', 'rm', 'idle')).exitCode).toBe(0);
  }, 180_000);

  // A job stop waits for h1's agent, whose first endpoint is frozen: its calls and streams go to the next member. A frozen
  // leader also holds every write until the others elect another (after 1-2 s, etcd's election timeout): that much is etcd's.
  it('the first endpoint frozen: the intent change applies within 3 s (plus the election when it led)', () => {
    expect(applied).toBeLessThan(frozeLeader ? 5_000 : 3_000);
  });

  // Its own member's health probe (1 s) and the 150 ms the client gives it first; the probe took 2 s before.
  it("the first endpoint frozen: host list on the frozen member's host pays at most ~1 s extra", () => {
    expect(ownFrozenExtra).toBeLessThan(1_500);
  });

  // Measured in the test below, read by the checks after it.
  const crashMove: { healthy: number; frozen: number } = { healthy: Number.NaN, frozen: Number.NaN };
  const joinUp: { healthy: number; frozen: number } = { healthy: Number.NaN, frozen: Number.NaN };

  it("a crashed host's job moves, and its restarted agent joins, as fast with the first endpoint frozen as with every member up", async () => {
    /** A job that runs on h3 (only it has the tag then), and may move to the others once they have it too. */
    const onH3 = async (job: string) => {
      expect((await knarr(h2, 'host', 'tag', 'h3', job)).exitCode).toBe(0);
      expect(await json(h2, 'job', 'run', '-d', '--name', job, '--tag', job, '--network', 'none', image, '--', ...SERVE)).toMatchObject({
        host: 'h3',
        state: 'running',
      });
      for (const h of ['h1', 'h2']) expect((await knarr(h2, 'host', 'tag', h, job)).exitCode).toBe(0);
    };
    /** SIGKILL of h3's agent; the time until the job's container runs on another host. */
    const crashAndMove = async (job: string) => {
      await crashAgent(h3);
      const t = Date.now();
      const elsewhere = async () => (await Promise.all([h1, h2].map((h) => h.dockerd.docker('ps', '-q', '--filter', `label=knarr.job=${job}`)))).join('');
      await eventually(async () => expect(await elsewhere()).not.toBe(''), 60_000, 100);
      return Date.now() - t;
    };
    /** h3's agent started again, once its host is down: the time until the fleet shows it up. */
    const rejoin = async () => {
      await eventually(async () => expect(await upNow()).toEqual(['h1', 'h2']), 30_000, 100);
      const t = Date.now();
      startAgent(h3);
      await eventually(async () => expect(await upNow()).toEqual(['h1', 'h2', 'h3']), 60_000, 100);
      return Date.now() - t;
    };

    await onH3('mv1');
    crashMove.healthy = await crashAndMove('mv1');
    joinUp.healthy = await rejoin();

    await onH3('mv2');
    // h1's member: the first endpoint of h1's agent and CLI, which may be the one to move the job.
    const wasLeader = await leader();
    const pid = etcdPid(h1);
    const registered = await registration(h1);
    expect(registered).not.toBeNull();
    freeze(h1);
    try {
      await sleep(300);
      crashMove.frozen = await crashAndMove('mv2');
      joinUp.frozen = await rejoin();
      expect(await registration(h1)).toBe(registered);
    } finally {
      thaw(pid);
    }
    console.info(
      `crashed host's job moved after ${crashMove.healthy} ms healthy, ${crashMove.frozen} ms with h1's member frozen (the leader was ${wasLeader}; ` +
        `lease 2 s, restart grace 4 s); ` +
        `its agent restarted was up after ${joinUp.healthy} ms healthy, ${joinUp.frozen} ms frozen`,
    );
    for (const job of ['mv1', 'mv2']) expect((await knarr(h2, 'job', 'rm', job)).exitCode).toBe(0);
  }, 240_000);

  it("the first endpoint frozen: a crashed host's job moves within the healthy time plus 1 s", () => {
    expect(crashMove.frozen).toBeLessThan(crashMove.healthy + 1_000);
  });

  it('the first endpoint frozen: a restarted agent joins within the healthy time plus 1 s', () => {
    expect(joinUp.frozen).toBeLessThan(joinUp.healthy + 1_000);
  });

  it('its own member frozen: a new agent joins, and op wait returns as soon as the operation ends', async () => {
    // The test's own client stands for the agent that ends the operation.
    const ops = new OpRepo(await fleetStore(), 'default');
    /** op wait from h3's CLI on an operation of a host with no agent, ended by the test once the wait is under way. */
    const opWait = async () => {
      const op = await ops.submit('test.noop', {}, 'nohost');
      const waiting = knarr(h3, '--json', 'op', 'wait', op.id, '--timeout', '30');
      await sleep(2_500);
      const t = Date.now();
      await ops.update(op.id, (o) => ({ ...o, status: 'done' }));
      const r = await waiting;
      expect(r.exitCode, String(r.stderr)).toBe(0);
      expect(JSON.parse(String(r.stdout)).status).toBe('done');
      return Date.now() - t;
    };
    /** h3's agent killed, and started again once its host is down: the time until the fleet shows it up. */
    const restart = async (meanwhile: () => void) => {
      await crashAgent(h3);
      await eventually(async () => expect(await upNow()).toEqual(['h1', 'h2']), 30_000, 100);
      meanwhile();
      await sleep(300);
      const t = Date.now();
      startAgent(h3);
      await eventually(async () => expect(await upNow()).toEqual(['h1', 'h2', 'h3']), 60_000, 100);
      return Date.now() - t;
    };
    const healthyWait = await opWait();
    const healthyJoin = await restart(() => undefined);
    // h3's own member: the first endpoint of h3's CLI and of the agent started now.
    const wasLeader = await leader();
    const pid = etcdPid(h3);
    let joined = Number.NaN;
    let frozenWait = Number.NaN;
    try {
      joined = await restart(() => freeze(h3));
      frozenWait = await opWait();
    } finally {
      thaw(pid);
    }
    console.info(
      `h3's member frozen (the leader was ${wasLeader}): its new agent was up after ${joined} ms (healthy: ${healthyJoin} ms); ` +
        `op wait on h3 returned ${frozenWait} ms after the operation ended (healthy: ${healthyWait} ms)`,
    );
    // Its start probes its own member once (1 s) before it goes to the others; a frozen leader adds etcd's election (1-2 s).
    expect(joined).toBeLessThan(healthyJoin + 3_000);
    expect(frozenWait).toBeLessThan(healthyWait + 1_000);
  }, 180_000);

  it('two members killed: every command exits 6 within the deadline; etcd up brings both back with their data', async () => {
    // The test before froze a member: every agent is up again (its lease renewed) before a job is pinned to one.
    await eventually(async () => expect(await upHosts(h1)).toEqual(['h1', 'h2', 'h3']), 30_000);
    const before = await json(h1, 'job', 'run', '-d', '--name', 'kept', '--host', 'h2', '--network', 'none', image, '--', 'sleep', '3600');
    expect(before).toMatchObject({ name: 'kept' });
    process.kill(etcdPid(h2), 'SIGKILL');
    process.kill(etcdPid(h3), 'SIGKILL');
    const times: Record<string, number> = {};
    for (const argv of [
      ['host', 'list'],
      ['job', 'list'],
      ['job', 'show', 'kept'],
      ['job', 'stop', 'kept'],
      ['etcd', 'members'],
    ]) {
      const r = await timed(h1, ...argv);
      times[argv.join(' ')] = r.ms;
      expect(r.exitCode, `${argv.join(' ')}: ${String(r.stdout)} ${String(r.stderr)}`).toBe(6);
      expect(r.ms).toBeLessThan(8_000);
    }
    console.info(`two members killed, exit 6 after (ms): ${JSON.stringify(times)}`);

    for (const h of [h2, h3]) {
      const back = await knarr(h, '--json', 'etcd', 'up');
      expect(back.exitCode, String(back.stderr)).toBe(0);
      expect(JSON.parse(String(back.stdout)).action).toBe('started');
    }
    await eventually(
      async () =>
        expect(await voters(h1)).toEqual([
          ['h1', false, true],
          ['h2', false, true],
          ['h3', false, true],
        ]),
      30_000,
    );
    // Written before the loss, unchanged by the refused stop, and every host sees it.
    for (const h of [h1, h2, h3]) expect(await json(h, 'job', 'show', 'kept')).toMatchObject({ name: 'kept', host: 'h2', desired: 'running' });
    await eventually(async () => expect(await upHosts(h3)).toEqual(['h1', 'h2', 'h3']), 30_000);
  }, 180_000);
});
