import { userInfo } from 'node:os';
import { statePaths } from '../../core/paths.js';
import type { EtcdServerState } from '../../host/etcd-server.js';
import { hostId } from '../../host/identity.js';
import { listPoolRecords, readJson } from '../../host/local-state.js';
import { connectEtcd, type Store } from '../../state/store.js';
import { NAME_KINDS, type NameKind } from '../define.js';
import type { CommandResult, Context } from '../types.js';

/** A shell waits for completion: past this, it gets nothing rather than a hang. */
const DEADLINE_MS = 1500;
const LOOKUP_TIMEOUT_MS = 700;

/** The fleet store if it answers at once: --etcd, else the local etcd when it runs (completion never starts it). */
async function quickStore(ctx: Context): Promise<Store | null> {
  const quick = { attemptTimeoutMs: LOOKUP_TIMEOUT_MS, deadlineMs: LOOKUP_TIMEOUT_MS };
  if (ctx.config.etcd.length > 0) return connectEtcd(ctx.config.etcd, { ...ctx.config.etcdClient, ...quick });
  const local = await readJson<EtcdServerState>(statePaths(ctx.config.stateDir).etcdState);
  if (!local?.pid) return null;
  const { storeOptions } = await import('../etcd/cluster.js');
  return connectEtcd(local.endpoints ?? [local.clientUrl], { ...storeOptions(local), ...quick });
}

/** Each kind loads only its own repository: completion runs at every TAB. */
async function fromStore(kind: Exclude<NameKind, 'pool' | 'docker-image'>, context: string | undefined, store: Store, ctx: Context): Promise<string[]> {
  const fleet = ctx.config.fleet;
  const dots = async () => new (await import('../../state/dots.js')).DotRepo(store, fleet, hostId(), true);
  const clusters = async () => new (await import('../../state/clusters.js')).ClusterRepo(store, fleet);
  const user = ctx.config.cluster.user ?? userInfo().username;
  switch (kind) {
    case 'dot':
      return (await (await dots()).list()).map((d) => d.name);
    case 'branch':
      return context ? Object.keys((await (await dots()).get(context))?.branches ?? {}) : [];
    case 'remote':
      return (await (await dots()).listRemotes()).map((r) => r.name);
    case 'job':
      return (await new (await import('../../state/jobs.js')).JobRepo(store, fleet).intents()).map((i) => i.spec.name);
    case 'cluster':
      return (await (await clusters()).list()).filter((c) => c.user === user).map((c) => c.name);
    case 'node':
      return context ? ((await (await clusters()).get(user, context))?.nodes ?? []).map((n) => n.hostname) : [];
    case 'image': {
      const { thisHost } = await import('../../daemon/pidfile.js');
      return (await (await clusters()).images(await thisHost(ctx.config.stateDir))).map((i) => i.name);
    }
    case 'op':
      return (await new (await import('../../state/ops.js')).OpRepo(store, fleet).list()).map((o) => o.id);
    case 'host':
      return (await new (await import('../../state/hosts.js')).HostRepo(store, fleet).list()).map((h) => h.host.name);
    case 'env':
      return (await new (await import('../../state/envs.js')).EnvRepo(store, fleet).list()).map((e) => e.name);
    case 'member':
      return context ? ((await new (await import('../../state/envs.js')).EnvRepo(store, fleet).get(context))?.members ?? []).map((m) => m.name) : [];
  }
}

/** The local docker engine's tagged images (a job's image; knarr never pulls). */
async function dockerImages(ctx: Context): Promise<string[]> {
  const { DockerEngine, dockerSocketPath, ENGINE_API } = await import('../../host/docker.js');
  // The oldest API knarr speaks lists images on every engine, and skips a /_ping that waits up to 10 s.
  const engine = new DockerEngine(dockerSocketPath(ctx.env), true, ENGINE_API.oldest);
  const images = await engine.call<{ RepoTags?: string[] | null }[]>('GET', '/images/json', undefined, LOOKUP_TIMEOUT_MS);
  return images.flatMap((i) => i.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
}

async function lookup(kind: NameKind, context: string | undefined, ctx: Context): Promise<string[]> {
  if (kind === 'pool') return (await listPoolRecords(ctx.config.stateDir)).map((p) => p.name);
  if (kind === 'docker-image') return dockerImages(ctx);
  const store = await quickStore(ctx);
  if (!store) return [];
  try {
    return await fromStore(kind, context, store, ctx);
  } finally {
    await store.close();
  }
}

/** `knarr __complete KIND [CONTEXT]`: the names of KIND, sorted; none at all (and no error) when they cannot be had quickly. */
export async function completeNames(kind: string, context: string | undefined, ctx: Context): Promise<CommandResult> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string[]>((resolve) => {
    timer = setTimeout(() => resolve([]), DEADLINE_MS);
  });
  // A kind this knarr does not know (a completion script of another version) has no names either.
  const known = (NAME_KINDS as readonly string[]).includes(kind);
  const names = known ? await Promise.race([lookup(kind as NameKind, context, ctx).catch(() => []), late]) : [];
  clearTimeout(timer);
  const sorted = [...new Set(names)].sort();
  return { data: sorted, view: { kind: 'lines', lines: sorted } };
}
