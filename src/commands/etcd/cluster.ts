import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExternalCommandError, StoreUnavailableError, ValidationError } from '../../core/errors.js';
import {
  backoffMs,
  formatJoinToken,
  memberIdHex,
  hostPort,
  parseJoinToken,
  retryableMembershipError,
  type JoinToken,
  type RawMember,
} from '../../core/etcd-cluster.js';
import { statePaths } from '../../core/paths.js';
import { clientTls, etcdPost, type ClientTls, type EtcdServerState } from '../../host/etcd-server.js';
import { certHash, issueCert, joinKeyPem, makeCa, selfSignCa, writeSecret, type EtcdTlsFiles } from '../../host/etcd-pki.js';
import { pathExists } from '../../host/mounts.js';
import { readSecret, type EtcdConnectOptions } from '../../state/store.js';
import type { Context } from '../types.js';

/** etcdctl 3.4 speaks the v3 API by default; said anyway, for older clients on a host. */
const ETCDCTL_ENV = { ETCDCTL_API: '3' };

export const CA_CN = 'knarr-etcd-ca';
export const JOIN_CA_CN = 'knarr-etcd-join';

/** This host's TLS files, as recorded in its state. */
export function pkiFiles(ctx: Context): EtcdTlsFiles {
  const p = statePaths(ctx.config.stateDir).etcdPki;
  return { caCert: p.caCert, trusted: p.trusted, memberCert: p.memberCert, memberKey: p.memberKey, clientCert: p.clientCert, clientKey: p.clientKey };
}

/** The member's name: --name, else the hostname (one member per host). */
export function memberName(name: string | undefined): string {
  return name ?? hostname();
}

/** The client-side TLS of a member's state, or undefined for the plain one. */
export function stateTls(state: EtcdServerState | null): ClientTls | undefined {
  return state?.tls ? clientTls(state.tls) : undefined;
}

/** How knarr's store client reaches a member: its CA and knarr's client certificate (files); nothing for the plain etcd. */
export function storeOptions(state: EtcdServerState | null): EtcdConnectOptions {
  return state?.tls ? { ca: state.tls.caCert, cert: state.tls.clientCert, key: state.tls.clientKey } : {};
}

/** etcdctl with knarr's client certificate, for the commands an operator could type too. */
export function etcdctlArgv(tls: { caCert: string; cert: string; key: string }, endpoints: readonly string[], args: readonly string[]): string[] {
  return [
    'etcdctl',
    '--endpoints',
    endpoints.join(','),
    '--cacert',
    tls.caCert,
    '--cert',
    tls.cert,
    '--key',
    tls.key,
    '--dial-timeout',
    '3s',
    '--command-timeout',
    '15s',
    ...args,
  ];
}

export function clientFiles(files: EtcdTlsFiles): { caCert: string; cert: string; key: string } {
  return { caCert: files.caCert, cert: files.clientCert, key: files.clientKey };
}

/** etcdctl's JSON prints uint64 IDs as numbers, which JSON.parse rounds: quoted first. */
export function parseEtcdctlJson<T>(text: string): T {
  return JSON.parse(text.replace(/"(ID|id|member_id|leader|cluster_id|raft_term)":(\d+)/g, '"$1":"$2"')) as T;
}

/** Runs a membership change through etcdctl, retrying what etcd says a later try gets past. */
export async function membershipChange(ctx: Context, argv: string[], what: string, deadlineMs = 120_000): Promise<string> {
  const deadline = Date.now() + deadlineMs;
  for (let n = 0; ; n++) {
    try {
      return (await ctx.runner.run(argv, { env: ETCDCTL_ENV })).stdout;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (!(e instanceof ExternalCommandError) || !retryableMembershipError(msg) || Date.now() > deadline) throw e;
      if (n % 5 === 0) ctx.events.step(`etcd: ${what}: etcd says to wait (${msg.replace(/^.*Error: /s, '').split('\n')[0]}); trying again`);
      await sleep(backoffMs(n), undefined, { signal: ctx.signal });
    }
  }
}

