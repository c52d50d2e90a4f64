import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { ConflictError, NotFoundError, ValidationError } from '../../core/errors.js';
import {
  checkAdds,
  checkNewRole,
  checkRolesSize,
  isPresent,
  keptBecause,
  MAX_MEMBERS,
  NODE_MEMBER_USER,
  nodeCluster,
  parseEnvFile,
  parseRole,
  secondBalancer,
  validateEnvName,
  validateRoleName,
  type EnvHistoryEntry,
  type EnvRecord,
  type RoleSpec,
} from '../../core/env.js';
import { thisHost } from '../../daemon/pidfile.js';
import { ClusterRepo } from '../../state/clusters.js';
import { EnvRepo } from '../../state/envs.js';
import { HostRepo } from '../../state/hosts.js';
import { JobRepo } from '../../state/jobs.js';
import type { Store } from '../../state/store.js';
import { runOperation } from '../op.js';
import { timeCell, type Cell, type CommandResult, type Context, type View } from '../types.js';
import { withStore } from '../with-store.js';
import { loadYamlParser, parseYamlText, readInputFile, type YamlParse } from '../yaml-file.js';

/** How many history lines `env show` lists. */
const SHOWN_HISTORY = 10;

/** A YAML (or JSON) file as a value, its problems named after the field that gave it. */
async function readYaml(ctx: Context, field: string, file: string): Promise<{ value: unknown; path: string }> {
  const { text, path } = await readInputFile(ctx, field, file);
  checkRolesSize(field, Buffer.byteLength(text));
  return { value: parseYamlText(await yamlParser(), field, path, text), path };
}

const withEnvs = <T>(ctx: Context, fn: (repo: EnvRepo, store: Store) => Promise<T>) =>
  withStore(ctx, (store) => fn(new EnvRepo(store, ctx.config.fleet), store));

async function requireEnv(repo: EnvRepo, name: string): Promise<EnvRecord> {
  const env = await repo.get(name);
  if (!env) throw new NotFoundError(`no environment ${name}`, { hint: 'list them with: knarr env list' });
  return env;
}

/** Job names the members would take that a job outside the environment has already. */
async function takenJobNames(store: Store, ctx: Context, names: readonly string[]): Promise<string[]> {
  const jobs = new JobRepo(store, ctx.config.fleet);
  const taken: string[] = [];
  for (const n of names) if (await jobs.intent(n)) taken.push(n);
  return taken;
}

