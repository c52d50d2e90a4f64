import { readFile, rename, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError, StoreUnavailableError, UserError } from '../../core/errors.js';
import { backoffMs, initialCluster, parseJoinToken, type JoinToken, validateAdvertiseIp, validateJoinUrl, type RawMember } from '../../core/etcd-cluster.js';
import { validatePort } from '../../core/config.js';
import { statePaths } from '../../core/paths.js';
import { clientTls, isEtcdProcess, type ClientTls, type EtcdServerState } from '../../host/etcd-server.js';
import { dropDir, fetchVerifiedCa, issueCert, joinKeyPem, openCaKey, selfSignCa, writeSecret } from '../../host/etcd-pki.js';
import { pathExists } from '../../host/mounts.js';
import { syncDir } from '../../host/local-state.js';
import { acquireLock, holderAlive } from '../../host/lock.js';
import { etcdClusterKeys } from '../../state/keys.js';
import { connectEtcd, type Store } from '../../state/store.js';
import type { CommandResult, Context } from '../types.js';
import {
  JOIN_CA_CN,
  clientFiles,
  etcdctlArgv,
  issueMemberCerts,
  listMembers,
  memberName,
  membershipChange,
  parseEtcdctlJson,
  pkiFiles,
  promoteIfLearner,
  tlsUrls,
  writeJoinCa,
} from './cluster.js';
import { dataLocation, ensureLocalEtcd, readEtcdState, refuseExternal, startMember } from './local.js';
import { etcdData, etcdFields } from './view.js';

export interface EtcdJoinOptions {
  token: string;
  advertise?: string;
  name?: string;
  pool?: string;
  clientPort?: string;
  peerPort?: string;
}

/** How long a join waits for its turn and for etcd's go-ahead before it gives up. */
const JOIN_DEADLINE_MS = 180_000;

/** The IP of this host that the member at url sees: the local address of a connection to it. */
async function localAddressTowards(url: string): Promise<string> {
  const { connect } = await import('node:net');
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) }, () => {
      const ip = s.localAddress ?? '';
      s.destroy();
      resolve(ip.replace(/^::ffff:/, ''));
    });
    s.once('error', reject);
  });
}

/**
 * `knarr etcd join URL --token T`: this host becomes a member of the managed etcd cluster at URL.
 * It checks the CA the member presents against the token's hash, signs itself a short-lived client
 * certificate with the join CA (the token's secret), reads the fleet CA's key from etcd (sealed with
 * the same secret), issues its member and client certificates, then, holding the join lock, adds
 * itself as a learner, starts, and promotes itself once caught up. Idempotent: a member restarts.
 */
export async function etcdJoin(urlArg: string, opts: EtcdJoinOptions, ctx: Context): Promise<CommandResult> {
  refuseExternal(ctx, 'join');
  const url = validateJoinUrl('URL', urlArg);
  const token = parseJoinToken('--token', opts.token);
  const clientPort = validatePort('--client-port', opts.clientPort ?? ctx.config.etcdServer.clientPort);
  const peerPort = validatePort('--peer-port', opts.peerPort ?? ctx.config.etcdServer.peerPort);
  if (clientPort === peerPort) throw new UserError('--client-port and --peer-port must differ');
  if (opts.advertise !== undefined) validateAdvertiseIp('--advertise', opts.advertise);
  if (ctx.runner.dryRun) return joinLocked(url, token, { clientPort, peerPort }, opts, ctx);
  // One join per host at a time: a second waits, then finds the member made and restarts or confirms it.
  const release = await acquireLock(`${statePaths(ctx.config.stateDir).etcdDir}/join.lock`, {
    what: 'etcd join',
    stale: (h) => !holderAlive(h),
    wait: true,
    busy: () => new ConflictError('another etcd join runs on this host'),
    onWait: () => ctx.events.step('etcd: waiting for the other join on this host'),
    signal: ctx.signal,
  });
  try {
    return await joinLocked(url, token, { clientPort, peerPort }, opts, ctx);
  } finally {
    await release();
  }
}

