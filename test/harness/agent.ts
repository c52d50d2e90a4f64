import { readFileSync } from 'node:fs';
import { execa, type Options, type Result, type ResultPromise } from 'execa';
import { expect } from 'vitest';
import { knarr } from './cli.js';
import { eventually } from './eventually.js';
import type { NetHost } from './netns.js';

const bin = new URL('../../bin/knarr', import.meta.url).pathname;

/** How a test starts `knarr daemon`. */
export interface AgentSpec {
  /** The store's endpoints, as --etcd takes them. */
  etcd: string;
  stateDir: string;
  /** The host's name: given as --name, and the host waited for. */
  name: string;
  /** ADDRESS:PORT of its API (left to the config file when not given). */
  listen?: string;
  /** Lease TTL in seconds: 2 unless a config file is given. */
  ttl?: number;
  fleet?: string;
  tokenFile?: string;
  /** A config file given before `daemon`; its daemon section then supplies what the flags above do not override. */
  config?: string;
  /** More daemon flags, after the ones above. */
  flags?: string[];
  /** The agent's environment; by default a DOCKER_HOST nothing serves, so it runs without an engine. */
  env?: Record<string, string>;
  /** Words put before the binary, e.g. prlimit and its limits. */
  wrap?: string[];
  /** How to start a process, e.g. a network-namespace host's spawn; execa by default. */
  spawn?: (file: string, args: readonly string[], opts: Options) => ResultPromise;
}

/** A `knarr daemon` started by a test: its process, what it wrote to stderr so far, and its stop. */
export interface AgentUnderTest {
  name: string;
  proc: ResultPromise;
  log(): string;
  /** Waits until the fleet shows its host up and joined. */
  up(ms?: number): Promise<void>;
  /** Sends signal (SIGKILL by default) and waits for the exit; gives the result and the whole log. */
  stop(signal?: NodeJS.Signals): Promise<{ result: Result; log: string }>;
}

/** The global options an agent of spec runs with, which also reach its store from the CLI. */
function globals(spec: AgentSpec): string[] {
  return ['--etcd', spec.etcd, '--state-dir', spec.stateDir, ...(spec.fleet ? ['--fleet', spec.fleet] : []), ...(spec.config ? ['--config', spec.config] : [])];
}

/** Spawns `knarr daemon` as spec says, without waiting for it. */
export function spawnAgent(spec: AgentSpec): AgentUnderTest {
  const ttl = spec.ttl ?? (spec.config ? undefined : 2);
  const argv = [
    ...globals(spec),
    'daemon',
    '--name',
    spec.name,
    ...(spec.listen ? ['--listen', spec.listen] : []),
    ...(ttl ? ['--ttl', String(ttl)] : []),
    ...(spec.tokenFile ? ['--token-file', spec.tokenFile] : []),
    ...(spec.flags ?? []),
  ];
  const [file, ...args] = [...(spec.wrap ?? []), bin, ...argv];
  const opts: Options = {
    reject: false,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: spec.env ?? { DOCKER_HOST: `unix://${spec.stateDir}/no-docker.sock` },
  };
  const proc = spec.spawn ? spec.spawn(file!, args, opts) : execa(file!, args, opts);
  let log = '';
  proc.stderr?.on('data', (b: Buffer) => (log += b.toString()));
  return {
    name: spec.name,
    proc,
    log: () => log,
    async up(ms = 30_000) {
      await eventually(async () => {
        const r = await knarr([...globals(spec), '--json', 'host', 'show', spec.name]);
        expect(r.code === 0 ? r.json() : r.stderr, log).toMatchObject({ up: true, join: 'ok' });
        // Up for a CLI on its host too: the pid file, by which that CLI knows the host's name, is written last.
        expect(JSON.parse(readFileSync(`${spec.stateDir}/agent.json`, 'utf8')), log).toMatchObject({ name: spec.name });
      }, ms);
    },
    async stop(signal = 'SIGKILL') {
      proc.kill(signal);
      return { result: (await proc) as Result, log };
    },
  };
}

/** spawnAgent on a network-namespace host: named after it, on its address (port 7946), with its dockerd, in its namespace. */
export function spawnHostAgent(h: NetHost, spec: Omit<AgentSpec, 'name' | 'listen' | 'env' | 'spawn'>): AgentUnderTest {
  return spawnAgent({ ...spec, name: h.name, listen: `${h.ip}:7946`, env: h.dockerd.env, spawn: h.spawn });
}

/** Starts `knarr daemon` as spec says and waits until its host is up. */
export async function agentUnderTest(spec: AgentSpec, ms?: number): Promise<AgentUnderTest> {
  const agent = spawnAgent(spec);
  try {
    await agent.up(ms);
  } catch (e) {
    await agent.stop();
    throw e;
  }
  return agent;
}

/** Kills each agent still running (SIGKILL) and waits for them all. */
export async function stopAgents(agents: Iterable<AgentUnderTest | null | undefined>): Promise<void> {
  await Promise.all([...agents].filter((a) => a).map((a) => a!.stop()));
}
