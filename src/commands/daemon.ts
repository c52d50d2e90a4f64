import { readFile, stat } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { hostId } from '../host/identity.js';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { ValidationError } from '../core/errors.js';
import { validateTags } from '../core/hosts.js';
import { validateName } from '../core/names.js';
import { validatePort } from '../core/config.js';
import { Agent, agentToken } from '../daemon/agent.js';
import { dockerSocketPath } from '../host/docker.js';
import { HostRepo } from '../state/hosts.js';
import { dotBinds } from './job/volumes.js';
import { OpRunner } from '../ops/runner.js';
import { optBool, optList, optString, type Handler } from './types.js';

function parseListen(text: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(text);
  if (!m || !m[1]) throw new ValidationError('--listen', `${JSON.stringify(text)} is not ADDRESS:PORT, e.g. 127.0.0.1:7946`);
  return { host: m[1], port: validatePort('--listen', m[2]!) };
}

/** The address other hosts reach this host at: the listen address, or the first outward IPv4 when it listens on all. */
function advertiseAddress(listenHost: string, flag: string | undefined): string {
  if (flag !== undefined) {
    if (!isIP(flag)) throw new ValidationError('--advertise', `${JSON.stringify(flag)} is not an IP address`);
    return flag;
  }
  if (listenHost !== '0.0.0.0' && listenHost !== '::') return listenHost;
  const outward = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
  return outward?.address ?? '127.0.0.1';
}

/**
 * `knarr daemon`: the agent. Registers this host under an etcd lease, keeps it and the host's load
 * fresh, serves the token-protected API; SIGTERM (or SIGINT) gives the lease back and exits 0;
 * SIGHUP re-reads the token file.
 */
export const daemon: Handler = async ({ opts }, ctx) => {
  // The same name the CLI on this host uses for its clusters and operations (hostId).
  const name = validateName('--name', optString(opts, 'name') ?? hostId(), 64);
  const tags = validateTags('--tags', optList(opts, 'tags').flatMap((t) => t.split(',')).filter(Boolean));
  const listen = parseListen(optString(opts, 'listen') ?? '127.0.0.1:7946');
  const ttl = Number(optString(opts, 'ttl') ?? '10');
  if (!Number.isInteger(ttl) || ttl < 2 || ttl > 300) throw new ValidationError('--ttl', 'must be a whole number of seconds from 2 to 300');
  const tokenFile = optString(opts, 'tokenFile') ?? `${ctx.config.stateDir}/agent.token`;
  const certFile = optString(opts, 'tlsCert');
  const keyFile = optString(opts, 'tlsKey');
  if ((certFile === undefined) !== (keyFile === undefined)) throw new ValidationError(certFile ? '--tls-key' : '--tls-cert', 'TLS needs both --tls-cert and --tls-key');
  let tls: { cert: Buffer; key: Buffer } | undefined;
  if (certFile && keyFile) {
    try {
      tls = { cert: await readFile(resolve(ctx.cwd, certFile)), key: await readFile(resolve(ctx.cwd, keyFile)) };
    } catch (e) {
      throw new ValidationError('--tls-cert', `cannot read the certificate or key: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  let token = await agentToken(tokenFile);
  const store = await ctx.openStore();
  const advertise = advertiseAddress(listen.host, optString(opts, 'advertise'));
  const mode = optString(opts, 'mode') ?? 'recovery';
  if (mode !== 'new' && mode !== 'recovery') throw new ValidationError('--mode', 'use recovery (keep clusters) or new (delete this host\'s clusters)');
  const shareOpt = optString(opts, 'share');
  const share = shareOpt === undefined ? null : resolve(ctx.cwd, shareOpt);
  if (share !== null && !(await stat(share).then((s) => s.isDirectory(), () => false))) throw new ValidationError('--share', `${share} is not a directory`);
  const agent = new Agent({ name, tags, listen, ttlSeconds: ttl, tokenFile, dockerSocket: dockerSocketPath(ctx.env), tls, fleet: ctx.config.fleet, advertise, prune: optBool(opts, 'prune'), pidFile: `${ctx.config.stateDir}/agent.json`, mode, share, dotBinds: (spec) => dotBinds(ctx, store, spec), ops: (lease) => new OpRunner(ctx, store, name, 'agent', lease, (l) => ctx.events.step(l)) }, store, new HostRepo(store, ctx.config.fleet), (l) => ctx.events.step(l));
  // The agent lives as long as the process: it is the one handler that listens to SIGHUP itself.
  const reload = () => {
    agentToken(tokenFile).then(
      (t) => {
        token = t;
        ctx.events.step('agent: token reloaded');
      },
      // A bad file keeps the token the agent has.
      (e: Error) => ctx.events.warn(`agent: token not reloaded: ${e.message}`),
    );
  };
  process.on('SIGHUP', reload);
  try {
    await agent.start(() => token, ctx.signal);
    await agent.serve(ctx.signal);
  } finally {
    process.off('SIGHUP', reload);
    await agent.stop();
    await store.close();
  }
  return { data: { host: name, address: agent.address, stopped: true }, view: { kind: 'lines', lines: [`agent ${name} stopped`] } };
};
