import { ConflictError, NotFoundError } from '../../core/errors.js';
import { validateTags, type HostRecord } from '../../core/hosts.js';
import { validateName } from '../../core/names.js';
import { formatSize } from '../../core/size.js';
import { HostRepo } from '../../state/hosts.js';
import { timeCell, type CommandResult, type Context, type View } from '../types.js';
import { withStore } from '../with-store.js';

const withHosts = <T>(ctx: Context, fn: (repo: HostRepo) => Promise<T>): Promise<T> => withStore(ctx, (store) => fn(new HostRepo(store, ctx.config.fleet)));

async function requireHost(repo: HostRepo, name: string): Promise<{ host: HostRecord; up: boolean }> {
  const h = await repo.get(validateName('HOST', name));
  if (!h) throw new NotFoundError(`no host named ${name} in fleet`, { hint: 'list hosts with: knarr host list' });
  return h;
}

const row = ({ host, up }: { host: HostRecord; up: boolean }) => [
  host.name,
  up ? 'up' : 'down',
  host.state,
  host.tags.join(',') || '-',
  String(host.load.runningJobs),
  formatSize(host.load.freeMemory),
  host.address,
];

const capacityText = (host: HostRecord) => `${host.capacity.cpu}m cpu, ${formatSize(host.capacity.memory)}`;

/** `knarr host list`: hosts of the fleet, up while their agent holds its lease. */
export const hostList = async (ctx: Context): Promise<CommandResult> =>
  withHosts(ctx, async (repo) => {
    const hosts = (await repo.list()).sort((a, b) => a.host.name.localeCompare(b.host.name));
    return {
      data: hosts.map((h) => ({ ...h.host, up: h.up })),
      view: {
        kind: 'table',
        columns: ['HOST', 'UP', 'STATE', 'TAGS', 'JOBS', 'FREE MEM', 'ADDRESS', 'CAPACITY', 'DOCKER', 'JOINED', 'UPDATED'],
        wide: ['CAPACITY', 'DOCKER', 'JOINED', 'UPDATED'],
        rows: hosts.map((h) => [...row(h), capacityText(h.host), h.host.dockerEndpoint, timeCell(h.host.joinedAt), timeCell(h.host.updatedAt)]),
      },
    };
  });

/** `knarr host show HOST`. */
export const hostShow = async (hostName: string, ctx: Context): Promise<CommandResult> =>
  withHosts(ctx, async (repo) => {
    const h = await requireHost(repo, hostName);
    return { data: { ...h.host, up: h.up }, view: hostView(h) };
  });

/** What `host show` prints: one field a line. */
function hostView(h: { host: HostRecord; up: boolean }): View {
  const [name, up, state, tags, jobs, free, address] = row(h);
  return {
    kind: 'fields',
    fields: [
      ['host', name!],
      ['up', up!],
      ['state', state!],
      ['tags', tags!],
      ['jobs', jobs!],
      ['free memory', free!],
      ['capacity', capacityText(h.host)],
      ['address', address!],
      ['docker', h.host.dockerEndpoint],
      // How long the fleet waits for its agent to start again before moving its jobs (a host that left: not at all).
      ['restart grace', h.host.state === 'left' ? 'none (left)' : `${h.host.restartGraceSeconds ?? 0}s`],
      ['unknown containers', (h.host.unknownContainers ?? []).map((c) => `${c.name} (${c.image})`).join(', ') || '-'],
      ['collected', h.host.collected ? `${h.host.collected.removed.join(', ')} (${h.host.collected.at})` : '-'],
      ['joined', timeCell(h.host.joinedAt)],
      ['updated', timeCell(h.host.updatedAt)],
    ],
  };
}

/** `knarr host drain HOST [--undo]`: no new jobs land there. */
export const hostDrain = async (name: string, opts: { undo: boolean }, ctx: Context): Promise<CommandResult> =>
  withHosts(ctx, async (repo) => {
    const { host } = await requireHost(repo, name);
    const state = opts.undo ? 'ok' : 'draining';
    if (ctx.runner.dryRun) ctx.runner.note(`set host ${host.name}'s state to ${state} in etcd`);
    else await repo.update(host.name, (cur) => cur && { ...cur, state, updatedAt: new Date().toISOString() });
    return { data: { host: host.name, state, previous: host.state }, view: { kind: 'lines', lines: [`host ${host.name} is ${state}`] } };
  });

/** `knarr host tag HOST TAG... [--remove]`. */
export const hostTag = async (name: string, tagArgs: string[], opts: { remove: boolean }, ctx: Context): Promise<CommandResult> =>
  withHosts(ctx, async (repo) => {
    const { host } = await requireHost(repo, name);
    const given = validateTags('TAG', tagArgs);
    const change = (current: string[]) => (opts.remove ? current.filter((t) => !given.includes(t)) : validateTags('TAG', [...current, ...given]));
    let tags = change(host.tags);
    if (ctx.runner.dryRun) ctx.runner.note(`set host ${host.name}'s tags to ${tags.join(',') || '(none)'} in etcd`);
    else await repo.update(host.name, (cur) => cur && { ...cur, tags: (tags = change(cur.tags)), updatedAt: new Date().toISOString() });
    return { data: { host: host.name, tags }, view: { kind: 'lines', lines: [`host ${host.name} tags: ${tags.join(',') || '-'}`] } };
  });

/** `knarr host leave HOST [--force]`: forget a host; one whose agent still runs needs --force. */
export const hostLeave = async (name: string, opts: { force: boolean }, ctx: Context): Promise<CommandResult> =>
  withHosts(ctx, async (repo) => {
    const { host, up } = await requireHost(repo, name);
    if (up && !opts.force) throw new ConflictError(`host ${host.name} is up (its agent holds its lease)`, { hint: 'stop its agent first, or pass --force' });
    if (ctx.runner.dryRun) ctx.runner.note(`remove host ${host.name}'s record from etcd`);
    else await repo.remove(host.name);
    return { data: { host: host.name, left: true }, view: { kind: 'lines', lines: [`host ${host.name} left the fleet`] } };
  });
