import { ValidationError } from './errors.js';
import { parseDotRef } from './dots.js';
import { isTag } from './names.js';
import { parseSize } from './size.js';
import { flowNestingDepth } from './yaml-lite.js';

/**
 * Job specs (`knarr job run -f job.yaml`, or flags): checked as a whole, so one run reports every
 * problem, each with its field path (`ports[1].host`, `env.DEBUG`), before anything runs.
 */

/** How deep a spec file's [ ] and { } may nest: a job spec needs three levels, the YAML parser overflows its stack near a thousand. */
export const MAX_SPEC_NESTING = 32;
/** A foreground job's request to an agent (its spec as JSON) at most: 1 MiB. */
export const MAX_JOB_REQUEST_BYTES = 1024 * 1024;

/** Refuses a spec text nested deeper than any job spec is, before a parser recurses into it. */
export function checkSpecNesting(field: string, text: string): void {
  const depth = flowNestingDepth(text);
  if (depth > MAX_SPEC_NESTING)
    throw new ValidationError(field, `nested ${depth} levels deep; a job spec nests at most ${MAX_SPEC_NESTING} (is this the right file?)`);
}

export interface PortSpec {
  host: number;
  container: number;
  protocol: 'tcp' | 'udp';
}

export type VolumeSpec =
  | { kind: 'dot'; dot: string; subdot: string | null; target: string; readOnly: boolean }
  | { kind: 'host'; source: string; target: string; readOnly: boolean };

export interface RestartPolicy {
  mode: 'no' | 'on-failure' | 'always';
  maxRetries: number | null;
}

export interface JobSpec {
  name: string;
  image: string;
  command: string[];
  ports: PortSpec[];
  volumes: VolumeSpec[];
  env: Record<string, string>;
  links: string[];
  tags: string[];
  host: string | null;
  /** Docker network mode: host, none, bridge or a network's name; null is the engine's default. */
  network: string | null;
  /** Millicores and bytes; 0 means no reservation. */
  cpu: number;
  memory: number;
  restart: RestartPolicy;
  daemonize: boolean;
  fixed: boolean;
  static: boolean;
}

const FIELDS = [
  'name',
  'image',
  'command',
  'ports',
  'volumes',
  'env',
  'links',
  'tags',
  'host',
  'network',
  'cpu',
  'memory',
  'restart',
  'daemonize',
  'fixed',
  'static',
] as const;
export const JOB_NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const IMAGE_RE = /^[a-z0-9][a-z0-9._/:@-]*$/i;

