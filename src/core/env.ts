import { ValidationError } from './errors.js';
import { parseJobSpec, type JobSpec } from './job-spec.js';
import { parseSize } from './size.js';
import { parseCpus } from './cluster.js';

/**
 * Environments (Cloud48's EnvironmentManager): a group of members that make one application, each of a role
 * that reacts to the group's events through hooks, in priority order. This file holds what is pure: the role
 * and environment files, checked with field paths, and the order in which hooks run.
 */

/** The events a role may hook, in the order the docs list them. */
export const ENV_EVENTS = [
  'beforeItIsAdded',
  'afterItIsAdded',
  'beforeOtherIsAdded',
  'afterOtherIsAdded',
  'beforeItIsRemoved',
  'afterItIsRemoved',
  'beforeOtherIsRemoved',
  'afterOtherIsRemoved',
  'isDown',
  'isUp',
  'afterCcStart',
  'beforeCcStop',
] as const;
export type EnvEvent = (typeof ENV_EVENTS)[number];

/** Events of a member that does not exist (yet, or any more): its hooks can run on a host only. */
const OUTSIDE_EVENTS: readonly EnvEvent[] = ['beforeItIsAdded', 'afterItIsRemoved'];

export interface HookSpec {
  /** argv; a string in the file is run by sh -c. */
  run: string[];
  /** member: inside the member (docker exec, lxc-attach); host: on the member's host (the environment's home for a member not made yet). */
  on: 'member' | 'host';
  /** Seconds a hook may run before it counts as failed. */
  timeout: number;
}

export interface NodeMemberSpec {
  image: string;
  memory: number;
  cpu: number;
}

export interface Requirement {
  role: string;
  /** Needed once the requiring role has this many members (the one being added counted). */
  from: number;
}

export interface RoleSpec {
  name: string;
  priority: number;
  /** The member's service port (the container's); members of roles with a port are a balancer's backends. */
  port: number | null;
  kind: 'job' | 'node' | 'balancer';
  /** A job member's spec, its name left for knarr to give. */
  job?: Omit<JobSpec, 'name'>;
  node?: NodeMemberSpec;
  requires: Requirement[];
  hooks: Partial<Record<EnvEvent, HookSpec>>;
}

export type MemberState = 'adding' | 'running' | 'stopped' | 'suspended' | 'down' | 'lost' | 'removing';

export interface EnvMember {
  name: string;
  role: string;
  kind: RoleSpec['kind'];
  /** Where it runs; null before it is made. */
  host: string | null;
  /** host:port of its role's port (a balancer's: where it listens), once known. */
  address: string | null;
  state: MemberState;
  /** The operation that added it (or that changes it now). */
  op: string;
  /** Its index among its role's members: its name's last part. */
  index: number;
  /** While down: the reaction its op (op) is, so an agent that finds that op unwritten submits it again. */
  reaction?: 'env.down' | 'env.up';
}

export interface EnvRecord {
  name: string;
  /** The host whose runner runs the environment's operations. */
  home: string;
  createdAt: string;
  /** The operation that created it: a resumed create knows its own record. */
  createdBy: string;
  roles: Record<string, RoleSpec>;
  members: EnvMember[];
  /** The next index per role: a member's name is never given twice. */
  next: Record<string, number>;
  state: 'running' | 'stopped' | 'suspended';
}

/** One line of an environment's history: a hook run, or a member's change. */
export interface EnvHistoryEntry {
  at: string;
  event: EnvEvent | 'added' | 'removed' | 'failed' | 'down' | 'up' | 'lost' | 'collected' | 'state';
  member: string;
  /** For an *Other* event: the member the event is about. */
  other?: string;
  role?: string;
  /** For a hook run: where it ran, its exit status and how long it took. */
  on?: 'member' | 'host' | 'builtin';
  host?: string;
  exit?: number;
  durationMs?: number;
  /** The hook's last output lines, or what changed. */
  message?: string;
  op?: string;
}

/** The role knarr ships: a balancer served by the host's ambassador, no image of its own. */
export const BALANCER_ROLE = 'balancer';
const DEFAULT_BALANCER: RoleSpec = { name: BALANCER_ROLE, priority: 10, port: null, kind: 'balancer', requires: [], hooks: {} };

const ENV_NAME_RE = /^[a-z][a-z0-9-]{0,23}$/;
const ROLE_NAME_RE = /^[a-z][a-z0-9]{0,23}$/;
export const MAX_MEMBERS = 64;
/** An environment's roles travel in its record and its operations' arguments, each one etcd value: well under etcd's request limit. */
export const MAX_ROLES_BYTES = 256 * 1024;

