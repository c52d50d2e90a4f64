import { createServer, request, type Server } from 'node:http';
import { PassThrough } from 'node:stream';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext, loadConfig } from '../../src/cli/context.js';
import type { FleetEvent } from '../../src/core/events.js';
import { OpRunner, type OpHandler } from '../../src/ops/runner.js';
import { EventLog, recordEvent } from '../../src/state/events.js';
import { fleetKeys } from '../../src/state/keys.js';
import { OpRepo } from '../../src/state/ops.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { spawnAgent, stopAgents, type AgentUnderTest } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { haveDockerd, startDockerd, type Dockerd } from '../harness/dockerd.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('events', haveTools('etcd', 'etcdctl'), 'etcd is not installed (Debian packages etcd-server, etcd-client)');
const bin = new URL('../../bin/knarr', import.meta.url).pathname;

/** The fleet's name is 3 characters: its events prefix is then 18 bytes, whose base64 is a prefix of any events key's. */
const FLEET = 'evt';

type ProxyMode = 'open' | 'frozen' | 'dead' | 'down';

/**
 * A proxy in front of etcd that passes every request but those for the event log, which it leaves
 * unanswered (frozen) or cuts (dead): etcd as an event write sees it when it stops answering. Down cuts every request.
 */
async function eventFreezingProxy(target: string): Promise<{ url: string; mode: ProxyMode; close(): Promise<void>; cut(): void }> {
  const events = Buffer.from(fleetKeys(FLEET).root + 'events/').toString('base64');
  const state = { mode: 'open' as ProxyMode };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (state.mode === 'down') return req.socket.destroy();
      if (state.mode !== 'open' && body.toString('utf8').includes(events)) {
        if (state.mode === 'dead') req.socket.destroy();
        return;
      }
      const up = request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    cut: () => server.closeAllConnections(),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

describe.skipIf(!run)('the fleet event log', () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  let store: Store;
  const k = (argv: string[], stateDir = `${tmp.path}/state`) => knarr(['--etcd', etcd.url, '--fleet', FLEET, '--state-dir', stateDir, ...argv]);
  const events = async (...filters: string[]): Promise<FleetEvent[]> => {
    const r = await k(['--json', 'events', '-n', '0', ...filters]);
    expect(r.code, r.stderr).toBe(0);
    return r.json();
  };
  const eventsOf = async (fleet: string, ...filters: string[]): Promise<FleetEvent[]> => {
    const r = await knarr(['--etcd', etcd.url, '--fleet', fleet, '--json', 'events', '-n', '0', ...filters]);
    expect(r.code, r.stderr).toBe(0);
    return r.json();
  };

  beforeAll(async () => {
    tmp = await tempDir('knarr-events-');
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
    await tmp?.cleanup();
  });

  it('stays bounded and gapless under two writers at once, each on its own connection', async () => {
    const other = await connectEtcd([etcd.url]);
    try {
      const fleet = 'bounded';
      const write = (s: Store, who: string) => async () => {
        const log = new EventLog(s, fleet, 100);
        for (let i = 0; i < 40; i++) await log.append({ kind: 'job', object: `${who}-${i}`, host: who, event: 'started', message: '' });
      };
      await Promise.all([write(store, 'a')(), write(other, 'b')()]);
      // Every write got its own number: 80 events, numbered 1 to 80, each written once.
      const all = await new EventLog(store, fleet, 100).list();
      expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 80 }, (_, i) => 1 + i));
      expect(new Set(all.map((e) => e.object)).size).toBe(80);
      // A writer trims the log to its size in the same transaction.
      await new EventLog(other, fleet, 20).append({ kind: 'job', object: 'last', host: 'b', event: 'started', message: '' });
      const kept = await new EventLog(store, fleet, 20).list();
      expect(kept.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 62 + i));
      expect(await store.get(fleetKeys(fleet).eventSeq)).toBe('81');
    } finally {
      await other.close();
    }
  });

  it('lists the last events as a table, filtered by kind, host and age; bad filters are refused by name', async () => {
    const fleet = 'listed';
    const keys = fleetKeys(fleet);
    // An event of two hours ago, as its writer left it.
    const old: FleetEvent = {
      seq: 1,
      at: new Date(Date.now() - 7_200_000).toISOString(),
      kind: 'job',
      object: 'old',
      host: 'h1',
      event: 'exited',
      message: 'exit code 1',
    };
    await store.put(keys.event(1), JSON.stringify(old));
    await store.put(keys.eventSeq, '1');
    await recordEvent(store, fleet, { kind: 'job', object: 'web', host: 'h1', event: 'started', message: 'abc' });
    await recordEvent(store, fleet, { kind: 'host', object: 'h2', host: 'h2', event: 'down', message: "its agent's lease lapsed" });
    await recordEvent(store, fleet, { kind: 'dot', object: 'd1', host: 'h2', event: 'commit', message: 'master x' });
    const kl = (...argv: string[]) => knarr(['--etcd', etcd.url, '--fleet', fleet, 'events', ...argv]);
    const table = await kl();
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^TIME +KIND +OBJECT +HOST +EVENT +MESSAGE$/);
    expect(table.stdout).toMatch(/^2h ago +job +old +h1 +exited +exit code 1$/m);
    expect(table.stdout).toMatch(/^(now|\d+s ago) +host +h2 +h2 +down +its agent's lease lapsed$/m);
    const objects = async (...argv: string[]) => ((await kl('--json', ...argv)).json() as FleetEvent[]).map((e) => e.object);
    expect(await objects()).toEqual(['old', 'web', 'h2', 'd1']);
    expect(await objects('-n', '2')).toEqual(['h2', 'd1']);
    expect(await objects('--kind', 'job')).toEqual(['old', 'web']);
    expect(await objects('--host', 'h2')).toEqual(['h2', 'd1']);
    expect(await objects('--since', '1h')).toEqual(['web', 'h2', 'd1']);
    expect(await objects('--since', old.at)).toEqual(['old', 'web', 'h2', 'd1']);
    const kind = await kl('--kind', 'jobs');
    expect(kind.code).toBe(2);
    expect(kind.stderr).toMatch(/--kind: unknown kind "jobs"; use one of job, op, host, dot, cluster, env/);
    expect((await kl('-n', 'all')).stderr).toMatch(/--tail: "all" is not a count/);
    expect((await kl('--since', 'lately')).stderr).toMatch(/--since: "lately" is not an age/);
  });

  it('-f prints events written after it started, through a compaction and a lost connection, and exits 0 on SIGTERM', async () => {
    await recordEvent(store, FLEET, { kind: 'dot', object: 'before', host: 'h1', event: 'commit', message: 'first' });
    const proxy = await eventFreezingProxy(etcd.url);
    const follower: ResultPromise = execa(bin, ['--etcd', proxy.url, '--fleet', FLEET, '--json', 'events', '-f', '--kind', 'dot'], { reject: false });
    let out = '';
    follower.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    try {
      await eventually(async () => expect(out).toContain('"object":"before"'), 15_000);
      await recordEvent(store, FLEET, { kind: 'job', object: 'not-a-dot', host: 'h1', event: 'started', message: '' });
      await recordEvent(store, FLEET, { kind: 'dot', object: 'after', host: 'h1', event: 'commit', message: 'second' });
      await eventually(async () => expect(out).toContain('"object":"after"'), 10_000);
      const status = JSON.parse((await execa('etcdctl', ['--endpoints', etcd.url, 'endpoint', 'status', '-w', 'json'])).stdout) as {
        Status: { header: { revision: number } };
      }[];
      await execa('etcdctl', ['--endpoints', etcd.url, 'compact', String(status[0]!.Status.header.revision)]);
      await recordEvent(store, FLEET, { kind: 'dot', object: 'compacted', host: 'h1', event: 'commit', message: 'third' });
      await eventually(async () => expect(out).toContain('"object":"compacted"'), 10_000);
      // The connection goes, and an event is written while it is away: the watch made again cannot see it, the re-read does.
      proxy.mode = 'down';
      proxy.cut();
      await recordEvent(store, FLEET, { kind: 'dot', object: 'unwatched', host: 'h1', event: 'commit', message: 'fourth' });
      await new Promise((r) => setTimeout(r, 1500));
      proxy.mode = 'open';
      await eventually(async () => expect(out).toContain('"object":"unwatched"'), 10_000);
    } finally {
      follower.kill('SIGTERM');
    }
    const r = await follower;
    await proxy.close();
    expect(r.exitCode, r.stderr as string).toBe(0);
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as FleetEvent);
    expect(lines.map((e) => e.object)).toEqual(['before', 'after', 'compacted', 'unwatched']);
  }, 60_000);

  it("an etcd that stops answering the event log's writes delays a dot commit by at most the event timeout, and the commit stands", async () => {
    const proxy = await eventFreezingProxy(etcd.url);
    const state = `${tmp.path}/dot-state`;
    const kp = (argv: string[]) => knarr(['--etcd', proxy.url, '--fleet', FLEET, '--state-dir', state, ...argv]);
    try {
      expect((await kp(['pool', 'init', '--name', 'evp', '--driver', 'dir'])).code).toBe(0);
      expect((await kp(['dot', 'init', 'd1'])).code).toBe(0);
      for (const mode of ['frozen', 'dead'] as const) {
        proxy.mode = mode;
        const started = Date.now();
        const r = await kp(['dot', 'commit', 'd1', '-m', `while etcd's event log is ${mode}`]);
        const took = Date.now() - started;
        expect(r.code, r.stderr).toBe(0);
        // The event write waits 1 s at most; etcd's own request timeout (5 s) is never reached.
        expect(took).toBeLessThan(3000);
      }
      proxy.mode = 'open';
      const log = await kp(['--json', 'dot', 'log', 'd1']);
      expect(log.json().map((c: { message: string }) => c.message)).toEqual(["while etcd's event log is dead", "while etcd's event log is frozen"]);
      // Written once etcd answers again.
      expect((await kp(['dot', 'commit', 'd1', '-m', 'answered'])).code).toBe(0);
      const seen = (await events('--kind', 'dot')).filter((e) => e.object === 'd1');
      expect(seen.map((e) => e.event)).toEqual(['commit']);
      expect(seen[0]!.message).toMatch(/ answered$/);
      // dot show lists it: a field of its JSON, a section of its table.
      const show = await kp(['--json', 'dot', 'show', 'd1']);
      expect(show.json().events.map((e: FleetEvent) => e.event)).toEqual(['commit']);
      const table = await kp(['dot', 'show', 'd1']);
      expect(table.stdout).toMatch(/\n\nTIME +EVENT +HOST +MESSAGE\n(now|\d+s ago) +commit +\S+ +master \S+ answered\n$/);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it("an operation's queue, steps and end are events, and op show lists them", async () => {
    const config = await loadConfig({ etcd: etcd.url, fleet: FLEET, stateDir: `${tmp.path}/op-state` }, {}, tmp.path);
    const base = createContext(config, { stderr: new PassThrough(), stderrIsTTY: false, env: {}, cwd: tmp.path, signal: new AbortController().signal });
    const steps: OpHandler = {
      async run(r) {
        await r.progress(0, 2, 'making the first thing');
        await r.progress(1, 2, 'making the second thing');
        if (r.op.args.fail) throw new Error('the second thing would not be made');
        await r.progress(2, 2, 'made both');
      },
      async undo() {},
    };
    const ctx = { ...base, opHandlers: { 'test.steps': async () => steps } };
    const repo = new OpRepo(store, FLEET);
    const ok = await repo.submit('test.steps', {}, 'h1');
    const bad = await repo.submit('test.steps', { fail: true }, 'h1');
    const lease = await store.grantLease(10);
    await new OpRunner(
      ctx,
      store,
      'h1',
      'test',
      () => lease,
      () => undefined,
    ).drain();
    await store.revokeLease(lease);
    const of = async (id: string) => (await events('--kind', 'op')).filter((e) => e.object === id).map((e) => `${e.event} ${e.message}`);
    expect(await of(ok.id)).toEqual([
      'queued test.steps',
      expect.stringMatching(/^running test\.steps started by test:\d+$/),
      'step 0/2 making the first thing',
      'step 1/2 making the second thing',
      'step 2/2 made both',
      'done test.steps',
    ]);
    expect((await of(bad.id)).slice(-2)).toEqual(['step 1/2 making the second thing', 'failed test.steps: the second thing would not be made']);
    const show = await k(['--json', 'op', 'show', ok.id]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.json().events.map((e: FleetEvent) => e.event)).toEqual(['running', 'step', 'step', 'step', 'done']);
  });

  describe('with agents', () => {
    const agents: Record<string, AgentUnderTest> = {};
    const startAgent = async (name: string, env: Record<string, string>, stateDir = `${tmp.path}/${name}`, fleet = FLEET) => {
      agents[name] = spawnAgent({ etcd: etcd.url, fleet, stateDir, name, listen: `127.0.0.1:${await freePort()}`, env });
    };
    const noDocker = () => ({ DOCKER_HOST: `unix://${tmp.path}/no-docker.sock` });
    const hostEvents = async (host: string) => (await events('--kind', 'host', '--host', host)).map((e) => e.event);
    afterAll(async () => {
      await stopAgents(Object.values(agents));
    });

    it('a host killed is down once, whichever of the others sees it first; a host stopped says so itself', async () => {
      for (const name of ['ha', 'hb', 'hc']) await startAgent(name, noDocker());
      await eventually(async () => {
        for (const name of ['ha', 'hb', 'hc']) expect(await hostEvents(name)).toEqual(['up']);
      });
      await agents.hc!.stop('SIGKILL');
      await eventually(async () => expect(await hostEvents('hc')).toEqual(['up', 'down']), 20_000);
      // Both live agents saw it go; a while later there is still one down.
      await new Promise((r) => setTimeout(r, 3000));
      const down = (await events('--kind', 'host', '--host', 'hc')).filter((e) => e.event === 'down');
      expect(down).toHaveLength(1);
      expect(down[0]!.message).toMatch(/its agent's lease lapsed \(seen by h[ab]\)/);

      expect((await agents.hb!.stop('SIGTERM')).result.exitCode).toBe(0);
      await eventually(async () => expect(await hostEvents('hb')).toEqual(['up', 'down']));
      const show = await k(['--json', 'host', 'show', 'hb']);
      expect(show.json().events.map((e: FleetEvent) => e.event)).toEqual(['up', 'down']);
      // Back again: up once more.
      await startAgent('hc', noDocker());
      await eventually(async () => expect(await hostEvents('hc')).toEqual(['up', 'down', 'up']));
      await new Promise((r) => setTimeout(r, 3000));
      expect(await hostEvents('hb')).toEqual(['up', 'down']);
    }, 120_000);

    it('the only agent of a fleet, killed and started again, says its last run ended without stopping', async () => {
      const fleet = 'alone';
      const seen = async () => (await eventsOf(fleet, '--kind', 'host')).map((e) => `${e.event}: ${e.message}`);
      await startAgent('solo', noDocker(), `${tmp.path}/solo`, fleet);
      await eventually(async () => expect(await seen()).toEqual(['up: its agent started']));
      await agents.solo!.stop('SIGKILL');
      await startAgent('solo', noDocker(), `${tmp.path}/solo`, fleet);
      await eventually(async () =>
        expect(await seen()).toEqual([
          'up: its agent started',
          'down: its last agent ended without stopping (seen as it started again)',
          'up: its agent started',
        ]),
      );
      await agents.solo!.stop('SIGTERM');
      expect((await seen()).slice(-1)).toEqual(['down: its agent stopped']);
    }, 60_000);

    it.skipIf(!integration('events with a job', haveDockerd(), 'dockerd, docker or busybox-static is missing'))(
      "a daemonized job's start and exit (with its code) are events, and job show lists them",
      async () => {
        let d: Dockerd | null = null;
        try {
          d = await startDockerd(`${tmp.path}/docker`);
          const state = `${tmp.path}/job-state`;
          await startAgent('hj', d.env, state);
          await eventually(async () => expect(await hostEvents('hj')).toContain('up'));
          const r = await k(
            ['job', 'run', '-d', '--name', 'quits', '--host', 'hj', '--restart', 'no', '--network', 'none', d.image, '--', 'sh', '-c', 'sleep 1; exit 3'],
            state,
          );
          expect(r.code, r.stderr).toBe(0);
          await eventually(async () => {
            const seen = (await events('--kind', 'job')).filter((e) => e.object === 'quits').map((e) => `${e.event} ${e.host} ${e.message || '-'}`);
            expect(seen).toEqual(['placed hj -', expect.stringMatching(/^started hj [0-9a-f]{12}$/), 'exited hj exit code 3']);
          }, 30_000);
          const show = await k(['job', 'show', 'quits'], state);
          expect(show.stdout).toMatch(/\n\nTIME +EVENT +HOST +MESSAGE\n.*placed.*\n.*started.*\n.*exited +hj +exit code 3\n$/);
          expect((await k(['job', 'rm', 'quits'], state)).code).toBe(0);
        } finally {
          await agents.hj?.stop('SIGTERM');
          await d?.stop();
        }
      },
      180_000,
    );
  });
});