/** The members through the JSON gateway of the first endpoint that answers. */
export async function listMembers(endpoints: readonly string[], tls: ClientTls | undefined): Promise<{ members: RawMember[]; via: string }> {
  let last: unknown;
  for (const url of endpoints) {
    try {
      const r = await etcdPost<{ members?: RawMember[] }>(url, '/v3/cluster/member/list', {}, tls);
      return { members: r.members ?? [], via: url };
    } catch (e) {
      last = e;
    }
  }
  throw new StoreUnavailableError(`no etcd member of ${endpoints.join(',')} answers: ${(last as Error)?.message ?? last}`, {
    hint: 'check them with: knarr etcd status',
  });
}

/** The token this host keeps (every member has it). */
export async function readToken(ctx: Context): Promise<JoinToken | null> {
  const text = await readFile(statePaths(ctx.config.stateDir).etcdPki.token, 'utf8').catch(() => null);
  return text === null ? null : parseJoinToken('token file', text);
}

/** The join CA from the token's secret: its key, a certificate for it, and the trusted bundle (fleet CA + join CA). */
export async function writeJoinCa(ctx: Context, secret: Buffer, dir: { joinKey: string; joinCert: string; caCert: string; trusted: string }): Promise<void> {
  await writeSecret(dir.joinKey, joinKeyPem(secret));
  await selfSignCa(ctx.runner, dir.joinKey, dir.joinCert, JOIN_CA_CN);
  await writeFile(dir.trusted, `${(await readFile(dir.caCert, 'utf8')).trimEnd()}\n${await readFile(dir.joinCert, 'utf8')}`);
}

/** This member's server/peer certificate (its IP, 127.0.0.1, the hostname) and knarr's client certificate, both from the fleet CA. */
export async function issueMemberCerts(ctx: Context, name: string, ip: string): Promise<void> {
  const p = statePaths(ctx.config.stateDir).etcdPki;
  const ips = [...new Set([ip, '127.0.0.1'])];
  await issueCert(ctx.runner, {
    cn: name,
    ips,
    dns: [hostname(), 'localhost'],
    server: true,
    caCert: p.caCert,
    caKey: p.caKey,
    certOut: p.memberCert,
    keyOut: p.memberKey,
    chain: true,
  });
  await issueCert(ctx.runner, { cn: `knarr@${name}`, server: false, caCert: p.caCert, caKey: p.caKey, certOut: p.clientCert, keyOut: p.clientKey });
}

/**
 * The first member's PKI: the fleet CA, the join token (and the join CA from its secret), this
 * member's certificates. Each part already there is kept, so a re-run after a crash finishes it.
 */
export async function ensureFirstPki(ctx: Context, name: string, ip: string): Promise<void> {
  const p = statePaths(ctx.config.stateDir).etcdPki;
  await ctx.runner.mkdirp(p.dir);
  if (ctx.runner.dryRun) {
    await makeCa(ctx.runner, p.caKey, p.caCert, CA_CN);
    ctx.runner.note(`a join token (the CA's hash and a 32-byte secret) in ${p.token}; the join CA's key from the secret in ${p.joinKey}`);
    await selfSignCa(ctx.runner, p.joinKey, p.joinCert, JOIN_CA_CN);
    await issueMemberCerts(ctx, name, ip);
    return;
  }
  if (!((await pathExists(p.caCert)) && (await pathExists(p.caKey)))) {
    ctx.events.step('etcd: creating the fleet CA');
    await makeCa(ctx.runner, p.caKey, p.caCert, CA_CN);
  }
  let token = await readToken(ctx);
  if (!token || token.caHash !== certHash(await readFile(p.caCert, 'utf8'))) {
    token = { caHash: certHash(await readFile(p.caCert, 'utf8')), secret: randomBytes(32) };
    await writeSecret(p.token, `${formatJoinToken(token)}\n`);
  }
  await writeJoinCa(ctx, token.secret, p);
  if (!((await pathExists(p.memberCert)) && (await pathExists(p.clientCert)))) {
    ctx.events.step(`etcd: certificates for member ${name} (${ip})`);
    await issueMemberCerts(ctx, name, ip);
  }
}

