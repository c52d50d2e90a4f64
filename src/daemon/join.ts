import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { clustersToInit, type ClusterRecord } from '../core/cluster.js';
import { PrerequisiteError } from '../core/errors.js';
import { admit, type JoinRecord, type StartMode } from '../core/hosts.js';
import { Wakeup } from '../core/streams.js';
import type { HostRepo } from '../state/hosts.js';
import { fleetKeys } from '../state/keys.js';
import { OpRepo } from '../state/ops.js';
import type { Store } from '../state/store.js';

const TOKEN_FILE = '.knarr-fleet-token';
/** How often a joining host looks for a peer up to answer it (with none, it answers itself): every second in a small fleet, every 5 s from 100 hosts. */
const peersAskedEveryMs = (hosts: number) => Math.min(5000, Math.max(1000, hosts * 50));

/**
 * The proof that this host sees the fleet's shared data directory: the token in DIR/.knarr-fleet-token.
 * The first host with a directory sets the fleet's token (from the file when there is one).
 */
export async function shareProof(store: Store, fleet: string, share: string | null): Promise<string | null> {
  if (share === null) return null;
  const keys = fleetKeys(fleet);
  const file = `${share}/${TOKEN_FILE}`;
  const read = async () => (await readFile(file, 'utf8').catch(() => null))?.trim() ?? null;
  if ((await store.get(keys.shareToken)) === null) {
    let token = await read();
    if (token === null) {
      token = randomBytes(24).toString('hex');
      // The file before the store: a fleet token no directory holds would keep every host out.
      const writing = await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' }).then(
        () => null,
        (e: NodeJS.ErrnoException) => e,
      );
      const held = await read();
      // Not written and not there (a read-only or root-squashed directory): the fleet gets no token it cannot prove.
      if (held === null)
        throw new PrerequisiteError(`cannot write the fleet token to ${file}: ${writing?.code ?? writing?.message ?? 'it is not there after writing'}`, {
          hint: `make ${share} writable for this host's root, or start the agent without --share`,
        });
      token = held;
    }
    await store.createIfAbsent(keys.shareToken, token);
  }
  return (await read()) ?? '';
}

/**
 * Moves other hosts' handshakes on (or only those of the hosts named, e.g. this host's when no admitted peer is up):
 * waiting to init or refused, work to ok. Only handshakes still under way are read again, so a fleet's agents
 * answering one host's join read one key each, not every host's.
 */
export async function admitJoins(store: Store, fleet: string, only?: readonly string[]): Promise<void> {
  const keys = fleetKeys(fleet);
  const under = (j: JoinRecord) => j.state === 'waiting' || j.state === 'work';
  const listed =
    only === undefined
      ? (await store.list(keys.joins)).filter((kv) => under(JSON.parse(kv.value) as JoinRecord)).map((kv) => kv.key)
      : only.map((host) => keys.join(host));
  let token: string | null | undefined;
  for (const key of listed) {
    const cur = await store.getVersioned(key);
    if (!cur) continue;
    const j = JSON.parse(cur.value) as JoinRecord;
    if (j.state === 'waiting' && token === undefined) token = await store.get(keys.shareToken);
    const next = j.state === 'waiting' ? admit(j, token ?? null) : j.state === 'work' ? { ...j, state: 'ok' as const, at: new Date().toISOString() } : null;
    if (next) await store.putIfUnchanged(key, JSON.stringify(next), cur.modRevision, { keepLease: true });
  }
}

/** What a host does at init for the fleet's start mode: one host.init operation, whose children start (recovery) or delete (new) its clusters. */
async function initialise(store: Store, fleet: string, host: string, mode: StartMode, log: (l: string) => void): Promise<void> {
  const keys = fleetKeys(fleet);
  const mine = clustersToInit(
    (await store.list(keys.clusters)).map((kv) => JSON.parse(kv.value) as ClusterRecord),
    host,
    mode,
  );
  if (mine.length === 0) return;
  const op = await new OpRepo(store, fleet).submit('host.init', { mode }, host);
  log(`join (${mode}): ${op.id} host.init for ${mine.length} cluster(s)`);
}

/**
 * This agent's side of the handshake: waiting (with its proof), init (initialise, then work), ok.
 * Peers that finished theirs answer; with none up, the agent answers itself. Refused throws.
 */
export async function join(
  store: Store,
  hosts: HostRepo,
  opts: { fleet: string; host: string; mode: StartMode; share: string | null; lease: string; log: (l: string) => void },
  signal: AbortSignal,
): Promise<void> {
  const keys = fleetKeys(opts.fleet);
  const proof = await shareProof(store, opts.fleet, opts.share);
  const waiting: JoinRecord = { host: opts.host, state: 'waiting', mode: opts.mode, proof, at: new Date().toISOString() };
  await store.put(keys.join(opts.host), JSON.stringify(waiting), opts.lease);
  const ac = new AbortController();
  const stop = () => ac.abort();
  signal.addEventListener('abort', stop, { once: true });
  const wakeup = new Wakeup();
  await store.watch(keys.joins, () => wakeup.wake(), ac.signal);
  let peersAskedAt = 0;
  let peersEveryMs = peersAskedEveryMs(1);
  try {
    for (;;) {
      if (signal.aborted) return;
      const cur = await store.getVersioned(keys.join(opts.host));
      const j = cur ? (JSON.parse(cur.value) as JoinRecord) : null;
      if (!j) throw new PrerequisiteError(`host ${opts.host}'s join record is gone: its lease lapsed`);
      if (j.state === 'refused')
        throw new PrerequisiteError(`the fleet refused host ${opts.host}: ${j.reason}`, {
          hint: "start the agent with --share pointing at the fleet's shared data directory",
        });
      if (j.state === 'ok') return;
      if (j.state === 'init') {
        await initialise(store, opts.fleet, opts.host, j.mode, opts.log);
        await store.putIfUnchanged(keys.join(opts.host), JSON.stringify({ ...j, state: 'work', at: new Date().toISOString() }), cur!.modRevision, {
          keepLease: true,
        });
        continue;
      }
      // Whether a peer is up to answer: asked now and then, not at each wake (every other host's join wakes this one).
      if (Date.now() - peersAskedAt >= peersEveryMs) {
        peersAskedAt = Date.now();
        const listed = await hosts.list();
        peersEveryMs = peersAskedEveryMs(listed.length);
        const peers = listed.filter((h) => h.up && h.host.name !== opts.host && (h.host.join ?? 'ok') === 'ok');
        if (peers.length === 0) {
          await admitJoins(store, opts.fleet, [opts.host]);
          continue;
        }
      }
      await wakeup.sleep(1000);
    }
  } finally {
    signal.removeEventListener('abort', stop);
    ac.abort();
  }
}
