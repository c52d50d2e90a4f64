import { mkdir, readFile, realpath, stat } from 'node:fs/promises';
import { checkHostMounts } from '../core/host-mounts.js';
import type { JobSpec } from '../core/job-spec.js';
import { listPoolRecords } from '../host/local-state.js';
import { networkInterfaces } from 'node:os';
import { hostId } from '../host/identity.js';
import { dryRunRefused, ValidationError } from '../core/errors.js';
import { resolveDaemonSettings, restartNeeded, type DaemonSettings } from '../core/daemon-settings.js';
import type { Config } from '../core/config.js';
import { Agent, agentToken } from '../daemon/agent.js';
import { EtcdDefrag } from '../daemon/etcd-defrag.js';
import { HubStore, hubRoutes } from '../daemon/hub.js';
import { dockerSocketPath } from '../host/docker.js';
import { HostRepo } from '../state/hosts.js';
import { dotBinds, hostsWithDots } from './job/volumes.js';
import { OpRunner } from '../ops/runner.js';
import { clusterCollector } from './cluster/collector.js';
import { clusterUpgrades } from './cluster/volume-route.js';
import { envWatcher } from './env/watch.js';
import type { SettingFlags } from './setting-options.js';
import type { CommandResult, Context } from './types.js';

/** The address other hosts reach this host at: the one given, the listen address, or the first outward IPv4 when it listens on all. */
function advertiseAddress(s: DaemonSettings): string {
  if (s.advertise !== null) return s.advertise;
  if (s.listen.host !== '0.0.0.0' && s.listen.host !== '::') return s.listen.host;
  const outward = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal);
  return outward?.address ?? '127.0.0.1';
}

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127\./.test(host);

/** --no-allow-host-mounts: a job may bind only what lies in this host's pools, never the docker socket. */
async function refuseHostMounts(ctx: Context, spec: JobSpec, dockerSocket: string): Promise<void> {
  const sources = new Map<string, string>();
  for (const v of spec.volumes) if (v.kind === 'host') sources.set(v.source, await realpath(v.source).catch(() => v.source));
  const pools = (await listPoolRecords(ctx.config.stateDir)).map((p) => p.mountpoint);
  checkHostMounts(spec, sources, pools, [dockerSocket, '/var/run/docker.sock', '/run/docker.sock']);
}