async function joinLocked(
  url: string,
  token: JoinToken,
  ports: { clientPort: number; peerPort: number },
  opts: EtcdJoinOptions,
  ctx: Context,
): Promise<CommandResult> {
  const { clientPort, peerPort } = ports;
  const previous = await readEtcdState(ctx);
  if (previous?.tls && (await stillMember(ctx, url, previous))) {
    // Joined before (a reboot, or the command run again): it restarts as it was, never joins twice.
    const up = await ensureLocalEtcd(ctx, { timeoutMs: 120_000 });
    if (up.action !== 'planned') await promoteIfLearner(ctx, up.state, JOIN_DEADLINE_MS);
    return joinResult(up.action === 'started' ? 'restarted' : up.action, up.state, up.health.healthy);
  }
  if (previous?.tls) await setAsideOldMember(ctx, url, previous);
  const { dataDir, pool } = await dataLocation(ctx, opts.pool ?? previous?.pool ?? undefined);
  if (await pathExists(`${dataDir}/member`)) {
    throw new ConflictError(`${dataDir} already holds an etcd's data: joining would have to throw it away`, {
      hint: 'take a backup (knarr etcd backup FILE) and move the data aside, or keep this host on its own etcd',
    });
  }
  if (previous?.pid && (await isEtcdProcess(previous.pid))) {
    throw new ConflictError(`the local etcd (pid ${previous.pid}) runs; stop it first with: knarr etcd down`);
  }

  const paths = statePaths(ctx.config.stateDir);
  const p = paths.etcdPki;
  const tmp = paths.etcdJoining;
  const boot = {
    joinKey: `${tmp}/join.key`,
    joinCert: `${tmp}/join.crt`,
    caCert: `${tmp}/ca.crt`,
    trusted: `${tmp}/trusted.crt`,
    cert: `${tmp}/boot.crt`,
    key: `${tmp}/boot.key`,
  };
  const name = memberName(opts.name);
  // The bootstrap identity: a one-day client certificate from the join CA, whose key is the token's secret.
  const bootIdentity = async () => {
    await selfSignCa(ctx.runner, boot.joinKey, boot.joinCert, JOIN_CA_CN);
    await issueCert(ctx.runner, {
      cn: `knarr-join@${name}`,
      server: false,
      caCert: boot.joinCert,
      caKey: boot.joinKey,
      certOut: boot.cert,
      keyOut: boot.key,
      days: 1,
    });
  };
  if (ctx.runner.dryRun) {
    ctx.runner.note(`the join CA's key from the token's secret: ${boot.joinKey}`);
    await bootIdentity();
    ctx.runner.note(`check the CA ${url} presents against sha256:${token.caHash}, read the fleet CA's key from etcd, issue this member's certificates`);
    const peer = opts.advertise ? tlsUrls(opts.advertise, clientPort, peerPort).peerUrl : `https://<this host's address>:${peerPort}`;
    ctx.runner.plan(etcdctlArgv(clientFiles(pkiFiles(ctx)), [url], ['member', 'add', name, '--learner', `--peer-urls=${peer}`, '-w', 'json']));
    return { data: { action: 'planned', url, name } };
  }

  await dropDir(tmp);
  await ctx.runner.mkdirp(tmp);
  try {
    await writeSecret(boot.joinKey, joinKeyPem(token.secret));
    await bootIdentity();
    const bootPem = { cert: await readFile(boot.cert, 'utf8'), key: await readFile(boot.key, 'utf8') };
    ctx.events.step(`etcd: checking ${url} against the token's CA hash`);
    const caPem = await fetchVerifiedCa(url, token.caHash, bootPem);
    await writeFile(boot.caCert, caPem);
    const bootTls: ClientTls = { ca: caPem, ...bootPem };

    // The cluster's members, through the member named (TLS checked against the CA just verified).
    const { members } = await listMembers([url], bootTls).catch((e: Error) => {
      throw new UserError(`${url} refused this host's join credentials: ${e.message}`, {
        hint: 'the token is from another fleet or was replaced: take it again with `knarr etcd token` on a member; nothing was changed',
      });
    });
    const endpoints = [...new Set([url, ...members.flatMap((m) => m.clientURLs ?? [])])];
    const store = await connectEtcd(endpoints, { ca: boot.caCert, cert: boot.cert, key: boot.key });
    try {
      const sealed = await store.get(etcdClusterKeys.caKey);
      const caKey = sealed === null ? null : openCaKey(token.secret, sealed);
      if (caKey === null) {
        throw new UserError(`the fleet at ${url} has no CA key this token opens`, {
          hint: 'run `knarr etcd up` on the first member (it stores the key), or take the token again; nothing was changed',
        });
      }
      const ip = opts.advertise ?? (await localAddressTowards(url));
      validateAdvertiseIp('--advertise', ip);
      const urls = tlsUrls(ip, clientPort, peerPort);

      // From here this host's own PKI: the fleet CA and token, then its member and client certificates.
      await ctx.runner.mkdirp(p.dir);
      await writeFile(p.caCert, caPem);
      await writeSecret(p.caKey, caKey);
      await writeSecret(p.token, `${opts.token.trim()}\n`);
      await writeJoinCa(ctx, token.secret, p);
      ctx.events.step(`etcd: certificates for member ${name} (${ip})`);
      await issueMemberCerts(ctx, name, ip);

      const lock = await takeJoinLock(ctx, store, name);
      try {
        return await addAndStart(ctx, { store, endpoints, name, urls, dataDir, pool: pool?.name ?? null, bootFiles: boot });
      } finally {
        await store.revokeLease(lock);
      }
    } finally {
      await store.close();
    }
  } finally {
    await dropDir(tmp);
  }
}

