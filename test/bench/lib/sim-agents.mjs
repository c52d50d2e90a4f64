// A child of test/bench/fleet-idle.mjs: runs many of knarr's real agents (the Agent class of `knarr daemon`, each with
// its own etcd3 store, lease, watches, reconciler and operation runner) in one process against one etcd. The hosts
// have no containers: each agent's docker engine is a stub on a unix socket that answers the few calls an idle
// agent makes (/_ping, an empty container list, an events stream that stays open); one dockerd per simulated host
// is what cannot be run here.
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = (p) => fileURLToPath(new URL(`../../../dist/${p}`, import.meta.url));
const { Agent } = await import(dist('daemon/agent.js'));
const { connectEtcd3 } = await import(dist('state/etcd3-store.js'));
const { HostRepo } = await import(dist('state/hosts.js'));
const { OpRunner } = await import(dist('ops/runner.js'));

/** The docker engine of a host with no containers. */
function stubEngine(sock) {
  const events = new Set();
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/_ping') return res.writeHead(200, { 'api-version': '1.41', 'content-type': 'text/plain' }).end('OK');
    if (/^\/v[\d.]+\/containers\/json$/.test(path)) return res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
    if (/^\/v[\d.]+\/events$/.test(path)) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      events.add(res);
      res.on('close', () => events.delete(res));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: `${req.method} ${path}: not in the simulation` }));
  });
  return new Promise((resolve) =>
    server.listen(sock, () =>
      resolve({
        close: () => {
          for (const r of events) r.destroy();
          server.close();
        },
      }),
    ),
  );
}

const agents = [];
const errors = [];
const log = (line) => {
  if (/cannot|error|not reachable|refused|failed/i.test(line) && errors.length < 20) errors.push(line);
};

async function startOne(name, o, sock) {
  // Longer deadlines than the agent's 1 s: this machine is shared, and a storm of 1,000 agents starting is no idle fleet.
  const store = await connectEtcd3([o.etcd], { attemptTimeoutMs: 10_000, deadlineMs: 60_000 });
  const ctx = { config: { fleet: o.fleet, stateDir: join(o.dir, name) }, runner: { dryRun: false }, opHandlers: {} };
  mkdirSync(ctx.config.stateDir, { recursive: true });
  const agent = new Agent(
    {
      name,
      tags: [],
      listen: { host: '127.0.0.1', port: 0 },
      ttlSeconds: o.ttl,
      tokenFile: join(ctx.config.stateDir, 'agent.token'),
      dockerSocket: sock,
      fleet: o.fleet,
      advertise: '127.0.0.1',
      prune: false,
      pidFile: join(ctx.config.stateDir, 'agent.json'),
      dotBinds: async () => [],
      mode: 'recovery',
      share: null,
      opRetentionMs: 7 * 86_400_000,
      restartGraceSeconds: 30,
      ops: (lease) => new OpRunner(ctx, store, name, 'agent', lease, log),
    },
    store,
    new HostRepo(store, o.fleet),
    log,
  );
  const stopped = new AbortController();
  try {
    await agent.start(() => 'x'.repeat(32), stopped.signal);
  } catch (e) {
    // Started again from scratch, as a supervisor would restart the agent.
    stopped.abort();
    await agent.stop().catch(() => undefined);
    await store.close();
    throw e;
  }
  const serving = agent.serve(stopped.signal);
  agents.push({ agent, store, stopped, serving });
}

process.on('message', async (m) => {
  if (m.cmd === 'start') {
    const sock = join(m.dir, `engine-${process.pid}.sock`);
    const engine = await stubEngine(sock);
    process.once('disconnect', () => process.exit(0));
    // A few at a time: a fleet's agents do not all start in the same millisecond either.
    const queue = [...m.names];
    let failed = 0;
    await Promise.all(
      Array.from({ length: m.concurrency }, async () => {
        for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
          for (let attempt = 1; ; attempt++) {
            const e = await startOne(name, m, sock).then(
              () => null,
              (err) => err,
            );
            if (e === null) break;
            if (errors.length < 20) errors.push(`${name} (attempt ${attempt}): ${e.message}`);
            if (attempt === 5) {
              failed++;
              break;
            }
          }
          process.send({ up: agents.length, failed });
        }
      }),
    );
    process.send({ ready: agents.length, failed, errors: errors.splice(0) });
    process.on('message', async (n) => {
      if (n.cmd === 'rss') process.send({ rss: process.memoryUsage().rss, errors: errors.splice(0) });
      if (n.cmd === 'stop') {
        // As `knarr host leave` would, so the etcd left behind holds no live leases (it is deleted next anyway).
        await Promise.all(
          agents.map(async (a) => {
            a.stopped.abort();
            await a.serving.catch(() => undefined);
            await a.agent.stop().catch(() => undefined);
            await a.store.close();
          }),
        );
        engine.close();
        process.send({ stopped: true });
        process.exit(0);
      }
    });
  }
});