class Problems {
  readonly list: string[] = [];
  add(path: string, message: string): void {
    this.list.push(`${path}: ${message}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function port(p: Problems, path: string, v: unknown): PortSpec | null {
  if (typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v))) v = `${v}:${v}`;
  if (typeof v === 'string') {
    const m = /^(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(v);
    if (!m) return (p.add(path, `${JSON.stringify(v)} is not HOST:CONTAINER[/tcp|udp], e.g. 8080:80`), null);
    v = { host: Number(m[1]), container: Number(m[2]), protocol: m[3] ?? 'tcp' };
  }
  if (!isObject(v)) return (p.add(path, 'must be "HOST:CONTAINER" or {host, container, protocol}'), null);
  const out: PortSpec = { host: 0, container: 0, protocol: 'tcp' };
  for (const k of Object.keys(v)) if (!['host', 'container', 'protocol'].includes(k)) p.add(`${path}.${k}`, 'unknown field; use host, container, protocol');
  for (const k of ['host', 'container'] as const) {
    const n = v[k];
    // Host port 0: the engine picks a free one (several copies of a job on one host), and the job's service records it.
    const least = k === 'host' ? 0 : 1;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < least || n > 65535)
      p.add(`${path}.${k}`, k === 'host' ? 'must be a port number from 1 to 65535, or 0 for any free port' : 'must be a port number from 1 to 65535');
    else out[k] = n;
  }
  if (v.protocol !== undefined && v.protocol !== 'tcp' && v.protocol !== 'udp') p.add(`${path}.protocol`, 'must be tcp or udp');
  else if (v.protocol) out.protocol = v.protocol as 'tcp' | 'udp';
  return out;
}

function volume(p: Problems, path: string, v: unknown): VolumeSpec | null {
  if (typeof v !== 'string') return (p.add(path, 'must be "dot:DOT[.SUBDOT]:/target[:ro]" or "/host/path:/target[:ro]"'), null);
  const parts = v.split(':');
  const readOnly = parts[parts.length - 1] === 'ro';
  if (readOnly || parts[parts.length - 1] === 'rw') parts.pop();
  if (parts[0] === 'dot' && parts.length === 3) {
    try {
      const ref = parseDotRef(path, parts[1]!);
      if (!parts[2]!.startsWith('/')) return (p.add(path, `target ${JSON.stringify(parts[2])} must be an absolute path`), null);
      return { kind: 'dot', dot: ref.dot, subdot: ref.subdot, target: parts[2]!, readOnly };
    } catch (e) {
      return (p.add(path, (e as Error).message.replace(/^[^:]*: /, '')), null);
    }
  }
  if (parts.length === 2 && parts[0]!.startsWith('/') && parts[1]!.startsWith('/')) return { kind: 'host', source: parts[0]!, target: parts[1]!, readOnly };
  return (p.add(path, `${JSON.stringify(v)} is not "dot:DOT:/target" or "/host/path:/target" (absolute paths)`), null);
}

function stringList(p: Problems, path: string, v: unknown, check?: (s: string) => string | null): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) return (p.add(path, 'must be a list of strings'), []);
  return v.flatMap((x, i) => {
    if (typeof x !== 'string') return (p.add(`${path}[${i}]`, 'must be a string'), []);
    const bad = check?.(x);
    if (bad) return (p.add(`${path}[${i}]`, bad), []);
    return [x];
  });
}

const MIN_CPU_MILLIS = 10;
/** Docker refuses a memory limit under 6 MiB. */
const MIN_MEMORY = 6 * 1024 * 1024;

/** Parses millicores: 500, "500m", "0.5", "2"; none given is no limit. */
function cpu(p: Problems, v: unknown): number {
  if (v === undefined) return 0;
  const s = String(v);
  const m = /^(\d+)m$/.exec(s);
  const n = m ? Number(m[1]) : /^\d+(\.\d+)?$/.test(s) ? Math.round(Number(s) * 1000) : NaN;
  if (!(n > 0)) return (p.add('cpu', `${JSON.stringify(v)} is not a cpu amount; write 0.5, 2 or 500m (leave it out for no limit)`), 0);
  // The kernel refuses a CPU quota under 1 ms of its 100 ms period: docker's --cpus 0.01.
  if (n < MIN_CPU_MILLIS) return (p.add('cpu', `${JSON.stringify(v)} is below the least docker can give (${MIN_CPU_MILLIS}m); leave it out for no limit`), 0);
  return n;
}

function restart(p: Problems, v: unknown): RestartPolicy {
  if (v === undefined) return { mode: 'no', maxRetries: null };
  const m = typeof v === 'string' ? /^(no|always|on-failure)(?::(\d+))?$/.exec(v) : null;
  if (!m || (m[2] !== undefined && m[1] !== 'on-failure'))
    return (p.add('restart', `${JSON.stringify(v)} is not no, always, or on-failure[:N]`), { mode: 'no', maxRetries: null });
  return { mode: m[1] as RestartPolicy['mode'], maxRetries: m[2] === undefined ? null : Number(m[2]) };
}

function bool(p: Problems, path: string, v: unknown): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') return (p.add(path, 'must be true or false'), undefined);
  return v;
}

/** Checks and normalises a job spec; throws one ValidationError listing every problem with its path. */
export function parseJobSpec(raw: unknown, source = 'spec'): JobSpec {
  const p = new Problems();
  if (!isObject(raw)) throw new ValidationError(source, 'must be a mapping of job fields (name, image, command, ...)');
  for (const k of Object.keys(raw)) if (!(FIELDS as readonly string[]).includes(k)) p.add(k, `unknown field; known fields are ${FIELDS.join(', ')}`);

  const name = raw.name;
  if (typeof name !== 'string') p.add('name', 'is required: a job name unique in the fleet');
  else if (!JOB_NAME_RE.test(name))
    p.add('name', `${JSON.stringify(name)} must be lower-case letters, digits, ".", "_" or "-" (no spaces), at most 63 characters`);
  const image = raw.image;
  if (image === undefined || image === '') p.add('image', 'is required, e.g. busybox:latest');
  else if (typeof image !== 'string') p.add('image', 'must be an image reference such as busybox:latest');
  else if (!IMAGE_RE.test(image)) p.add('image', `${JSON.stringify(image)} is not an image reference`);
  // The repository part (before a :tag or @digest) must be lower-case, as docker wants it.
  else if (/[A-Z]/.test(image.replace(/@.*$/, '').replace(/:[^:/]*$/, ''))) p.add('image', `${JSON.stringify(image)}: the repository name must be lower-case`);

  let command: string[] = [];
  if (typeof raw.command === 'string') {
    // As in a compose file: a string is split into words, quotes kept together.
    const words = splitWords(raw.command);
    if (words === null) p.add('command', `${JSON.stringify(raw.command)} has an unterminated quote`);
    else command = words;
  } else command = stringList(p, 'command', raw.command);

  const ports =
    raw.ports === undefined
      ? []
      : Array.isArray(raw.ports)
        ? raw.ports.map((v, i) => port(p, `ports[${i}]`, v)).filter((x): x is PortSpec => x !== null)
        : (p.add('ports', 'must be a list'), []);
  const seen = new Set<string>();
  const published = new Set<string>();
  ports.forEach((x, i) => {
    const key = `${x.host}/${x.protocol}`;
    // Each 0 is a port of its own.
    if (x.host !== 0 && seen.has(key)) p.add(`ports[${i}].host`, `${x.host}/${x.protocol} is listed twice`);
    seen.add(key);
    // Each container port is one service (JOB-PORT): publishing it twice would make two claims on one name.
    const inner = `${x.container}/${x.protocol}`;
    if (published.has(inner)) p.add(`ports[${i}].container`, `container port ${inner} is published twice; publish it once`);
    published.add(inner);
  });
  const volumes =
    raw.volumes === undefined
      ? []
      : Array.isArray(raw.volumes)
        ? raw.volumes.map((v, i) => volume(p, `volumes[${i}]`, v)).filter((x): x is VolumeSpec => x !== null)
        : (p.add('volumes', 'must be a list'), []);
  const targets = new Set<string>();
  volumes.forEach((v, i) => {
    if (targets.has(v.target)) p.add(`volumes[${i}]`, `${v.target} is mounted twice in the container`);
    targets.add(v.target);
  });

  const env: Record<string, string> = {};
  if (Array.isArray(raw.env)) {
    raw.env.forEach((e, i) => {
      const m = typeof e === 'string' ? /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(e) : null;
      if (!m) p.add(`env[${i}]`, 'must be NAME=VALUE');
      else env[m[1]!] = m[2]!;
    });
  } else if (isObject(raw.env)) {
    for (const [k, v] of Object.entries(raw.env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) p.add(`env.${k}`, 'is not a valid variable name');
      else if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') p.add(`env.${k}`, 'must be a string');
      else env[k] = String(v);
    }
  } else if (raw.env !== undefined) p.add('env', 'must be a mapping or a list of NAME=VALUE');

  const links = stringList(p, 'links', raw.links, (s) => (JOB_NAME_RE.test(s) ? null : `${JSON.stringify(s)} is not a service name`));
  // Hosts' tags are at most 64 characters: a longer one could never match.
  const tags = stringList(p, 'tags', raw.tags, (s) =>
    isTag(s) ? null : `${JSON.stringify(s)} is not a tag (a letter or digit, then letters, digits, _ . : = -, at most 64)`,
  );
  let host: string | null = null;
  if (raw.host !== undefined) {
    if (typeof raw.host !== 'string' || raw.host === '') p.add('host', 'must be a host name');
    else host = raw.host;
  }
  let network: string | null = null;
  if (raw.network !== undefined) {
    if (typeof raw.network !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/.test(raw.network))
      p.add('network', 'must be a docker network mode: host, none, bridge or a network name');
    else network = raw.network;
  }
  const cpuValue = cpu(p, raw.cpu);
  let memory = 0;
  if (raw.memory !== undefined) {
    try {
      memory = parseSize('memory', String(raw.memory));
      if (memory < MIN_MEMORY) p.add('memory', `${JSON.stringify(raw.memory)} is below the least docker allows (6M); leave it out for no limit`);
    } catch (e) {
      p.add('memory', (e as Error).message.replace(/^memory: /, ''));
    }
  }
  const restartPolicy = restart(p, raw.restart);
  const daemonize = bool(p, 'daemonize', raw.daemonize);
  if (daemonize === false && ports.length > 0)
    p.add('daemonize', 'is false, but the job has ports: a foreground job publishes none; drop the ports or daemonize the job');
  if (network === 'host') {
    // Host networking publishes nothing: the job's own port is the host's, and its service is found there.
    ports.forEach((x, i) => {
      if (x.host !== x.container)
        p.add(`ports[${i}]`, `with network host the job listens on the host's port ${x.container} itself; write ${x.container}:${x.container}`);
    });
  }
  const isStatic = bool(p, 'static', raw.static) ?? false;
  const fixed = bool(p, 'fixed', raw.fixed);

  if (p.list.length > 0) {
    const detail = p.list.length === 1 ? p.list[0]! : `${p.list.length} problems: ${p.list.join('; ')}`;
    throw new ValidationError(source, detail, { detail: { problems: p.list } });
  }
  return {
    name: name as string,
    image: image as string,
    command,
    ports,
    volumes,
    env,
    links,
    tags,
    host,
    network,
    cpu: cpuValue,
    memory,
    restart: restartPolicy,
    // The seed's defaults: a job with ports is a service; one with volumes (or static) stays where its data is.
    daemonize: daemonize ?? ports.length > 0,
    fixed: fixed ?? (volumes.length > 0 || isStatic),
    static: isStatic,
  };
}

