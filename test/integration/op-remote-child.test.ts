import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext, loadConfig } from '../../src/cli/context.js';
import { OperationFailedError } from '../../src/core/errors.js';
import type { OpRecord } from '../../src/core/ops.js';
import type { Context } from '../../src/ops/context.js';
import { OpRunner, type OpHandler } from '../../src/ops/runner.js';
import { OpRepo } from '../../src/state/ops.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('remote child operations', haveTools('etcd'), 'etcd is not installed (Debian package etcd-server)');
const FLEET = 'rch';

/**
 * A parent operation on one host with a child on another: the other host's runner runs the child, the parent
 * waits for it, a cancel of the parent reaches the child, and a parent resumed by a new runner waits for the same child.
 */
describe.skipIf(!run)('child operations on another host', () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  let store: Store;
  let repo: OpRepo;
  const made: string[] = [];
  const release: Record<string, () => void> = {};

  const handlers: Record<string, OpHandler> = {
    'test.parent': {
      async run(r) {
        const here = await r.child('here', 'test.part', { tag: `${r.op.id}/here` });
        const there = await r.child('there', 'test.part', { tag: `${r.op.id}/there` }, r.op.args.other as string);
        if (there.status !== 'done') throw new OperationFailedError(`${there.id} ${there.status}`);
        return { here: here.host, there: there.host };
      },
      async undo(r) {
        made.push(`undo ${r.op.id}`);
      },
    },
    'test.part': {
      async run(r) {
        made.push(`${r.op.host} ${r.op.args.tag as string}`);
        // The other host's part, while told to hold, waits at checkpoints until released (or cancelled).
        while (String(r.op.args.tag).endsWith('/there') && release.hold) {
          await r.checkpoint();
          await new Promise((res) => setTimeout(res, 100));
        }
        return r.op.host;
      },
      async undo(r) {
        made.push(`undo ${r.op.host} ${r.op.args.tag as string}`);
      },
    },
  };

  const runner = (ctx: Context, host: string, lease: string) =>
    new OpRunner(
      ctx,
      store,
      host,
      `runner-${host}`,
      () => lease,
      () => undefined,
    );
  let ctxOf: (host: string) => Promise<Context>;

  beforeAll(async () => {
    tmp = await tempDir('knarr-rchild-');
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
    repo = new OpRepo(store, FLEET);
    ctxOf = async (host) => {
      const config = await loadConfig({ etcd: etcd.url, fleet: FLEET, stateDir: `${tmp.path}/${host}` }, {}, tmp.path);
      const base = createContext(config, { stderr: new PassThrough(), stderrIsTTY: false, env: {}, cwd: tmp.path, signal: new AbortController().signal });
      return { ...base, opHandlers: Object.fromEntries(Object.entries(handlers).map(([k, h]) => [k, async () => h])) };
    };
  }, 60_000);

  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
    await tmp?.cleanup();
  });

  /** Drains h2 until stop is called: the other host's agent. */
  const serve = async (host: string) => {
    const lease = await store.grantLease(10);
    const r = runner(await ctxOf(host), host, lease);
    let on = true;
    const loop = (async () => {
      while (on) {
        await r.drain();
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    return async () => {
      on = false;
      await loop;
      await r.close();
      await store.revokeLease(lease);
    };
  };

  it("runs the child on its own host's runner while the parent waits; each host runs only its part", async () => {
    const stop = await serve('h2');
    try {
      const op = await repo.submit('test.parent', { other: 'h2' }, 'h1');
      const lease = await store.grantLease(10);
      await runner(await ctxOf('h1'), 'h1', lease).drain();
      const ended = (await repo.get(op.id))!;
      expect(ended.status, ended.error ?? '').toBe('done');
      expect(ended.result).toEqual({ here: 'h1', there: 'h2' });
      expect(made).toContain(`h1 ${op.id}/here`);
      expect(made).toContain(`h2 ${op.id}/there`);
      // Each part ran once: the h2 runner did not run the h1 child, nor the other way round.
      expect(made.filter((m) => m.endsWith(`${op.id}/here`))).toEqual([`h1 ${op.id}/here`]);
      expect(made.filter((m) => m.endsWith(`${op.id}/there`))).toEqual([`h2 ${op.id}/there`]);
      const children = await Promise.all(ended.children.map((c) => repo.get(c)));
      expect(children.map((c) => [c!.host, c!.parent, c!.status])).toEqual([
        ['h1', op.id, 'done'],
        ['h2', op.id, 'done'],
      ]);
      await store.revokeLease(lease);
    } finally {
      await stop();
    }
  }, 60_000);

  it('a cancel of the parent reaches the child on the other host: both are undone', async () => {
    const stop = await serve('h2');
    release.hold = () => undefined;
    try {
      const op = await repo.submit('test.parent', { other: 'h2' }, 'h1');
      const lease = await store.grantLease(10);
      const parent = runner(await ctxOf('h1'), 'h1', lease).drain();
      await eventually(async () => expect(made).toContain(`h2 ${op.id}/there`), 20_000, 100);
      await repo.update(op.id, (o) => ({ ...o, cancelRequested: true }));
      await parent;
      const ended = (await repo.get(op.id))!;
      expect(ended.status).toBe('cancelled');
      const child = (await repo.get(ended.children[1]!))!;
      expect(child.status).toBe('cancelled');
      expect(made).toContain(`undo h2 ${op.id}/there`);
      expect(made).toContain(`undo ${op.id}`);
      await store.revokeLease(lease);
    } finally {
      delete release.hold;
      await stop();
    }
  }, 60_000);

  it('a parent whose runner died is resumed by the next one, which waits for the same child (none made twice)', async () => {
    release.hold = () => undefined;
    const op = await repo.submit('test.parent', { other: 'h2' }, 'h1');
    const first = await store.grantLease(2);
    const dying = runner(await ctxOf('h1'), 'h1', first);
    const waiting = dying.drain();
    // The child is queued on h2, whose agent is not up yet: the parent waits.
    let child: OpRecord | null = null;
    await eventually(async () => {
      const p = (await repo.get(op.id))!;
      expect(p.children.length).toBe(2);
      child = await repo.get(p.children[1]!);
      expect(child?.status).toBe('queued');
    }, 20_000);
    // The runner dies: its lease goes, its wait ends at the next look.
    await store.revokeLease(first);
    await dying.close();
    await waiting;
    const stop = await serve('h2');
    delete release.hold;
    try {
      const lease = await store.grantLease(10);
      await runner(await ctxOf('h1'), 'h1', lease).drain();
      const ended = (await repo.get(op.id))!;
      expect(ended.status, ended.error ?? '').toBe('done');
      expect(ended.attempts).toBe(2);
      expect(ended.children[1]).toBe(child!.id);
      expect(made.filter((m) => m === `h2 ${op.id}/there`)).toHaveLength(1);
      await store.revokeLease(lease);
    } finally {
      await stop();
    }
  }, 60_000);
});
