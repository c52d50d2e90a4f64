import { setTimeout as sleep } from 'node:timers/promises';
import { statePaths } from '../core/paths.js';
import { formatSize } from '../core/size.js';
import { clientTls, isEtcdProcess, type EtcdServerState } from '../host/etcd-server.js';
import { defragMember, defragRecordPath, defragWorthIt, probeSpace, type DefragRecord } from '../host/etcd-space.js';
import { readJson, writeJsonAtomic } from '../host/local-state.js';
import { recordEvent } from '../state/events.js';
import { etcdClusterKeys } from '../state/keys.js';
import type { Store } from '../state/store.js';

/** A member is defragmented at most this often, however much space compaction frees meanwhile. */
export const DEFRAG_MIN_GAP_MS = 3_600_000;
/** The defrag lock's lease: kept alive while the defragmentation runs, so a crashed agent's lock goes after this. */
const LOCK_TTL_SECONDS = 60;
/** A defragmentation of a large database takes a while; past this the agent gives up waiting (etcd finishes it anyway). */
const DEFRAG_TIMEOUT_MS = 600_000;

export interface EtcdDefragOptions {
  stateDir: string;
  fleet: string;
  /** This host's name in the fleet, for the event. */
  host: string;
  checkMs: number;
  minFreeBytes: number;
  minGapMs?: number;
}

export type DefragOutcome =
  | { done: false; reason: 'no member' | 'recently' | 'not worth it' | 'locked' | 'unknown size'; holder?: string }
  | { done: true; record: DefragRecord };

/**
 * The scheduled defragmentation of the managed etcd member on this host. Compaction frees space
 * inside etcd's database file, but only a defragmentation gives it back to the disk, and it blocks
 * the member while it runs: each agent does its own member, when enough lies free, at most once per
 * gap, holding a lock in the store so that two members of the cluster are never blocked at once.
 */
export class EtcdDefrag {
  constructor(
    private readonly store: Store,
    private readonly opts: EtcdDefragOptions,
    private readonly log: (line: string) => void,
  ) {}

  /** Checks every checkMs until signal aborts; a failed check is said and tried again at the next. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await sleep(this.opts.checkMs, undefined, { signal });
      } catch {
        return;
      }
      try {
        await this.check();
      } catch (e) {
        this.log(`etcd defrag: check failed: ${(e as Error).message}`);
      }
    }
  }

  /** One check: defragments this host's member if it runs, is worth it, was not done lately, and no other member is at it. */
  async check(): Promise<DefragOutcome> {
    const paths = statePaths(this.opts.stateDir);
    const state = await readJson<EtcdServerState>(paths.etcdState);
    if (!state || !(await isEtcdProcess(state.pid))) return { done: false, reason: 'no member' };
    const recordFile = defragRecordPath(paths.etcdDir);
    const last = await readJson<DefragRecord>(recordFile);
    if (last && Date.now() - Date.parse(last.endedAt) < (this.opts.minGapMs ?? DEFRAG_MIN_GAP_MS)) return { done: false, reason: 'recently' };
    const tls = state.tls ? clientTls(state.tls) : undefined;
    const before = await probeSpace(state.clientUrl, 2000, tls);
    if (before.dbBytes === null || before.dbInUseBytes === null) return { done: false, reason: 'unknown size' };
    if (!defragWorthIt(before, this.opts.minFreeBytes)) return { done: false, reason: 'not worth it' };

    const lease = await this.store.grantLease(LOCK_TTL_SECONDS);
    const lock = JSON.stringify({ member: state.name, host: this.opts.host, since: new Date().toISOString() });
    if (!(await this.store.transact([{ key: etcdClusterKeys.defragLock, absent: true }], [{ key: etcdClusterKeys.defragLock, value: lock, lease }], []))) {
      await this.store.revokeLease(lease).catch(() => undefined);
      const holder = await this.store.get(etcdClusterKeys.defragLock);
      return { done: false, reason: 'locked', holder: holder ?? undefined };
    }
    const keep = setInterval(() => void this.store.keepAlive(lease).catch(() => undefined), (LOCK_TTL_SECONDS * 1000) / 4);
    try {
      const startedAt = new Date().toISOString();
      this.log(
        `etcd defrag: member ${state.name} has ${formatSize(before.dbBytes - before.dbInUseBytes)} free of ${formatSize(before.dbBytes)}: defragmenting`,
      );
      await defragMember(state.clientUrl, tls, DEFRAG_TIMEOUT_MS);
      const endedAt = new Date().toISOString();
      const after = await probeSpace(state.clientUrl, 2000, tls);
      const record: DefragRecord = { member: state.name, startedAt, endedAt, beforeBytes: before.dbBytes, afterBytes: after.dbBytes };
      await writeJsonAtomic(recordFile, record);
      const message =
        `etcd member ${state.name} defragmented: ${formatSize(before.dbBytes)} -> ${formatSize(after.dbBytes)} ` +
        `in ${Date.parse(endedAt) - Date.parse(startedAt)} ms`;
      this.log(`etcd defrag: ${message}`);
      await recordEvent(this.store, this.opts.fleet, { kind: 'host', object: this.opts.host, host: this.opts.host, event: 'etcd-defrag', message });
      return { done: true, record };
    } finally {
      clearInterval(keep);
      await this.store.revokeLease(lease).catch(() => undefined);
    }
  }
}