/**
 * Whether the cluster at url still has this host's recorded member (by its peer URL). A cluster
 * restored from a snapshot, or one this member was removed from, does not: the host joins it anew.
 */
async function stillMember(ctx: Context, url: string, previous: EtcdServerState): Promise<boolean> {
  if (ctx.runner.dryRun) return true;
  const { members } = await listMembers([url], clientTls(previous.tls!)).catch((e: Error) => {
    throw new StoreUnavailableError(`${url} does not answer with this host's member certificates: ${e.message}`, {
      hint:
        `check the URL; this host is a member of an etcd cluster already (knarr etcd up restarts it as it was); ` +
        `to join another fleet's, move ${statePaths(ctx.config.stateDir).etcdDir} aside first`,
    });
  });
  const self = members.find((m) => (m.peerURLs ?? []).includes(previous.peerUrl));
  // A learner added for this host that never started: its join goes on as a first join would.
  return self !== undefined && (self.name !== '' || (await pathExists(`${previous.dataDir}/member`)));
}

/** The data of a member of another (an old) cluster is kept aside, never deleted, before this host joins the one at url. */
async function setAsideOldMember(ctx: Context, url: string, previous: EtcdServerState): Promise<void> {
  if (previous.pid && (await isEtcdProcess(previous.pid))) {
    throw new ConflictError(`this host's etcd (pid ${previous.pid}) runs as a member of a cluster that ${url} is not part of`, {
      hint: 'stop it first with `knarr etcd down` (its data is kept aside by the join, not deleted), then join again',
    });
  }
  const from = `${previous.dataDir}/member`;
  if (!(await pathExists(from))) return;
  const aside = `${previous.dataDir}/member.before-join-${new Date().toISOString().replace(/[-:.]/g, '')}`;
  ctx.events.warn(`this host was a member of another etcd cluster: its data is set aside in ${aside}`);
  await rename(from, aside);
  await syncDir(previous.dataDir);
}