/** `knarr env create NAME [-f env.yaml]`: the roles and members of the file, made as one operation. */
export async function envCreate(nameArg: string, opts: { file?: string; detach: boolean }, ctx: Context): Promise<CommandResult> {
  const name = validateEnvName('NAME', nameArg);
  let file: ReturnType<typeof parseEnvFile> = parseEnvFile({}, () => ({}));
  if (opts.file) {
    await yamlParser();
    const { value, path } = await readYaml(ctx, '--file', opts.file);
    const base = dirname(path);
    file = parseEnvFile(value, (rolePath, at) => {
      const full = resolve(base, rolePath);
      let text: string;
      try {
        text = readFileSync(full, 'utf8');
      } catch (e) {
        throw new ValidationError(at, `cannot read role file ${full}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      // A role file is small: parsed here with the file that names it, so one run reports every problem.
      return roleText(at, full, text);
    });
  }
  const roles = file.roles;
  checkRolesSize('--file', Buffer.byteLength(JSON.stringify(roles)));
  checkAdds({ roles: Object.fromEntries(roles.map((r) => [r.name, r])), members: [], next: {} }, file.members);
  const host = await thisHost(ctx.config.stateDir);
  return withEnvs(ctx, async (repo, store) => {
    if (await repo.get(name)) throw new ConflictError(`an environment named ${name} exists`, { hint: `see it with: knarr env show ${name}` });
    const names = file.members.flatMap((g) => Array.from({ length: g.count }, (_, i) => `${name}-${g.role}-${i + 1}`));
    const nodes = names.filter((n) => roles.find((r) => n.startsWith(`${name}-${r.name}-`))?.kind === 'node');
    const clusters = new ClusterRepo(store, ctx.config.fleet);
    const takenNodes = (await Promise.all(nodes.map(async (n) => ((await clusters.get(nodeCluster(n).user, n)) ? n : null)))).filter(Boolean);
    if (takenNodes.length > 0)
      throw new ConflictError(`clusters named ${takenNodes.join(', ')} of user ${NODE_MEMBER_USER} exist: the node members would take those names`, {
        hint: `pick another environment name, or delete them: knarr cluster delete NAME --user ${NODE_MEMBER_USER}`,
      });
    const taken = await takenJobNames(store, ctx, names);
    if (taken.length > 0)
      throw new ConflictError(`jobs named ${taken.join(', ')} exist outside the environment: its members would take those names`, {
        hint: 'pick another environment name, or remove those jobs',
      });
    return runOperation(ctx, store, 'env.create', { env: name, roles, members: file.members }, host, { detach: opts.detach });
  });
}

/** A role file's text as a value (YAML is loaded lazily; role files are parsed synchronously once it is). */
function roleText(at: string, path: string, text: string): unknown {
  checkRolesSize(at, Buffer.byteLength(text));
  if (!yamlParse) throw new ValidationError(at, 'internal: YAML parser not loaded');
  return parseYamlText(yamlParse, at, path, text);
}
let yamlParse: YamlParse | null = null;
async function yamlParser(): Promise<YamlParse> {
  yamlParse ??= await loadYamlParser();
  return yamlParse;
}

/** `knarr env add NAME ROLE [--count N] [-f role.yaml]`: members of a role, each with its hooks, as one operation. */
export async function envAdd(nameArg: string, roleArg: string, opts: { count?: string; file?: string; detach: boolean }, ctx: Context): Promise<CommandResult> {
  const name = validateEnvName('NAME', nameArg);
  const role = validateRoleName('ROLE', roleArg);
  const count = opts.count === undefined ? 1 : Number(opts.count);
  if (!/^\d+$/.test(opts.count ?? '1') || count < 1 || count > MAX_MEMBERS)
    throw new ValidationError('--count', `${JSON.stringify(opts.count)} must be a count from 1 to ${MAX_MEMBERS}`);
  let roleSpec: RoleSpec | undefined;
  if (opts.file) {
    const { value } = await readYaml(ctx, '--file', opts.file);
    roleSpec = parseRole(value, '--file');
    if (roleSpec.name !== role) throw new ValidationError('--file', `the file's role is ${roleSpec.name}, not ${role}`);
  }
  return withEnvs(ctx, async (repo, store) => {
    const env = await requireEnv(repo, name);
    const known = env.roles[role];
    if (roleSpec && known && JSON.stringify(known) !== JSON.stringify(roleSpec))
      throw new ConflictError(`environment ${name} has a role ${role} already, different from the file's`, {
        hint: 'leave out --file to add members of the role it has, or name the new role otherwise',
      });
    if (!known && !roleSpec)
      throw new NotFoundError(`environment ${name} has no role ${role}; its roles are ${Object.keys(env.roles).join(', ')}`, {
        hint: `give the role's file: knarr env add ${name} ${role} -f ${role}.yaml`,
      });
    if (roleSpec && !known) {
      checkNewRole(roleSpec, env.roles);
      checkRolesSize('--file', Buffer.byteLength(JSON.stringify({ ...env.roles, [role]: roleSpec })));
    }
    // One balancer: it is the environment's service, and two would point it at each other.
    const second = secondBalancer(env, (known ?? roleSpec)!, count);
    if (second) throw new ConflictError(second, { hint: `see it with: knarr env show ${name}` });
    const present = env.members.filter((m) => m.state !== 'lost').length;
    if (present + count > MAX_MEMBERS)
      throw new ValidationError('--count', `${name} has ${present} members; ${count} more would pass the ${MAX_MEMBERS} an environment has at most`);
    checkAdds(roleSpec && !known ? { ...env, roles: { ...env.roles, [role]: roleSpec } } : env, [{ role, count }]);
    const args = { env: name, role, count, ...(roleSpec && !known ? { roleSpec } : {}) };
    return runOperation(ctx, store, 'env.add', args, env.home, { detach: opts.detach });
  });
}

/** `knarr env remove NAME MEMBER`: its removal hooks (which may deny it), then the member, as one operation. */
export async function envRemove(nameArg: string, member: string, opts: { detach: boolean }, ctx: Context): Promise<CommandResult> {
  const name = validateEnvName('NAME', nameArg);
  return withEnvs(ctx, async (repo, store) => {
    const env = await requireEnv(repo, name);
    const m = env.members.find((x) => x.name === member);
    if (!m)
      throw new NotFoundError(`environment ${name} has no member ${member}; its members are ${env.members.map((x) => x.name).join(', ') || 'none'}`, {
        hint: `see them with: knarr env show ${name}`,
      });
    // A member others require stays while they need it (the balancer, while there are two webs).
    const kept = keptBecause(env, m);
    if (kept) throw new ConflictError(kept.message, { hint: kept.hint });
    return runOperation(ctx, store, 'env.remove', { env: name, member }, env.home, { detach: opts.detach });
  });
}

/** `knarr env start|stop|suspend|resume|destroy NAME`: one operation over every member. */
export async function envLifecycle(
  verb: 'start' | 'stop' | 'suspend' | 'resume' | 'destroy',
  nameArg: string,
  opts: { detach: boolean },
  ctx: Context,
): Promise<CommandResult> {
  const name = validateEnvName('NAME', nameArg);
  return withEnvs(ctx, async (repo, store) => {
    const env = await requireEnv(repo, name);
    return runOperation(ctx, store, `env.${verb}`, { env: name }, env.home, { detach: opts.detach });
  });
}

const countByRole = (env: EnvRecord): string => {
  const counts = new Map<string, number>();
  for (const m of env.members) if (isPresent(m)) counts.set(m.role, (counts.get(m.role) ?? 0) + 1);
  return [...counts].map(([r, n]) => `${r}×${n}`).join(' ') || '-';
};

/** `knarr env list`. */
export const envList = (ctx: Context): Promise<CommandResult> =>
  withEnvs(ctx, async (repo, store) => {
    const envs = (await repo.list()).sort((a, b) => a.name.localeCompare(b.name));
    const jobs = new JobRepo(store, ctx.config.fleet);
    const services = await Promise.all(envs.map((e) => jobs.service(e.name)));
    return {
      data: envs.map((e, i) => ({ ...e, service: services[i] ?? null })),
      view: {
        kind: 'table',
        columns: ['ENV', 'STATE', 'MEMBERS', 'SERVICE', 'HOME', 'CREATED'],
        wide: ['CREATED'],
        rows: envs.map((e, i) => [
          e.name,
          e.state,
          countByRole(e),
          services[i] ? `${services[i]!.address}:${services[i]!.port}` : '-',
          e.home,
          timeCell(e.createdAt),
        ]),
      },
    };
  });

export const HISTORY_COLUMNS = ['TIME', 'EVENT', 'MEMBER', 'OTHER', 'ON', 'HOST', 'EXIT', 'TOOK', 'MESSAGE'];

function historyRow(e: EnvHistoryEntry): Cell[] {
  return [
    timeCell(e.at),
    e.event,
    e.member,
    e.other ?? '-',
    e.on ?? '-',
    e.host ?? '-',
    e.exit === undefined ? '-' : String(e.exit),
    e.durationMs === undefined ? '-' : `${e.durationMs}ms`,
    (e.message ?? '').replace(/\s+/g, ' ') || '-',
  ];
}

/** `knarr env show NAME`: roles, members (role, host, address, state) and the latest history. */
export const envShow = (nameArg: string, ctx: Context): Promise<CommandResult> =>
  withEnvs(ctx, async (repo, store) => {
    const name = validateEnvName('NAME', nameArg);
    const env = await requireEnv(repo, name);
    const [history, service, hosts] = await Promise.all([
      repo.history(name),
      new JobRepo(store, ctx.config.fleet).service(name),
      new HostRepo(store, ctx.config.fleet).list(),
    ]);
    const up = new Set(hosts.filter((h) => h.up).map((h) => h.host.name));
    const recent = history.slice(-SHOWN_HISTORY);
    const roles = Object.values(env.roles).sort((a, b) => a.priority - b.priority);
    const view: View = {
      kind: 'sections',
      sections: [
        {
          kind: 'fields',
          fields: [
            ['environment', env.name],
            ['state', env.state],
            ['home', `${env.home}${up.has(env.home) ? '' : ' (down)'}`],
            ['service', service ? `${service.address}:${service.port} (link it: --link ${env.name})` : '-'],
            ['roles', roles.map((r) => `${r.name} (priority ${r.priority}${r.kind === 'balancer' ? ', built in' : ''})`).join(', ')],
            ['created', timeCell(env.createdAt)],
          ],
        },
        {
          kind: 'table',
          columns: ['MEMBER', 'ROLE', 'KIND', 'HOST', 'ADDRESS', 'STATE'],
          rows: env.members.map((m) => [m.name, m.role, m.kind, m.host ? `${m.host}${up.has(m.host) ? '' : ' (down)'}` : '-', m.address ?? '-', m.state]),
        },
        { kind: 'table', columns: HISTORY_COLUMNS, rows: recent.map(historyRow) },
      ],
    };
    return { data: { ...env, service: service ?? null, history: recent }, view };
  });

/** `knarr env events NAME [-f]`: the environment's history, each hook run with where it ran, its exit and how long it took. */
export async function envEvents(nameArg: string, opts: { follow: boolean }, ctx: Context): Promise<CommandResult> {
  const name = validateEnvName('NAME', nameArg);
  if (!opts.follow)
    return withEnvs(ctx, async (repo) => {
      await requireEnv(repo, name);
      const history = await repo.history(name);
      return { data: history, view: { kind: 'table', columns: HISTORY_COLUMNS, rows: history.map(historyRow) } };
    });
  const json = ctx.config.output === 'json' || ctx.config.output === 'yaml';
  const line = (e: EnvHistoryEntry) => (json ? JSON.stringify(e) : historyRow(e).map(String).join('  '));
  return {
    data: [],
    view: { kind: 'lines', lines: [] },
    stream: async (stdout: Writable) => {
      const store = await ctx.openStore();
      try {
        const repo = new EnvRepo(store, ctx.config.fleet);
        await requireEnv(repo, name);
        const seen = new Set<string>();
        const write = (e: EnvHistoryEntry) => {
          const key = JSON.stringify(e);
          if (seen.has(key)) return;
          seen.add(key);
          stdout.write(`${line(e)}\n`);
        };
        // The watch starts first: a line written between the list and the watch is not lost (the set drops it twice).
        await repo.followHistory(name, write, ctx.signal);
        for (const e of await repo.history(name)) write(e);
        const { followUntilAborted } = await import('../events/list.js');
        await followUntilAborted(ctx.signal);
        return 0;
      } finally {
        await store.close();
      }
    },
  };
}
