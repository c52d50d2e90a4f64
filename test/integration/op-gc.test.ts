import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newOp, type OpRecord, type OpStatus } from '../../src/core/ops.js';
import { fleetKeys } from '../../src/state/keys.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { spawnAgent } from '../harness/agent.js';
import { knarr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { eventually } from '../harness/eventually.js';
import { freePort } from '../harness/ports.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('op-gc', haveTools('etcd'), 'etcd is not installed (Debian package etcd-server)');
const day = 86_400_000;
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

/** Ended operations and old job history go with op gc and with the agent's retention; nothing else does. */
describe.skipIf(!run)('knarr op gc and the retention the agent applies', () => {
  let tmp: TempDir;
  let etcd: EtcdInstance;
  let store: Store;
  beforeAll(async () => {
    tmp = await tempDir('knarr-op-gc-');
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
  });
  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
    await tmp?.cleanup();
  });

  /** Operations and history lines of a fleet, dated as given. */
  async function seed(fleet: string): Promise<void> {
    const keys = fleetKeys(fleet);
    const put = async (n: number, status: OpStatus, endedMsAgo: number, extra: Partial<OpRecord> = {}) => {
      const o = {
        ...newOp(n, 'cluster.create', { user: 'u', name: `c${n}` }, 'elsewhere'),
        status,
        createdAt: ago(endedMsAgo + day),
        finishedAt: status === 'queued' || status === 'running' ? null : ago(endedMsAgo),
        ...extra,
      };
      await store.put(keys.op(o.id), JSON.stringify(o));
    };
    await put(1, 'done', 10 * day);
    await put(2, 'failed', 10 * day);
    await put(3, 'cancelled', 10 * day);
    await put(4, 'running', 10 * day);
    await put(5, 'queued', 10 * day);
    await put(6, 'done', 60_000);
    await put(7, 'running', 10 * day, { children: ['op-000008'] });
    await put(8, 'done', 10 * day, { parent: 'op-000007' });
    const line = async (job: string, msAgo: number, event: string) => {
      const at = ago(msAgo);
      await store.put(`${keys.jobHistory(job)}${at}-1-0`, JSON.stringify({ at, host: 'h1', event }));
    };
    await line('web', 30 * day, 'placed');
    await line('web', 30 * day - 1000, 'started');
    await line('web', 20 * day, 'started');
    await line('web', 60_000, 'stopped');
    await line('old', 40 * day, 'removed');
  }
  const remaining = async (fleet: string) => ({
    ops: (await store.list(fleetKeys(fleet).ops)).map((kv) => kv.key.split('/').pop()).sort(),
    history: (await store.list(fleetKeys(fleet).jobHistories)).map((kv) => JSON.parse(kv.value).event as string),
  });

  it('--dry-run lists what would go and changes nothing; then it goes, and queued, running and recent ones stay', async () => {
    await seed('gc');
    const k = (argv: string[]) => knarr(['--etcd', etcd.url, '--fleet', 'gc', '--state-dir', `${tmp.path}/state`, ...argv]);
    const dump = async () => (await store.list('/knarr/gc/')).map((kv) => `${kv.key}=${kv.value}`);
    const before = await dump();

    const plan = await k(['--dry-run', '--json', 'op', 'gc', '--older-than', '7d']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.json().result).toMatchObject({
      dryRun: true,
      operations: ['op-000001', 'op-000002', 'op-000003'],
      history: [
        { job: 'old', event: 'removed' },
        { job: 'web', event: 'placed' },
        { job: 'web', event: 'started' },
      ],
    });
    expect(await dump()).toEqual(before);
    const lines = (await k(['--dry-run', 'op', 'gc'])).stdout.split('\n').filter(Boolean);
    expect(lines).toHaveLength(6);
    expect(lines[0]).toMatch(/^# remove op-000001 \(cluster\.create, done \S+\)$/);
    expect(lines[3]).toMatch(/^# remove job old's history line \S+ removed$/);
    expect(await dump()).toEqual(before);

    const done = await k(['op', 'gc', '--older-than', '7d']);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toBe('removed 3 ended operation(s) (op-000001, op-000002, op-000003) and 3 job history line(s) older than 7d\n');
    expect(await remaining('gc')).toEqual({ ops: ['op-000004', 'op-000005', 'op-000006', 'op-000007', 'op-000008'], history: ['started', 'stopped'] });
    expect((await k(['op', 'show', 'op-000001'])).code).toBe(3);
    // Again: nothing more is that old.
    expect((await k(['--json', 'op', 'gc', '--older-than', '7d'])).json()).toMatchObject({ operations: [], history: [] });

    const bad = await k(['op', 'gc', '--older-than', 'a week']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--older-than: "a week" is not an age; write it like 7d, 12h, 30m or 90s/);
  });

  it('an agent removes what is past KNARR_OP_RETENTION on its own', async () => {
    await seed('gcagent');
    const port = await freePort();
    const agent = spawnAgent({
      etcd: etcd.url,
      fleet: 'gcagent',
      stateDir: `${tmp.path}/agent-state`,
      name: 'h1',
      listen: `127.0.0.1:${port}`,
      env: { DOCKER_HOST: `unix://${tmp.path}/no-docker.sock`, KNARR_OP_RETENTION: '1h' },
    });
    try {
      await eventually(
        async () =>
          expect(await remaining('gcagent')).toEqual({
            ops: ['op-000004', 'op-000005', 'op-000006', 'op-000007', 'op-000008'],
            history: ['started', 'stopped'],
          }),
        20_000,
      );
    } finally {
      await agent.stop('SIGTERM');
    }
    const bad = await knarr(['--etcd', etcd.url, 'op', 'list'], { env: { KNARR_OP_RETENTION: 'soon' } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/KNARR_OP_RETENTION: "soon" is not an age/);
  });
});
