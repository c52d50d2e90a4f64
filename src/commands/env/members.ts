import { setTimeout as sleep } from 'node:timers/promises';
import { CommandTimeoutError, ConflictError, FailureError, PrerequisiteError } from '../../core/errors.js';
import { backendServices, hookEnv, type EnvMember, type EnvRecord, type HookSpec, type HookStep } from '../../core/env.js';
import type { JobSpec } from '../../core/job-spec.js';
import { thisHost } from '../../daemon/pidfile.js';
import type { OpRun } from '../../ops/runner.js';
import { HostRepo } from '../../state/hosts.js';
import { JobRepo } from '../../state/jobs.js';
import type { Store } from '../../state/store.js';
import type { Context } from '../types.js';
import { AgentClient } from '../job/agent-client.js';
import { balancerRecord, deleteBalancer, putBalancer, updateBalancer } from './balancer-records.js';
import { dropNodeMember, nodeHookArgv } from './nodes.js';

/** How long a new balancer's host has to listen and publish the environment's service. */
const BALANCER_WAIT_MS = 30_000;
/** A hook's output kept in the environment's history: its last lines. */
const HOOK_OUTPUT_CHARS = 400;

/** The job spec of a job member: its role's, named after the member, told who it is. */
export function memberJobSpec(env: EnvRecord, m: EnvMember): JobSpec {
  const role = env.roles[m.role]!;
  const job = role.job!;
  return { ...job, name: m.name, env: { ...job.env, KNARR_ENV: env.name, KNARR_MEMBER: m.name, KNARR_ROLE: m.role }, daemonize: true };
}

/** A job an environment made carries its environment and member name in its variables. */
export function isMemberJob(spec: JobSpec, env: string, member: string): boolean {
  const { KNARR_ENV: ofEnv, KNARR_MEMBER: ofMember } = spec.env;
  return ofEnv === env && ofMember === member;
}

/** Where a made member is: its host, and the address of its role's port. */
export interface MemberPlace {
  host: string;
  address: string | null;
}

/** Makes a job member (or finds it made by an earlier run of the same operation): placed by the scheduler, started by its host's agent. */
export async function makeJobMember(ctx: Context, store: Store, env: EnvRecord, m: EnvMember): Promise<MemberPlace> {
  const jobs = new JobRepo(store, ctx.config.fleet);
  const role = env.roles[m.role]!;
  const { startDaemonized } = await import('../job/fleet.js');
  const existing = await jobs.intent(m.name);
  let host: string;
  if (existing) {
    if (!isMemberJob(existing.spec, env.name, m.name))
      throw new ConflictError(`a job named ${m.name} exists that is no member of environment ${env.name}`, {
        hint: `remove or rename that job (knarr job rm ${m.name}), then add the member again`,
      });
    // Made by this operation before it was cut short: its host's agent may not have started it yet.
    host = existing.host ?? '';
    const at = host ? await new HostRepo(store, ctx.config.fleet).get(host) : null;
    if (at?.up) await (await AgentClient.connect(ctx, at.host)).converge();
    const actual = await jobs.actual(m.name);
    if (!actual || actual.host !== host || actual.state === 'failed')
      throw new FailureError(`member ${m.name} did not start on ${host || 'any host'}${actual?.error ? `: ${actual.error}` : ''}`);
  } else host = (await startDaemonized(ctx, store, memberJobSpec(env, m))).host;
  if (role.port === null) return { host, address: null };
  const service = await jobs.service(`${m.name}-${role.port}`);
  if (!service) throw new FailureError(`member ${m.name} runs on ${host}, but its port ${role.port} has no service`);
  return { host, address: `${service.address}:${service.port}` };
}

/** Makes a balancer member on host: its agent listens and points the environment's service at itself. */
export async function makeBalancer(ctx: Context, store: Store, env: EnvRecord, m: EnvMember, host: string): Promise<MemberPlace> {
  const hosts = new HostRepo(store, ctx.config.fleet);
  if (!(await hosts.get(host))?.up)
    throw new PrerequisiteError(`a balancer is served by its host's agent, and ${host} has none up`, {
      hint: `start one there: knarr daemon (or add the balancer when ${host}'s agent is up)`,
    });
  const current = await balancerRecord(store, ctx.config.fleet, host, env.name);
  if (!current || current.member !== m.name || current.state !== 'running')
    await putBalancer(store, ctx.config.fleet, host, {
      env: env.name,
      member: m.name,
      port: current?.member === m.name ? current.port : 0,
      backends: backendServices(env),
      state: 'running',
    });
  const jobs = new JobRepo(store, ctx.config.fleet);
  const deadline = Date.now() + BALANCER_WAIT_MS;
  for (;;) {
    const rec = await balancerRecord(store, ctx.config.fleet, host, env.name);
    const service = await jobs.service(env.name);
    if (rec && rec.port > 0 && service?.host === host && service.port === rec.port) return { host, address: `${service.address}:${service.port}` };
    if (Date.now() > deadline) throw new FailureError(`the agent of ${host} did not start the balancer of ${env.name} within ${BALANCER_WAIT_MS / 1000}s`);
    await sleep(50);
  }
}