/** One join at a time: a key under a lease (a crashed joiner's lock goes with its lease). */
async function takeJoinLock(ctx: Context, store: Store, name: string): Promise<string> {
  const deadline = Date.now() + JOIN_DEADLINE_MS;
  for (let n = 0; ; n++) {
    const lease = await store.grantLease(90);
    if (await store.transact([{ key: etcdClusterKeys.joinLock, absent: true }], [{ key: etcdClusterKeys.joinLock, value: name, lease }], [])) return lease;
    await store.revokeLease(lease);
    const holder = await store.get(etcdClusterKeys.joinLock);
    if (Date.now() > deadline) {
      throw new ConflictError(`another host (${holder ?? 'unknown'}) has been joining the etcd cluster for ${JOIN_DEADLINE_MS / 1000}s`, {
        hint: 'run the join again when it has finished: knarr etcd members',
      });
    }
    ctx.events.step(`etcd: waiting for ${holder ?? 'another host'} to finish joining`);
    await sleep(backoffMs(Math.min(n, 3)), undefined, { signal: ctx.signal });
  }
}

interface AddPlan {
  store: Store;
  endpoints: string[];
  name: string;
  urls: ReturnType<typeof tlsUrls>;
  dataDir: string;
  pool: string | null;
  bootFiles: { caCert: string; cert: string; key: string };
}

async function addAndStart(ctx: Context, a: AddPlan): Promise<CommandResult> {
  const files = pkiFiles(ctx);
  const mine = clientTls(files);
  const admin = clientFiles(files);
  let { members } = await listMembers(a.endpoints, mine);
  const clash = members.find((m) => m.name === a.name && !(m.peerURLs ?? []).includes(a.urls.peerUrl));
  if (clash) {
    throw new ConflictError(`the etcd cluster already has a member named ${a.name} (${clash.peerURLs?.join(',')})`, {
      hint: 'give this host another name with --name, or remove the old member first: knarr etcd remove ' + a.name,
    });
  }
  let self = members.find((m) => (m.peerURLs ?? []).includes(a.urls.peerUrl));
  if (self?.name) {
    throw new ConflictError(`a started member (${self.name}) already has the peer URL ${a.urls.peerUrl}, but this host has no data for it`, {
      hint: `remove it first (knarr etcd remove ${self.name}) and join again`,
    });
  }
  if (!self) {
    ctx.events.step(`etcd: adding ${a.name} (${a.urls.peerUrl}) as a learner`);
    const out = await membershipChange(
      ctx,
      etcdctlArgv(admin, a.endpoints, ['member', 'add', a.name, '--learner', `--peer-urls=${a.urls.peerUrl}`, '-w', 'json']),
      'member add',
    ).catch((e: Error) => {
      const learners = members.filter((m) => m.isLearner).map((m) => m.name || (m.peerURLs ?? []).join(','));
      if (!/too many learner/i.test(e.message)) throw e;
      throw new ConflictError(`etcd still has a learner that has not caught up or was never started: ${learners.join(', ') || 'unknown'}`, {
        hint: 'finish that join (run knarr etcd join or knarr etcd up on its host) or drop it with knarr etcd remove, then join again',
      });
    });
    const added = parseEtcdctlJson<{ member: RawMember; members: RawMember[] }>(out);
    self = added.member;
    members = added.members;
  }
  const paths = statePaths(ctx.config.stateDir);
  const state: EtcdServerState = {
    pid: null,
    name: a.name,
    ...a.urls,
    socket: '',
    dataDir: a.dataDir,
    pool: a.pool,
    logFile: paths.etcdLog,
    startedAt: null,
    tls: files,
    initialCluster: initialCluster(members, { name: a.name, peerUrl: a.urls.peerUrl }),
    clusterState: 'existing',
    endpoints: [a.urls.clientUrl, ...a.endpoints.filter((u) => u !== a.urls.clientUrl)],
  };
  // startMember promotes it once it has caught up (one learner at a time: the join lock is held).
  const up = await startMember(ctx, state, 120_000);
  return joinResult('joined', up.state, up.health.healthy);
}

function joinResult(action: string, state: EtcdServerState, healthy: boolean): CommandResult {
  const data = { action, name: state.name, ...etcdData(state, action !== 'planned', { healthy, version: null, error: null }) };
  return { data, view: { kind: 'fields', fields: [['action', action], ['member', state.name], ...etcdFields(data)] } };
}