/** Refuses roles (a file's text, or the roles as they would be stored) larger than an environment record can hold. */
export function checkRolesSize(field: string, bytes: number): void {
  if (bytes > MAX_ROLES_BYTES)
    throw new ValidationError(
      field,
      `is ${Math.ceil(bytes / 1024)} KiB; an environment's roles take at most ${MAX_ROLES_BYTES / 1024} KiB (is this the right file?)`,
    );
}
const DEFAULT_HOOK_TIMEOUT = 60;

/** An environment's name is also its service's: it never ends like a job's service (-PORT, -udp). */
export function validateEnvName(field: string, v: string): string {
  if (!ENV_NAME_RE.test(v))
    throw new ValidationError(field, `${JSON.stringify(v)} must start with a letter, then lower-case letters, digits or "-", at most 24 characters`);
  if (/-$|--/.test(v)) throw new ValidationError(field, `${JSON.stringify(v)} must not end with "-" or hold "--"`);
  if (/-(\d+|udp)$/.test(v))
    throw new ValidationError(field, `${JSON.stringify(v)} ends like a job's service (-PORT or -udp), which the environment's service would clash with`);
  return v;
}

export function validateRoleName(field: string, v: string): string {
  if (!ROLE_NAME_RE.test(v)) throw new ValidationError(field, `${JSON.stringify(v)} must start with a letter, then lower-case letters or digits, at most 24`);
  return v;
}

export const memberName = (env: string, role: string, index: number) => `${env}-${role}-${index}`;

/** `shop-web-2` in env shop: its role and index, or null when the name is no member name of it. */
export function parseMemberName(env: string, name: string): { role: string; index: number } | null {
  const m = new RegExp(`^${env}-([a-z][a-z0-9]*)-(\\d+)$`).exec(name);
  return m ? { role: m[1]!, index: Number(m[2]) } : null;
}