/** A TLS member's URLs: clients on IP (and 127.0.0.1 for this host), peers on IP. */
export function tlsUrls(ip: string, clientPort: number, peerPort: number) {
  const clientUrl = `https://${hostPort(ip, clientPort)}`;
  return {
    clientUrl,
    peerUrl: `https://${hostPort(ip, peerPort)}`,
    listenClientUrls: ip === '127.0.0.1' ? [clientUrl] : [clientUrl, `https://127.0.0.1:${clientPort}`],
  };
}

/**
 * A member still a learner (a join cut short between start and promotion) is promoted once it has
 * caught up: `etcd up` and `etcd join` run again finish the join. True if it is a voter now.
 */
export async function promoteIfLearner(ctx: Context, state: EtcdServerState, deadlineMs: number): Promise<boolean> {
  if (!state.tls) return true;
  const tls = clientTls(state.tls);
  const { members } = await listMembers(state.endpoints ?? [state.clientUrl], tls);
  const self = members.find((m) => (m.peerURLs ?? []).includes(state.peerUrl));
  if (!self?.isLearner) return true;
  ctx.events.step(`etcd: promoting ${state.name} once it has caught up`);
  const voters = members.filter((m) => !m.isLearner).flatMap((m) => m.clientURLs ?? []);
  await membershipChange(ctx, etcdctlArgv(clientFiles(state.tls), voters, ['member', 'promote', memberIdHex(self.ID)]), 'member promote', deadlineMs);
  return true;
}

/** How etcdctl and knarr's probes reach the etcd in use: argv, environment (the auth password stays off argv) and the client TLS. */
export interface EtcdctlTarget {
  urls: string[];
  etcdctl: (...args: string[]) => string[];
  env: Record<string, string>;
  tls?: ClientTls;
}

/** The --etcd endpoints with the client certificate, CA and etcd user the settings give (--etcd-ca, --etcd-cert, --etcd-key, --etcd-user). */
export function externalTarget(ctx: Context, urls: string[] = [...ctx.config.etcd]): EtcdctlTarget {
  const c = ctx.config.etcdClient;
  const flags = [...(c.ca ? ['--cacert', c.ca] : []), ...(c.cert ? ['--cert', c.cert] : []), ...(c.key ? ['--key', c.key] : [])];
  const env: Record<string, string> = { ...ETCDCTL_ENV };
  if (c.user !== null) {
    let password = c.password;
    if (password === null) {
      if (!c.passwordFile) throw new ValidationError('--etcd-user', `etcd user ${c.user} needs a password: give --etcd-password-file or KNARR_ETCD_PASSWORD`);
      password = readSecret(c.passwordFile, '--etcd-password-file').toString('utf8').split('\n')[0]!.replace(/\r$/, '');
    }
    Object.assign(env, { ETCDCTL_USER: c.user, ETCDCTL_PASSWORD: password });
  }
  // Only what is given: an absent CA leaves the system's, as for the store client.
  const tls =
    c.ca || c.cert
      ? ({
          ...(c.ca ? { ca: readSecret(c.ca, '--etcd-ca').toString('utf8') } : {}),
          ...(c.cert ? { cert: readSecret(c.cert, '--etcd-cert').toString('utf8') } : {}),
          ...(c.key ? { key: readSecret(c.key, '--etcd-key').toString('utf8') } : {}),
        } as ClientTls)
      : undefined;
  return { urls, etcdctl: (...args) => ['etcdctl', '--endpoints', urls.join(','), ...flags, ...args], env, tls };
}