/** Splits a command line into words as a shell would (spaces, 'single' and "double" quotes, backslash escapes); null on an open quote. */
export function splitWords(line: string): string[] | null {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote !== null) return null;
  if (inWord) words.push(word);
  return words;
}

/** The input form of a checked spec: parseJobSpec(jobSpecInput(s)) gives s back (an agent checks what it is sent). */
export function jobSpecInput(spec: JobSpec): Record<string, unknown> {
  return {
    name: spec.name,
    image: spec.image,
    command: spec.command,
    ports: spec.ports.map((p) => `${p.host}:${p.container}/${p.protocol}`),
    volumes: spec.volumes.map(
      (v) => (v.kind === 'dot' ? `dot:${v.dot}${v.subdot ? `.${v.subdot}` : ''}:${v.target}` : `${v.source}:${v.target}`) + (v.readOnly ? ':ro' : ''),
    ),
    env: spec.env,
    links: spec.links,
    tags: spec.tags,
    ...(spec.host !== null ? { host: spec.host } : {}),
    ...(spec.network !== null ? { network: spec.network } : {}),
    ...(spec.cpu > 0 ? { cpu: `${spec.cpu}m` } : {}),
    ...(spec.memory > 0 ? { memory: String(spec.memory) } : {}),
    restart: spec.restart.mode === 'on-failure' && spec.restart.maxRetries !== null ? `on-failure:${spec.restart.maxRetries}` : spec.restart.mode,
    daemonize: spec.daemonize,
    fixed: spec.fixed,
    static: spec.static,
  };
}
