import { writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ambassador } from '../../src/daemon/ambassador.js';
import { Balancers } from '../../src/daemon/balancer.js';
import { BalancerRepo, type BalancerRecord } from '../../src/state/balancers.js';
import { EventLog } from '../../src/state/events.js';
import { JobRepo, type ServiceRecord } from '../../src/state/jobs.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { agentUnderTest, type AgentUnderTest } from '../harness/agent.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { freePort } from '../harness/ports.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('balancer', haveTools('etcd'), 'etcd is not installed (Debian package etcd-server)');

/** A backend on loopback that answers each connection with its tag and closes. */
async function backend(tag: string): Promise<{ port: number; server: Server }> {
  const server = createServer((c) => {
    c.on('error', () => undefined);
    c.end(`${tag}\n`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as { port: number }).port, server };
}

/** What a connection to 127.0.0.1:port reads before it closes: '' when closed at once, null when refused. */
function ask(port: number, timeoutMs = 10_000): Promise<string | null> {
  return new Promise((resolve) => {
    const c = connect({ host: '127.0.0.1', port });
    let text = '';
    let connected = false;
    c.setTimeout(timeoutMs, () => c.destroy());
    c.on('connect', () => (connected = true));
    c.on('data', (b) => (text += b.toString()));
    c.on('error', () => undefined);
    c.on('close', () => resolve(connected ? text.trim() : null));
  });
}

/** How many bytes a reader that pauses now and then gets from 127.0.0.1:port before the connection closes. */
function slowRead(port: number): Promise<number> {
  return new Promise((resolve) => {
    const c = connect({ host: '127.0.0.1', port });
    let n = 0;
    c.on('data', (b) => {
      n += b.length;
      c.pause();
      setTimeout(() => c.resume(), 2);
    });
    c.on('error', () => undefined);
    c.on('close', () => resolve(n));
  });
}

const closeServer = (s: Server) => new Promise<void>((r) => s.close(() => r()));

/**
 * A TCP port whose connects hang: a listener (backlog 1) in a process whose event loop is blocked, so it never accepts,
 * with its accept queue filled here; the kernel then drops further SYNs.
 */
async function stalled(): Promise<{ port: number; stop: () => void }> {
  const code =
    "require('net').createServer().listen({port: 0, host: '127.0.0.1', backlog: 1}, function () {" +
    ' console.log(this.address().port); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); })';
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = await new Promise<number>((r) => child.stdout.once('data', (b: Buffer) => r(Number(String(b).trim()))));
  const fillers: Socket[] = [];
  for (let i = 0; i < 8; i++) {
    const c = connect({ host: '127.0.0.1', port });
    fillers.push(c);
    c.on('error', () => undefined);
    const made = await new Promise<boolean>((r) => {
      c.setTimeout(500, () => r(false));
      c.once('connect', () => r(true));
    });
    if (!made) break;
  }
  return {
    port,
    stop: () => {
      for (const c of fillers) c.destroy();
      child.kill('SIGKILL');
    },
  };
}

describe.skipIf(!run)("an environment's balancer, served by the host's agent", () => {
  let etcd: EtcdInstance;
  let store: Store;
  let tmp: TempDir;
  const servers: Server[] = [];
  const stops: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    tmp = await tempDir('hb14-bal-');
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
  });
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
    for (const s of servers) s.close();
    await store?.close();
    await etcd?.stop();
    await tmp?.cleanup();
  });

  /** n backends registered as the services hb14-web-<i>-80. */
  async function backends(jobs: JobRepo, n: number, from = 1): Promise<{ name: string; tag: string; server: Server; port: number }[]> {
    const out = [];
    for (let i = from; i < from + n; i++) {
      const tag = `web-${i}`;
      const b = await backend(tag);
      servers.push(b.server);
      const name = `hb14-web-${i}-80`;
      await jobs.putService({ name, job: `hb14-web-${i}`, host: 'hb14-h9', address: '127.0.0.1', port: b.port, protocol: 'tcp' });
      out.push({ name, tag, ...b });
    }
    return out;
  }

  it('round robin over the backends; a dead or missing one skipped; backends changed in the record; stopped; port kept ' +
    'across a restart; lost collected', async () => {
    const fleet = uniqueName('hb14f');
    const jobs = new JobRepo(store, fleet);
    const repo = new BalancerRepo(store, fleet);
    const logs: string[] = [];
    const watching = new AbortController();
    let bal = new Balancers({ host: 'hb14-h1', fleet, advertise: '127.0.0.1' }, store, (l) => logs.push(l));
    stops.push(
      () => watching.abort(),
      () => bal.close(),
    );
    await bal.start(watching.signal);
    const [a, b, c, d] = await backends(jobs, 4);
    const record: BalancerRecord = { env: 'hb14shop', member: 'hb14shop-balancer-1', port: 0, backends: [a!.name, b!.name, c!.name], state: 'running' };
    await repo.put('hb14-h1', record);

    // It listens, writes its port back into the record, and points the environment's service here.
    const port = await eventually(async () => {
      const got = (await repo.get('hb14-h1', 'hb14shop'))!.record.port;
      expect(got).toBeGreaterThan(0);
      return got;
    });
    expect(bal.portOf('hb14shop')).toBe(port);
    await eventually(async () =>
      expect(await jobs.service('hb14shop')).toEqual({
        name: 'hb14shop',
        job: '',
        host: 'hb14-h1',
        address: '127.0.0.1',
        port,
        protocol: 'tcp',
      } satisfies ServiceRecord),
    );

    // Round robin: each backend once in three connections, in the same order again.
    const six: (string | null)[] = [];
    for (let i = 0; i < 6; i++) six.push(await ask(port));
    expect(new Set(six.slice(0, 3))).toEqual(new Set(['web-1', 'web-2', 'web-3']));
    expect(six.slice(3)).toEqual(six.slice(0, 3));

    // A large answer to a slow reader arrives whole, also after the backend closed its end.
    const big = createServer((conn) => {
      conn.on('error', () => undefined);
      conn.end(Buffer.alloc(8 * 1024 * 1024, 'x'));
    });
    await new Promise<void>((r) => big.listen(0, '127.0.0.1', () => r()));
    servers.push(big);
    await jobs.putService({
      name: 'hb14-big-80',
      job: 'hb14-big',
      host: 'hb14-h9',
      address: '127.0.0.1',
      port: (big.address() as { port: number }).port,
      protocol: 'tcp',
    });
    await repo.put('hb14-h1', { ...record, port, backends: ['hb14-big-80'] });
    await eventually(async () => expect(await slowRead(port)).toBe(8 * 1024 * 1024), 30_000);
    await repo.put('hb14-h1', { ...record, port });
    await eventually(async () => expect(await ask(port)).toMatch(/^web-[123]$/));

    // A backend that refuses is skipped: the next one answers, and no client is turned away.
    await closeServer(b!.server);
    const after: (string | null)[] = [];
    for (let i = 0; i < 6; i++) after.push(await ask(port));
    expect(new Set(after)).toEqual(new Set(['web-1', 'web-3']));

    // A backend added, one removed, one with no service: new connections follow the record at once.
    await repo.put('hb14-h1', { ...record, port, backends: [c!.name, 'hb14-nosuch-80', d!.name] });
    await eventually(async () => {
      const seen = new Set<string | null>();
      for (let i = 0; i < 6; i++) seen.add(await ask(port));
      expect(seen).toEqual(new Set(['web-3', 'web-4']));
    });
    // A node member's backend is its IP:PORT, reached without a service.
    await repo.put('hb14-h1', { ...record, port, backends: [c!.name, `127.0.0.1:${d!.port}`] });
    await eventually(async () => {
      const seen = new Set<string | null>();
      for (let i = 0; i < 6; i++) seen.add(await ask(port));
      expect(seen).toEqual(new Set(['web-3', 'web-4']));
    });
    await repo.put('hb14-h1', { ...record, port, backends: [c!.name, 'hb14-nosuch-80', d!.name] });

    // A backend that does not answer within 2 s is skipped too: a listener whose process never accepts, its queue full, so a connect hangs.
    const slow = await stalled();
    stops.push(slow.stop);
    await jobs.putService({ name: 'hb14-slow-80', job: 'hb14-slow', host: 'hb14-h9', address: '127.0.0.1', port: slow.port, protocol: 'tcp' });
    await repo.put('hb14-h1', { ...record, port, backends: ['hb14-slow-80', d!.name] });
    await eventually(async () => {
      const timed: number[] = [];
      for (let i = 0; i < 2; i++) {
        const t = Date.now();
        expect(await ask(port)).toBe('web-4');
        timed.push(Date.now() - t);
      }
      // One of the two went to the slow backend first, and was sent on after the 2 s.
      expect(Math.max(...timed)).toBeGreaterThanOrEqual(1900);
    }, 30_000);

    // No backend answers: the client is closed, having read nothing.
    await repo.put('hb14-h1', { ...record, port, backends: [b!.name, 'hb14-nosuch-80'] });
    await eventually(async () => expect(await ask(port)).toBe(''));
    expect(logs.join('\n')).toMatch(/balancer hb14shop: no backend of .* answered/);

    // Stopped: the listener closes and the service goes.
    await repo.put('hb14-h1', { ...record, port, state: 'stopped' });
    await eventually(async () => expect(await ask(port)).toBeNull());
    await eventually(async () => expect(await jobs.service('hb14shop')).toBeNull());

    // Running again, on the port it had; and a new Balancers (an agent restarted) keeps that port.
    await repo.put('hb14-h1', { ...record, port, backends: [a!.name] });
    await eventually(async () => expect(await ask(port)).toBe('web-1'));
    watching.abort();
    await bal.close();
    expect(await ask(port)).toBeNull();
    // The service stays for the next agent, which listens on the same port.
    expect((await jobs.service('hb14shop'))?.port).toBe(port);
    const again = new AbortController();
    bal = new Balancers({ host: 'hb14-h1', fleet, advertise: '127.0.0.1' }, store, (l) => logs.push(l));
    stops.push(
      () => again.abort(),
      () => bal.close(),
    );
    await bal.start(again.signal);
    expect(bal.portOf('hb14shop')).toBe(port);
    expect(await ask(port)).toBe('web-1');
    expect((await repo.get('hb14-h1', 'hb14shop'))!.record.port).toBe(port);

    // Lost: its host's agent (the collector) removes the record, closes the listener, drops its service, and says so.
    await repo.put('hb14-h1', { ...record, port, backends: [a!.name], state: 'lost' });
    await eventually(async () => expect(await repo.get('hb14-h1', 'hb14shop')).toBeNull());
    expect(await ask(port)).toBeNull();
    expect(await jobs.service('hb14shop')).toBeNull();
    expect(logs.join('\n')).toMatch(/collector: removed balancer hb14shop-balancer-1 of environment hb14shop/);
    await eventually(async () =>
      expect(await new EventLog(store, fleet).list()).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            kind: 'env',
            object: 'hb14shop',
            host: 'hb14-h1',
            event: 'collected',
            message: 'removed balancer hb14shop-balancer-1 of environment hb14shop',
          }),
        ]),
      ),
    );
  }, 120_000);

  it("the service is written and deleted only by its owner; a linked job's ambassador reaches the balancer", async () => {
    const fleet = uniqueName('hb14f');
    const jobs = new JobRepo(store, fleet);
    const repo = new BalancerRepo(store, fleet);
    const logs: string[] = [];
    const watching = new AbortController();
    const one = new Balancers({ host: 'hb14-h1', fleet, advertise: '127.0.0.1' }, store, (l) => logs.push(`h1 ${l}`));
    const two = new Balancers({ host: 'hb14-h2', fleet, advertise: '127.0.0.1' }, store, (l) => logs.push(`h2 ${l}`));
    const amb = new Ambassador('hb14-h3', fleet, store, jobs, (l) => logs.push(`amb ${l}`));
    stops.push(
      () => watching.abort(),
      () => one.close(),
      () => two.close(),
      () => amb.close(),
    );
    await one.start(watching.signal);
    await two.start(watching.signal);
    const [a, b] = await backends(jobs, 2, 11);
    const record: BalancerRecord = { env: 'hb14cart', member: 'hb14cart-balancer-1', port: 0, backends: [a!.name, b!.name], state: 'running' };
    await repo.put('hb14-h1', record);
    const first = await eventually(async () => {
      const s = await jobs.service('hb14cart');
      expect(s).toMatchObject({ host: 'hb14-h1', job: '' });
      return s!;
    });

    // A job linked to the environment's service (links: [hb14cart]) reaches a backend through the ambassador and the balancer.
    const through = await amb.ensure('hb14cart');
    const answers = new Set([await ask(through), await ask(through)]);
    expect(answers).toEqual(new Set(['web-11', 'web-12']));

    // The host went down: a new balancer on h2 takes the service over; the old record is marked lost.
    await repo.put('hb14-h2', { ...record, member: 'hb14cart-balancer-2' });
    const second = await eventually(async () => {
      const s = await jobs.service('hb14cart');
      expect(s).toMatchObject({ host: 'hb14-h2' });
      return s!;
    });
    expect(await ask(through)).toMatch(/^web-1[12]$/);
    // h1 collecting its lost record deletes no service of h2's.
    await repo.put('hb14-h1', { ...record, port: first.port, state: 'lost' });
    await eventually(async () => expect(await repo.get('hb14-h1', 'hb14cart')).toBeNull());
    expect(await jobs.service('hb14cart')).toEqual(second);
    expect(await ask(first.port)).toBeNull();
    // Nor does h1 stopping or losing anything else: the service is h2's until h2's record stops.
    await repo.put('hb14-h2', { ...record, member: 'hb14cart-balancer-2', port: second.port, state: 'stopped' });
    await eventually(async () => expect(await jobs.service('hb14cart')).toBeNull());
    // A record deleted closes the listener too (and drops nothing it does not own).
    await repo.put('hb14-h2', { ...record, member: 'hb14cart-balancer-2', port: second.port });
    await eventually(async () => expect((await jobs.service('hb14cart'))?.host).toBe('hb14-h2'));
    await jobs.putService({ ...second, host: 'hb14-h7' });
    await repo.delete('hb14-h2', 'hb14cart');
    await eventually(async () => expect(await ask(second.port)).toBeNull());
    expect((await jobs.service('hb14cart'))?.host).toBe('hb14-h7');
  }, 120_000);

  it('through a real agent: it serves a record placed on its host, collects a lost one at start, and keeps the port when restarted', async () => {
    const fleet = uniqueName('hb14f');
    const jobs = new JobRepo(store, fleet);
    const repo = new BalancerRepo(store, fleet);
    const [a, b] = await backends(jobs, 2, 21);
    // Left from before: a balancer replaced while this host was down.
    await repo.put('hb14-ha', { env: 'hb14old', member: 'hb14old-balancer-1', port: 0, backends: [], state: 'lost' });
    const stateDir = `${tmp.path}/agent-state`;
    const tokenFile = `${tmp.path}/agent.token`;
    writeFileSync(tokenFile, 'hb14-balancer-test-token\n', { mode: 0o600 });
    const spec = { etcd: etcd.url, fleet, stateDir, tokenFile, name: 'hb14-ha', listen: `127.0.0.1:${await freePort()}` };
    let agent: AgentUnderTest | null = await agentUnderTest(spec);
    stops.push(async () => void (await agent?.stop()));
    await eventually(async () => expect(await repo.get('hb14-ha', 'hb14old')).toBeNull());
    // The agent's log line reaches this process after the record is gone from the store.
    await eventually(async () => expect(agent!.log()).toMatch(/collector: removed balancer hb14old-balancer-1 of environment hb14old/));

    await repo.put('hb14-ha', { env: 'hb14shop', member: 'hb14shop-balancer-1', port: 0, backends: [a!.name, b!.name], state: 'running' });
    const service = await eventually(async () => {
      const s = await jobs.service('hb14shop');
      expect(s).toMatchObject({ host: 'hb14-ha', address: '127.0.0.1', job: '' });
      return s!;
    });
    expect((await repo.get('hb14-ha', 'hb14shop'))!.record.port).toBe(service.port);
    expect(new Set([await ask(service.port), await ask(service.port)])).toEqual(new Set(['web-21', 'web-22']));

    await agent.stop('SIGTERM');
    agent = null;
    expect(await ask(service.port)).toBeNull();
    agent = await agentUnderTest(spec);
    await eventually(async () => expect(await ask(service.port)).toMatch(/^web-2[12]$/));
    expect((await repo.get('hb14-ha', 'hb14shop'))!.record.port).toBe(service.port);
  }, 120_000);
});