/** The balancer's backends from the record as it is now (the built-in reaction to members added and removed). */
export async function syncBackends(ctx: Context, store: Store, env: EnvRecord, m: EnvMember, except: readonly string[] = []): Promise<string> {
  if (!m.host) return 'no host yet';
  const backends = backendServices(env, except);
  const rec = await updateBalancer(store, ctx.config.fleet, m.host, env.name, (b) =>
    b.member !== m.name || JSON.stringify(b.backends) === JSON.stringify(backends) ? null : { ...b, backends },
  );
  return rec ? `backends: ${backends.join(', ') || 'none'}` : 'no balancer record';
}

/**
 * Takes a member away, whatever part of it was made: idempotent, so an undo or a resumed remove runs it again safely.
 * A node member goes by a child cluster.delete of r (the operation taking it away).
 */
export async function dropMember(ctx: Context, store: Store, env: EnvRecord, m: EnvMember, r?: OpRun): Promise<string> {
  if (m.kind === 'node') return dropNodeMember(ctx, store, env, m, r);
  if (m.kind === 'job') {
    // Only the member's own job: one of that name that some operator made meanwhile stays.
    const intent = await new JobRepo(store, ctx.config.fleet).intent(m.name);
    if (!intent || !isMemberJob(intent.spec, env.name, m.name)) return '';
    const { removeJob } = await import('../job/manage.js');
    return removeJob(ctx, store, m.name);
  }
  if (m.kind === 'balancer' && m.host) {
    await deleteBalancer(store, ctx.config.fleet, m.host, env.name, m.name);
    return '';
  }
  return '';
}

/** What one hook run gave. */
export interface HookOutcome {
  exit: number;
  output: string;
  durationMs: number;
  host: string;
}

const ALL_EXIT_CODES = Array.from({ length: 255 }, (_, i) => i + 1);

/** The last lines of a hook's output, for the history and for a denial's message. */
function tail(text: string): string {
  // What a member prints reaches the operator's terminal (env events, an op's error): its control characters are shown, never obeyed.
  const t = text.trim().replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return t.length <= HOOK_OUTPUT_CHARS ? t : `…${t.slice(-HOOK_OUTPUT_CHARS)}`;
}

/** Runs a role's hook on this host: inside the member (a job's container) or on the host itself. */
export async function runHookHere(ctx: Context, store: Store, env: EnvRecord, step: HookStep, hook: HookSpec): Promise<HookOutcome> {
  const host = await thisHost(ctx.config.stateDir);
  const vars = hookEnv(env.name, step);
  const started = Date.now();
  const run = `${host}-${process.pid}-${started}-${Math.random().toString(36).slice(2)}`;
  let argv: string[];
  // timeout(1) stops the hook's whole process group: a child that holds its output open cannot keep it running past its time.
  if (hook.on === 'host') argv = ['timeout', '-k', '5', String(hook.timeout), ...hook.run];
  else if (step.member.kind === 'job') {
    const actual = await new JobRepo(store, ctx.config.fleet).actual(step.member.name);
    const record = (await new HostRepo(store, ctx.config.fleet).get(host))?.host;
    if (!actual?.container || !record) throw new FailureError(`member ${step.member.name} has no container on ${host} to run its ${step.event} hook in`);
    const marks = { ...vars, KNARR_HOOK_RUN: run };
    argv = ['docker', '-H', record.dockerEndpoint, 'exec', ...Object.entries(marks).flatMap(([k, v]) => ['-e', `${k}=${v}`]), actual.container, ...hook.run];
  } else if (step.member.kind === 'node') argv = await nodeHookArgv(ctx, store, host, step, hook, { ...vars, KNARR_HOOK_RUN: run });
  else throw new FailureError(`member ${step.member.name} (${step.member.kind}) runs no hooks inside it; write on: host`);
  try {
    const timeoutMs = (hook.timeout + (hook.on === 'host' ? 10 : 0)) * 1000;
    const res = await ctx.runner.run(argv, { env: vars, okExitCodes: ALL_EXIT_CODES, timeoutMs, maxOutputBytes: 64 * 1024 });
    const late = hook.on === 'host' && (res.exitCode === 124 || res.exitCode === 137) ? `timed out after ${hook.timeout}s` : '';
    return { exit: res.exitCode, output: tail(`${res.stdout}\n${res.stderr}\n${late}`), durationMs: Date.now() - started, host };
  } catch (e) {
    // docker exec stopped leaves what it started in the member running: those processes carry the run's mark.
    if (e instanceof CommandTimeoutError && hook.on === 'member') await killMarked(`KNARR_HOOK_RUN=${run}`);
    // A hook that did not run (timed out, no such command) failed as one that exited non-zero.
    return { exit: 127, output: tail((e as Error).message), durationMs: Date.now() - started, host };
  }
}

/** SIGKILLs the processes of this host whose environment holds mark (a timed-out hook's, inside a member's container). */
async function killMarked(mark: string): Promise<void> {
  const { readdir, readFile } = await import('node:fs/promises');
  for (const pid of (await readdir('/proc').catch(() => [] as string[])).filter((p) => /^\d+$/.test(p))) {
    const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
    if (!environ.split('\0').includes(mark)) continue;
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}