class Problems {
  readonly list: string[] = [];
  add(path: string, message: string): void {
    this.list.push(`${path}: ${message}`);
  }
  throwIfAny(source: string): void {
    if (this.list.length === 0) return;
    const detail = this.list.length === 1 ? this.list[0]! : `${this.list.length} problems: ${this.list.join('; ')}`;
    throw new ValidationError(source, detail, { detail: { problems: this.list } });
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const ROLE_FIELDS = ['name', 'priority', 'port', 'job', 'node', 'builtin', 'requires', 'hooks'];

function hook(p: Problems, path: string, event: EnvEvent, v: unknown): HookSpec | null {
  if (typeof v === 'string' || Array.isArray(v)) v = { run: v };
  if (!isObject(v)) return (p.add(path, 'must be a command, or {run, on, timeout}'), null);
  for (const k of Object.keys(v)) if (!['run', 'on', 'timeout'].includes(k)) p.add(`${path}.${k}`, 'unknown field; use run, on, timeout');
  let run: string[] = [];
  if (typeof v.run === 'string') {
    if (v.run.trim() === '') p.add(`${path}.run`, 'is empty');
    // A string is a shell command line, as a compose file's healthcheck CMD-SHELL: the operator wrote it for sh.
    else run = ['sh', '-c', v.run];
  } else if (Array.isArray(v.run) && v.run.length > 0 && v.run.every((x) => typeof x === 'string') && String(v.run[0]).trim() !== '') run = v.run as string[];
  else p.add(`${path}.run`, 'is required: a shell command line, or a list of words (argv)');
  const outside = OUTSIDE_EVENTS.includes(event);
  const on = v.on ?? (outside ? 'host' : 'member');
  if (on !== 'member' && on !== 'host') p.add(`${path}.on`, 'must be member or host');
  else if (on === 'member' && outside)
    p.add(`${path}.on`, `${event} runs while the member does not exist; write on: host (it runs on the host it goes to, or the environment's home)`);
  let timeout = DEFAULT_HOOK_TIMEOUT;
  if (v.timeout !== undefined) {
    if (typeof v.timeout !== 'number' || !Number.isInteger(v.timeout) || v.timeout < 1 || v.timeout > 3600)
      p.add(`${path}.timeout`, 'must be whole seconds from 1 to 3600');
    else timeout = v.timeout;
  }
  return { run, on: on as HookSpec['on'], timeout };
}

/** Checks one role (a role file, or an entry of an environment file's roles); every problem named with its path under at. */
export function parseRole(raw: unknown, at = 'role'): RoleSpec {
  const p = new Problems();
  const role = roleInto(p, raw, at);
  p.throwIfAny(at);
  return role!;
}

function roleInto(p: Problems, raw: unknown, at: string): RoleSpec | null {
  if (!isObject(raw)) return (p.add(at, 'must be a mapping: name, priority, job or node or builtin, port, requires, hooks'), null);
  for (const k of Object.keys(raw)) if (!ROLE_FIELDS.includes(k)) p.add(`${at}.${k}`, `unknown field; known fields are ${ROLE_FIELDS.join(', ')}`);
  let name = '';
  if (typeof raw.name !== 'string') p.add(`${at}.name`, 'is required: the role name, e.g. web');
  else if (!ROLE_NAME_RE.test(raw.name))
    p.add(`${at}.name`, `${JSON.stringify(raw.name)} must start with a letter, then lower-case letters or digits, at most 24`);
  else name = raw.name;
  const builtin = raw.builtin;
  const base = builtin === BALANCER_ROLE ? DEFAULT_BALANCER : null;
  if (builtin !== undefined && !base) p.add(`${at}.builtin`, `${JSON.stringify(builtin)} is no built-in role; knarr ships: ${BALANCER_ROLE}`);
  let priority = base?.priority ?? 50;
  if (raw.priority !== undefined) {
    if (typeof raw.priority !== 'number' || !Number.isInteger(raw.priority) || raw.priority < 0 || raw.priority > 1000)
      p.add(`${at}.priority`, 'must be a whole number from 0 to 1000 (lowest runs first)');
    else priority = raw.priority;
  }
  let port: number | null = null;
  if (raw.port !== undefined) {
    if (typeof raw.port !== 'number' || !Number.isInteger(raw.port) || raw.port < 1 || raw.port > 65535)
      p.add(`${at}.port`, 'must be the port the member serves on, from 1 to 65535');
    else port = raw.port;
  }
  const kinds = ['job', 'node', 'builtin'].filter((k) => raw[k] !== undefined);
  if (kinds.length === 0) p.add(at, 'says what a member is: job (a job spec), node (image, memory, cpus) or builtin: balancer');
  if (kinds.length > 1) p.add(at, `has ${kinds.join(' and ')}: a member is one of job, node or builtin`);
  let job: RoleSpec['job'];
  if (raw.job !== undefined) {
    if (!isObject(raw.job)) p.add(`${at}.job`, 'must be a job spec (image, command, ports, ...)');
    else if ('name' in raw.job) p.add(`${at}.job.name`, 'is given by knarr (ENV-ROLE-N); leave it out');
    else {
      try {
        const { name: _n, ...spec } = parseJobSpec({ ...raw.job, name: 'member', daemonize: true }, `${at}.job`);
        if (spec.network === 'host') p.add(`${at}.job.network`, 'host networking cannot give each member its own port; leave network out');
        if (port !== null && !spec.ports.some((x) => x.container === port && x.protocol === 'tcp'))
          p.add(`${at}.port`, `${port} is not a tcp container port of the job; add ports: ["0:${port}"] to publish it on any free host port`);
        job = spec;
      } catch (e) {
        const detail = (e as ValidationError).detail as { problems?: string[] } | undefined;
        for (const line of detail?.problems ?? [(e as Error).message]) p.add(`${at}.job`, line);
      }
    }
  }
  let node: NodeMemberSpec | undefined;
  if (raw.node !== undefined) {
    if (!isObject(raw.node)) p.add(`${at}.node`, 'must be {image, memory, cpus}');
    else {
      for (const k of Object.keys(raw.node)) if (!['image', 'memory', 'cpus'].includes(k)) p.add(`${at}.node.${k}`, 'unknown field; use image, memory, cpus');
      const image = raw.node.image ?? 'base';
      if (typeof image !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/.test(image))
        p.add(`${at}.node.image`, 'must be a base image name (knarr image list)');
      let memory = 0;
      let cpu = 0;
      try {
        if (raw.node.memory !== undefined) memory = parseSize(`${at}.node.memory`, String(raw.node.memory));
      } catch (e) {
        p.add(`${at}.node.memory`, (e as Error).message.replace(/^[^:]*: /, ''));
      }
      try {
        if (raw.node.cpus !== undefined) cpu = parseCpus(`${at}.node.cpus`, String(raw.node.cpus));
      } catch (e) {
        p.add(`${at}.node.cpus`, (e as Error).message.replace(/^[^:]*: /, ''));
      }
      node = { image: String(image), memory, cpu };
    }
  }
  const requires: Requirement[] = [];
  if (raw.requires !== undefined) {
    if (!Array.isArray(raw.requires)) p.add(`${at}.requires`, 'must be a list of {role, from}');
    else
      for (const [i, item] of raw.requires.entries()) {
        const path = `${at}.requires[${i}]`;
        const r: unknown = typeof item === 'string' ? { role: item } : item;
        if (!isObject(r)) {
          p.add(path, 'must be {role: ROLE, from: N} (from: the member count that needs it, default 1)');
          continue;
        }
        for (const k of Object.keys(r)) if (!['role', 'from'].includes(k)) p.add(`${path}.${k}`, 'unknown field; use role, from');
        const from = r.from ?? 1;
        if (typeof r.role !== 'string' || !ROLE_NAME_RE.test(r.role)) p.add(`${path}.role`, 'must be a role name');
        else if (typeof from !== 'number' || !Number.isInteger(from) || from < 1 || from > MAX_MEMBERS)
          p.add(`${path}.from`, `must be a member count from 1 to ${MAX_MEMBERS}`);
        else if (r.role === name) p.add(`${path}.role`, 'a role cannot require itself');
        else requires.push({ role: r.role, from });
      }
  }
  const hooks: RoleSpec['hooks'] = {};
  if (raw.hooks !== undefined) {
    if (!isObject(raw.hooks)) p.add(`${at}.hooks`, `must be a mapping of events (${ENV_EVENTS.join(', ')}) to commands`);
    else
      for (const [event, v] of Object.entries(raw.hooks)) {
        if (!(ENV_EVENTS as readonly string[]).includes(event)) {
          p.add(`${at}.hooks.${event}`, `is no event; the events are ${ENV_EVENTS.join(', ')}`);
          continue;
        }
        const h = hook(p, `${at}.hooks.${event}`, event as EnvEvent, v);
        if (h) hooks[event as EnvEvent] = h;
      }
  }
  if (base && Object.values(hooks).some((h) => h.on === 'member')) p.add(`${at}.hooks`, 'a balancer has no container to run a hook in; write on: host');
  return {
    name,
    priority,
    port,
    kind: base ? 'balancer' : node ? 'node' : 'job',
    ...(job ? { job } : {}),
    ...(node ? { node } : {}),
    requires,
    hooks,
  };
}

export interface EnvFile {
  roles: RoleSpec[];
  /** Members to make, by role: applied as a whole, lowest priority first. */
  members: { role: string; count: number }[];
}

/**
 * An environment file: `roles` (each a role mapping, or the path of a role file, read by loadRole) and `members`
 * (role: count). The balancer is there without being listed; listing it changes its priority or hooks.
 */
export function parseEnvFile(raw: unknown, loadRole: (path: string, at: string) => unknown, source = '--file'): EnvFile {
  const p = new Problems();
  if (raw === null || raw === undefined) raw = {};
  if (!isObject(raw)) throw new ValidationError(source, 'must be a mapping: roles (a list) and members (role: count)');
  for (const k of Object.keys(raw)) if (!['roles', 'members'].includes(k)) p.add(k, 'unknown field; use roles, members');
  const roles: RoleSpec[] = [];
  if (raw.roles !== undefined && !Array.isArray(raw.roles)) p.add('roles', 'must be a list of roles (mappings, or role file paths)');
  for (const [i, r] of (Array.isArray(raw.roles) ? raw.roles : []).entries()) {
    const at = `roles[${i}]`;
    let body: unknown = r;
    if (typeof r === 'string') {
      try {
        body = loadRole(r, at);
      } catch (e) {
        p.add(at, (e as Error).message.replace(/^[^:]*: /, ''));
        continue;
      }
    }
    const role = roleInto(p, body, at);
    if (!role || role.name === '') continue;
    if (roles.some((x) => x.name === role.name)) p.add(`${at}.name`, `role ${role.name} is listed twice`);
    else roles.push(role);
  }
  if (!roles.some((r) => r.name === BALANCER_ROLE)) roles.push(DEFAULT_BALANCER);
  const members: EnvFile['members'] = [];
  if (raw.members !== undefined && !isObject(raw.members)) p.add('members', 'must be a mapping of role to count, e.g. {web: 2, db: 1}');
  else if (raw.members) {
    let total = 0;
    for (const [role, count] of Object.entries(raw.members)) {
      if (!roles.some((r) => r.name === role)) p.add(`members.${role}`, `is no role of the file; its roles are ${roles.map((r) => r.name).join(', ')}`);
      else if (typeof count !== 'number' || !Number.isInteger(count) || count < 0 || count > MAX_MEMBERS)
        p.add(`members.${role}`, `must be a count from 0 to ${MAX_MEMBERS}`);
      else if (count > 0) {
        members.push({ role, count });
        total += count;
      }
    }
    if (total > MAX_MEMBERS) p.add('members', `${total} members; an environment has at most ${MAX_MEMBERS}`);
    for (const g of members)
      if (roles.find((r) => r.name === g.role)?.kind === 'balancer' && g.count > 1)
        p.add(`members.${g.role}`, "an environment has one balancer (it is the environment's service)");
  }
  checkRequirements(p, roles);
  p.throwIfAny(source);
  const priority = new Map(roles.map((r) => [r.name, r.priority]));
  members.sort((a, b) => priority.get(a.role)! - priority.get(b.role)! || a.role.localeCompare(b.role));
  return { roles, members };
}

function checkRequirements(p: Problems, roles: readonly RoleSpec[]): void {
  for (const r of roles)
    r.requires.forEach((q, i) => {
      if (!roles.some((x) => x.name === q.role)) p.add(`roles.${r.name}.requires[${i}].role`, `${q.role} is no role of the environment`);
    });
}

/** A role added later (`env add NAME ROLE -f role.yaml`) checked against the environment's roles. */
export function checkNewRole(role: RoleSpec, roles: Readonly<Record<string, RoleSpec>>): void {
  const p = new Problems();
  checkRequirements(p, [...Object.values(roles), role]);
  p.throwIfAny('--file');
}

/** Members that take part in the environment's events: made, and not lost or on their way out. */
export const isPresent = (m: EnvMember) => m.state !== 'adding' && m.state !== 'lost' && m.state !== 'removing';

/**
 * The members an add of count members of role makes, in order: each is preceded by what it requires and the
 * environment lacks (the seed's second web adds the balancer before itself).
 */
export function planAdds(env: Pick<EnvRecord, 'roles' | 'members' | 'next'>, role: string, count: number): { role: string; index: number }[] {
  const next = { ...env.next };
  const counts = new Map<string, number>();
  for (const m of env.members) if (m.state !== 'lost' && m.state !== 'removing') counts.set(m.role, (counts.get(m.role) ?? 0) + 1);
  const out: { role: string; index: number }[] = [];
  const add = (name: string, depth: number): void => {
    const spec = env.roles[name];
    if (!spec) throw new ValidationError('ROLE', `${name} is no role of the environment`);
    if (depth > Object.keys(env.roles).length) throw new ValidationError('ROLE', `the requirements of ${name} go round in a circle`);
    const after = (counts.get(name) ?? 0) + 1;
    for (const q of spec.requires) if (after >= q.from && (counts.get(q.role) ?? 0) === 0) add(q.role, depth + 1);
    const index = next[name] ?? 1;
    next[name] = index + 1;
    counts.set(name, after);
    out.push({ role: name, index });
  };
  for (let i = 0; i < count; i++) add(role, 0);
  return out;
}

/**
 * The members adds of groups would make, checked before anything is written: a circle of requirements, or more
 * members than an environment has (what they require counted), is refused as bad input.
 */
export function checkAdds(env: Pick<EnvRecord, 'roles' | 'members' | 'next'>, groups: readonly { role: string; count: number }[]): void {
  let cur = env;
  for (const g of groups) {
    const adds = planAdds(cur, g.role, g.count);
    const made = adds.map(
      (a): EnvMember => ({ name: '', role: a.role, kind: cur.roles[a.role]!.kind, host: null, address: null, state: 'adding', op: '', index: a.index }),
    );
    cur = { ...cur, members: [...cur.members, ...made] };
  }
  const total = cur.members.filter((m) => m.state !== 'lost').length;
  if (total > MAX_MEMBERS) throw new ValidationError('--count', `${total} members with what they require; an environment has at most ${MAX_MEMBERS}`);
}

/** Why member must stay (others require one of its role, and it is the last), or null; checked again when the operation runs. */
export function keptBecause(env: Pick<EnvRecord, 'name' | 'roles' | 'members'>, m: EnvMember): { message: string; hint: string } | null {
  if (env.members.some((x) => x.role === m.role && isPresent(x) && x.name !== m.name)) return null;
  for (const r of Object.values(env.roles))
    for (const q of r.requires) {
      const count = env.members.filter((x) => x.role === r.name && isPresent(x)).length;
      if (q.role === m.role && count >= q.from)
        return {
          message: `${r.name} requires a ${m.role} from ${q.from} member(s), and ${env.name} has ${count}: ${m.name} stays`,
          hint: `remove ${r.name} members first, down to ${q.from - 1}`,
        };
    }
  return null;
}

/** Why count members of role would make a second balancer, or null: it is the environment's service, and two would fight over it. */
export function secondBalancer(env: Pick<EnvRecord, 'name' | 'roles' | 'members'>, role: RoleSpec, count: number): string | null {
  if (role.kind !== 'balancer' || (count <= 1 && !env.members.some((m) => m.kind === 'balancer' && m.state !== 'lost'))) return null;
  return `environment ${env.name} has ${count > 1 ? 'room for one balancer' : 'a balancer already'}: an environment has one`;
}

/** One hook to run: the member whose role's hook it is, and for an *Other* event the member it is about. */
export interface HookStep {
  event: EnvEvent;
  member: EnvMember;
  other: EnvMember | null;
}

/** Members in the order their hooks run: lowest priority first, then by role, then by index. */
export function byPriority(env: Pick<EnvRecord, 'roles'>, members: readonly EnvMember[]): EnvMember[] {
  const pr = (m: EnvMember) => env.roles[m.role]?.priority ?? 50;
  return [...members].sort((a, b) => pr(a) - pr(b) || a.role.localeCompare(b.role) || a.index - b.index);
}

/** A built-in reaction, as a role's hook would be: the balancer's own, which no file spells. */
export function builtinHook(role: RoleSpec, event: EnvEvent): boolean {
  return role.kind === 'balancer' && ['afterItIsAdded', 'afterOtherIsAdded', 'afterOtherIsRemoved', 'isDown', 'isUp'].includes(event);
}

/**
 * The hooks of one change, in the documented order: the member's own event first, then each other present
 * member's in priority order. Only hooks a role has (or a built-in reaction) are listed.
 */
export function hookSteps(env: Pick<EnvRecord, 'roles' | 'members'>, subject: EnvMember, own: EnvEvent, others: EnvEvent, ownToo = true): HookStep[] {
  const steps: HookStep[] = [];
  const has = (m: EnvMember, e: EnvEvent) => {
    const r = env.roles[m.role];
    return r !== undefined && (r.hooks[e] !== undefined || builtinHook(r, e));
  };
  if (ownToo && has(subject, own)) steps.push({ event: own, member: subject, other: null });
  // A member whose host is down hears nothing: its hooks could not run until it is up again (isUp).
  const rest = env.members.filter((m) => m.name !== subject.name && isPresent(m) && m.state !== 'down');
  for (const m of byPriority(env, rest)) if (has(m, others)) steps.push({ event: others, member: m, other: subject });
  return steps;
}

/** The environment variables a hook runs with. */
export function hookEnv(envName: string, step: HookStep): Record<string, string> {
  return {
    KNARR_ENV: envName,
    KNARR_EVENT: step.event,
    KNARR_MEMBER: step.member.name,
    KNARR_ROLE: step.member.role,
    KNARR_OTHER: step.other?.name ?? '',
    KNARR_OTHER_ADDR: step.other?.address ?? '',
    KNARR_OTHER_ROLE: step.other?.role ?? '',
  };
}

/** The cluster that holds a node member: one node, of knarr's cluster user for environments, named after the member. */
export const NODE_MEMBER_USER = 'env';
export const nodeCluster = (member: string) => ({ user: NODE_MEMBER_USER, name: member });

/**
 * The backends of an environment's balancer, from its present members whose role has a port: a job member's job
 * service (found where it runs at each connection), a node member's IP:PORT on the cluster bridge.
 */
export function backendServices(env: Pick<EnvRecord, 'roles' | 'members'>, except: readonly string[] = []): string[] {
  return byPriority(
    env,
    env.members.filter((m) => isPresent(m) && m.state !== 'down' && !except.includes(m.name)),
  ).flatMap((m) => {
    const r = env.roles[m.role];
    if (!r?.port) return [];
    if (r.kind === 'job') return [`${m.name}-${r.port}`];
    return r.kind === 'node' && m.address ? [m.address] : [];
  });
}
