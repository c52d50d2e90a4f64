import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  const etcdPid = (h: NetHost) => (JSON.parse(readFileSync(`${h.dir}/state/etcd/server.json`, 'utf8')) as { pid: number }).pid;
  const voters = async (h: NetHost) =>
    ((await json(h, 'etcd', 'members')) as { name: string; learner: boolean; healthy: boolean }[]).map((m) => [m.name, m.learner, m.healthy]);
  const upHosts = async (h: NetHost) =>
    ((await json(h, 'host', 'list')) as { name: string; up: boolean }[])
      .filter((x) => x.up)
      .map((x) => x.name)
      .sort();
  const freeze = (h: NetHost) => {
    const pid = etcdPid(h);
    stopped.add(pid);
    process.kill(pid, 'SIGSTOP');
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
    for (const h of [h1, h2, h3])
      agents.push(
        h.spawn(KNARR, [...base(h), 'daemon', '--name', h.name, '--listen', `${h.ip}:7946`, '--ttl', '2', '--restart-grace', '4', '--token-file', tokenFile], {
          env,
          extendEnv: false,
          reject: false,
          stdio: ['ignore', 'ignore', 'pipe'],
        }),
      );
    await eventually(async () => expect(await upHosts(h1)).toEqual(['h1', 'h2', 'h3']), 30_000);
  }, 240_000);

  afterAll(async () => {
    // A frozen member would outlive SIGTERM: thaw it first, whatever failed.
    for (const pid of [...stopped]) thaw(pid);
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

  // Measured while h3's member is dead; the check that does not hold yet reads it below.
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
    const d = await json(h2, 'job', 'run', '-d', '--name', 'onh3', '--host', 'h3', '--network', 'none', image, '--', 'sleep', '3600');
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

  // Known failing: a job stop waits for the agent, and h3's agent, whose own member is dead (connections refused),
  // applies it only after about 10 s (measured 10.3 s; job restart and job rm after it take 0.45 s): its etcd3 watch
  // seems to come back on another member only then. The fix belongs in the agent's store client.
  it.fails('one member killed: an intent change on that host applies within 3 s', () => {
    expect(stopOnDeadMember).toBeLessThan(3_000);
  });

  // Measured while the first member is frozen; the checks that do not hold yet read them below.
  let applied = Number.NaN;
  let ownFrozenExtra = Number.NaN;

  it('the first endpoint frozen: an intent change still applies, host list elsewhere pays no extra', async () => {
    const healthy: Record<string, number[]> = { h1: [], h2: [] };
    for (const h of [h1, h2, h1, h2, h1, h2]) {
      const r = await timed(h, '--json', 'host', 'list');
      expect(r.exitCode, String(r.stderr)).toBe(0);
      healthy[h.name]!.push(r.ms);
    }
    const d = await knarr(h1, '--json', 'job', 'run', '-d', '--name', 'idle', '--host', 'h1', '--network', 'none', image, '--', 'sleep', '3600');
    expect(d.exitCode, String(d.stderr)).toBe(0);
    const running = () => h1.dockerd.docker('ps', '-q', '--filter', 'label=knarr.job=idle');
    await eventually(async () => expect(await running()).not.toBe(''));

    // h1's own member: the first endpoint of h1's CLI and of its agent, which runs the job.
    const pid = etcdPid(h1);
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
        `frozen first member: job stop took ${stop.ms} ms, applied in ${applied} ms; host list on h1 healthy ${healthy.h1!.join('/')} ms, ` +
          `frozen ${frozen.h1!.join('/')} ms; on h2 healthy ${healthy.h2!.join('/')} ms, frozen ${frozen.h2!.join('/')} ms`,
      );
      expect(median(frozen.h2!) - median(healthy.h2!)).toBeLessThan(1_000);
      expect(Math.max(...frozen.h2!) - median(healthy.h2!)).toBeLessThan(1_500);
    } finally {
      thaw(pid);
    }
    expect((await knarr(h1, 'job', 'rm', 'idle')).exitCode).toBe(0);
  }, 180_000);

  // Known failing: the agent's etcd3 watch notices the frozen member only by HTTP/2 pings (5 s at the least) and its
  // calls have 8 s in all, so the change waits 12-14 s (measured); the fix belongs in the agent's store client.
  it.fails('the first endpoint frozen: the intent change applies within 3 s', () => {
    expect(applied).toBeLessThan(3_000);
  });

  // Its own member's health probe (1 s) and the 150 ms the client gives it first; the probe took 2 s before.
  it("the first endpoint frozen: host list on the frozen member's host pays at most ~1 s extra", () => {
    expect(ownFrozenExtra).toBeLessThan(1_500);
  });

  it('two members killed: every command exits 6 within the deadline; etcd up brings both back with their data', async () => {
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