async function readTls(s: DaemonSettings): Promise<{ cert: Buffer; key: Buffer } | undefined> {
  if (s.tls === null) return undefined;
  try {
    return { cert: await readFile(s.tls.cert), key: await readFile(s.tls.key) };
  } catch (e) {
    throw new ValidationError('--tls-cert', `cannot read the certificate or key: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

const settingsOf = (flags: SettingFlags, config: Config, ctx: Context) =>
  resolveDaemonSettings(flags, config.daemon, {
    configFile: config.configFile,
    stateDir: config.stateDir,
    cwd: ctx.cwd,
    hostname: hostId(),
    hubDir: config.hub.dir,
  });

/** Checks the agent's settings from the config file and flags, as `knarr daemon` would start with them; throws naming the field. */
export function checkDaemonSettings(ctx: Context, flags: SettingFlags = {}): void {
  settingsOf(flags, ctx.config, ctx);
}

/**
 * `knarr daemon`: the agent. Registers this host under an etcd lease, keeps it and the host's load
 * fresh, serves the token-protected API; SIGTERM (or SIGINT) gives the lease back and exits 0;
 * SIGHUP reloads the config file, the token and the certificate.
 */
export async function daemon(ctx: Context, flags: SettingFlags = {}): Promise<CommandResult> {
  let settings = settingsOf(flags, ctx.config, ctx);
  // A DOCKER_HOST knarr refuses is bad input: refused before a token is written or the store is opened.
  const dockerSocket = dockerSocketPath(ctx.env);
  if (ctx.runner.dryRun)
    throw dryRunRefused(
      'knarr daemon',
      'the agent exists to change this host (register it, run its jobs and operations); see what it would run with knarr job list and knarr op list --active',
    );
  const tls = await readTls(settings);
  let token = await agentToken(settings.tokenFile);
  if (!tls && !isLoopback(settings.listen.host))
    ctx.events.warn(
      `agent: the API listens on ${settings.listen.host} without TLS: its token, which lets its holder run anything on this host, crosses the ` +
        `network in clear; give --tls-cert and --tls-key`,
    );
  if (
    settings.share !== null &&
    !(await stat(settings.share).then(
      (s) => s.isDirectory(),
      () => false,
    ))
  )
    throw new ValidationError('--share', `${settings.share} is not a directory`);
  if (settings.hubDir !== null) {
    await mkdir(settings.hubDir, { recursive: true, mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      throw new ValidationError('--hub', `cannot make the hub directory ${settings.hubDir}: ${e.code ?? e.message}`);
    });
    ctx.events.step(`hub: serving the dots in ${settings.hubDir} under /hub/v1/`);
  }
  const store = await ctx.openStore('agent');
  // The agent's own work (operations, dot binds) outlives SIGTERM while it drains: its commands stop only when the drain time is up.
  const work = new AbortController();
  // Its operations reach the fleet's agents (itself too) with the agents' token: its own file, unless jobs.agentTokenFile names another.
  const jobs =
    ctx.config.jobs.agentTokenFile === `${ctx.config.stateDir}/agent.token` ? { ...ctx.config.jobs, agentTokenFile: settings.tokenFile } : ctx.config.jobs;
  const workCtx: Context = { ...ctx, config: { ...ctx.config, jobs }, runner: ctx.runner.withSignal(work.signal), signal: work.signal };
  const advertise = advertiseAddress(settings);
  const agent = new Agent(
    {
      ...settings,
      tls,
      dockerSocket,
      fleet: ctx.config.fleet,
      strategy: ctx.config.scheduler.strategy,
      opRetentionMs: ctx.config.opRetentionMs,
      advertise,
      // The clusters' VXLAN between hosts rides on the address other hosts reach this one at; a loopback agent has none.
      overlay: { bridge: ctx.config.cluster.bridge, vtep: isLoopback(advertise) || advertise.includes(':') ? null : advertise, runner: workCtx.runner },
      pidFile: `${ctx.config.stateDir}/agent.json`,
      dotBinds: async (spec) => {
        if (!settings.allowHostMounts) await refuseHostMounts(ctx, spec, dockerSocket);
        return dotBinds(workCtx, store, spec);
      },
      hostsWithDots: (spec, hosts) => hostsWithDots(store, ctx.config.fleet, spec, hosts),
      ops: (lease) => new OpRunner(workCtx, store, settings.name, 'agent', lease, (l) => ctx.events.step(l)),
      onDrainTimeout: () => work.abort(),
      collect: { everySeconds: settings.collectSeconds, run: clusterCollector(workCtx, store, settings.name) },
      nodeExec: { runner: ctx.runner, argv: async (req) => (await import('./cluster/commands.js')).nodeAttachArgv(ctx, store, settings.name, req) },
      upgrades: clusterUpgrades(workCtx, store),
      envs: envWatcher(workCtx, store, settings.name, (l) => ctx.events.step(l)),
      openRoutes: settings.hubDir === null ? {} : hubRoutes(new HubStore(settings.hubDir)),
    },
    store,
    new HostRepo(store, ctx.config.fleet),
    (l) => ctx.events.step(l),
  );

  // SIGHUP: everything is read and checked first; a bad file or token changes nothing.
  const reload = async () => {
    const config = await ctx.reloadConfig();
    const next = settingsOf(flags, config, ctx);
    const nextToken = await agentToken(next.tokenFile, false);
    const nextTls = next.tls !== null && tls !== undefined ? await readTls(next) : undefined;
    // A certificate that does not match its key (a rotation half done) is refused here, before anything changed.
    if (nextTls) {
      const { createSecureContext } = await import('node:tls');
      try {
        createSecureContext({ cert: nextTls.cert, key: nextTls.key });
      } catch (e) {
        throw new ValidationError(next.tls!.cert, `the certificate and key do not make a TLS context: ${(e as Error).message}`);
      }
    }
    const later = restartNeeded(settings, next);
    if ((next.tls === null) !== (tls === undefined)) later.push('tls');
    for (const k of ['fleet', 'etcd', 'stateDir'] as const) if (JSON.stringify(config[k]) !== JSON.stringify(ctx.config[k])) later.push(k);
    // Tags first: they are the one step that can fail (the store), and then nothing else has changed.
    if (next.tags.join(',') !== settings.tags.join(',')) await agent.setTags(next.tags);
    token = nextToken;
    if (nextTls) agent.setTls(nextTls);
    agent.setPrune(next.prune);
    agent.setStopPolicy(next.restartGraceSeconds, next.leaveOnStop);
    settings = { ...next, ...Object.fromEntries(later.filter((k) => k in settings).map((k) => [k, settings[k as keyof DaemonSettings]])) };
    ctx.events.step(
      `agent: config reloaded (tags ${next.tags.join(',') || 'none'}, prune ${next.prune ? 'on' : 'off'}${nextTls ? ', certificate renewed' : ''})`,
    );
    if (later.length > 0) ctx.events.warn(`agent: ${later.join(', ')} changed; restart the agent to apply ${later.length > 1 ? 'them' : 'it'}`);
  };
  let reloading = Promise.resolve();
  const onHangup = () => {
    reloading = reloading.then(reload).catch((e: Error) => ctx.events.warn(`agent: config not reloaded, the running one stays: ${e.message}`));
  };
  process.on('SIGHUP', onHangup);
  // The managed etcd member on this host (none with --etcd) is defragmented when compaction has freed enough in it.
  const defragging = new AbortController();
  const defrag =
    ctx.config.etcd.length === 0 && settings.etcdDefrag.checkSeconds > 0
      ? new EtcdDefrag(
          store,
          {
            stateDir: ctx.config.stateDir,
            fleet: ctx.config.fleet,
            host: settings.name,
            checkMs: settings.etcdDefrag.checkSeconds * 1000,
            minFreeBytes: settings.etcdDefrag.minFreeBytes,
          },
          (l) => ctx.events.step(l),
        )
      : null;
  try {
    await agent.start(() => token, ctx.signal);
    // Not waited for on the way out: a defragmentation under way ends in etcd anyway, and its lock with its lease.
    void defrag?.run(defragging.signal);
    try {
      await agent.serve(ctx.signal);
    } finally {
      defragging.abort();
    }
  } finally {
    // A SIGHUP during the drain (logrotate, a reload) must not kill the agent with its jobs and lease.
    const stopping = () => ctx.events.warn('agent: stopping; SIGHUP ignored');
    process.on('SIGHUP', stopping);
    process.off('SIGHUP', onHangup);
    try {
      await reloading;
      await agent.stop();
      work.abort();
      await store.close();
    } finally {
      process.off('SIGHUP', stopping);
    }
  }
  return { data: { host: settings.name, address: agent.address, stopped: true }, view: { kind: 'lines', lines: [`agent ${settings.name} stopped`] } };
}
