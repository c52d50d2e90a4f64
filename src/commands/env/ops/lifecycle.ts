import { FailureError, NotFoundError } from '../../../core/errors.js';
import { byPriority, isPresent, nodeCluster, type EnvMember, type EnvRecord, type MemberState } from '../../../core/env.js';
import { OpArgs } from '../../../core/op-args.js';
import { thisHost } from '../../../daemon/pidfile.js';
import { DockerEngine } from '../../../host/docker.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { HostRepo } from '../../../state/hosts.js';
import { JobRepo } from '../../../state/jobs.js';
import { updateBalancer } from '../balancer-records.js';
import { envArg, envRepo, loadEnv, updateMember } from './flow.js';
import { planEach } from './plan.js';

type Verb = 'start' | 'stop' | 'suspend' | 'resume';

const TARGET: Record<Verb, { env: EnvRecord['state']; member: MemberState }> = {
  start: { env: 'running', member: 'running' },
  stop: { env: 'stopped', member: 'stopped' },
  suspend: { env: 'suspended', member: 'suspended' },
  resume: { env: 'running', member: 'running' },
};

/** Pauses or unpauses a job member's container on this host (docker's freezer: memory kept, no cpu). */
async function freezeHere(r: OpRun, m: EnvMember, action: 'pause' | 'unpause'): Promise<void> {
  const host = await thisHost(r.ctx.config.stateDir);
  const record = (await new HostRepo(r.store, r.ctx.config.fleet).get(host))?.host;
  const actual = await new JobRepo(r.store, r.ctx.config.fleet).actual(m.name);
  if (!record || !actual?.container) throw new FailureError(`member ${m.name} has no container on ${host}`);
  const engine = new DockerEngine(record.dockerEndpoint.replace(/^unix:\/\//, ''), false);
  try {
    await engine.call('POST', `/containers/${encodeURIComponent(actual.container)}/${action}`);
  } catch (e) {
    // Already as asked: a resumed operation does it again.
    if (!/is (already )?(not )?paused|not paused/i.test((e as Error).message)) throw e;
  }
}

/** One member to the verb's state: a job by its intent (stop, start) or docker's freezer (suspend, resume); a node by its cluster; a balancer by its record. */
async function moveMember(r: OpRun, env: EnvRecord, m: EnvMember, verb: Verb): Promise<void> {
  if (m.kind === 'balancer' && m.host) {
    const state = verb === 'stop' || verb === 'suspend' ? 'stopped' : 'running';
    await updateBalancer(r.store, r.ctx.config.fleet, m.host, env.name, (b) => (b.member !== m.name || b.state === state ? null : { ...b, state }));
    return;
  }
  if (m.kind === 'node') return moveNode(r, m, verb);
  if (m.kind !== 'job') return;
  if (verb === 'stop' || verb === 'start') {
    // A suspended member is unpaused before it stops: docker cannot stop a paused container cleanly.
    if (m.state === 'suspended') await freeze(r, env, m, 'unpause');
    const { setJobDesired } = await import('../../job/manage.js');
    await setJobDesired(r.ctx, r.store, m.name, verb === 'stop' ? 'stopped' : 'running');
    return;
  }
  if (verb === 'suspend' && m.state !== 'running') return;
  if (verb === 'resume' && m.state !== 'suspended') return;
  await freeze(r, env, m, verb === 'suspend' ? 'pause' : 'unpause');
}

/** A node member by its cluster's own operation (a child): stop and start keep its volume; suspend and resume use the cgroup freezer. */
async function moveNode(r: OpRun, m: EnvMember, verb: Verb): Promise<void> {
  // lxc-stop thaws a frozen node first; cluster start thaws one too.
  if (verb === 'suspend' && m.state !== 'running') return;
  if (verb === 'resume' && m.state !== 'suspended') return;
  const child = await r.child(`${verb}:${m.name}`, `cluster.${verb}`, nodeCluster(m.name));
  if (child.status !== 'done') throw new FailureError(`${verb} of node ${m.name}: ${child.error ?? child.status}`);
}

async function freeze(r: OpRun, env: EnvRecord, m: EnvMember, action: 'pause' | 'unpause'): Promise<void> {
  if (!m.host) return;
  if (m.host === (await thisHost(r.ctx.config.stateDir))) return freezeHere(r, m, action);
  const child = await r.child(`${action}:${m.name}`, 'env.freeze', { env: env.name, member: m.name, action }, m.host);
  if (child.status !== 'done') throw new FailureError(`${action} of ${m.name} on ${m.host}: ${child.error ?? child.status}`);
}

/** env.start/stop/suspend/resume: each member in turn (stop and suspend highest priority first); forward only. */
function lifecycle(verb: Verb): OpHandler {
  return {
    undoes: false,
    plan: (r) => planEach(r, verb, verb === 'stop' || verb === 'suspend'),
    async run(r) {
      const name = envArg(r);
      const env = await loadEnv(r, name);
      const present = env.members.filter((m) => isPresent(m) && m.state !== 'down');
      const ordered = verb === 'stop' || verb === 'suspend' ? byPriority(env, present).reverse() : byPriority(env, present);
      const to = TARGET[verb];
      for (const [i, m] of ordered.entries()) {
        await r.progress(i, ordered.length, `${verb} ${m.name}`);
        await r.checkpoint();
        // A stopped member is not suspended, and a running one not resumed.
        if ((verb === 'suspend' || verb === 'resume') && m.state === 'stopped') continue;
        await moveMember(r, env, m, verb);
        await updateMember(r, name, m.name, (x) => (x.state === to.member ? null : { ...x, state: to.member }));
      }
      await envRepo(r).update(name, (e) => (e.state === to.env ? null : { ...e, state: to.env }));
      await envRepo(r).addHistory(name, { event: 'state', member: '-', message: `${verb}: ${ordered.length} member(s)`, op: r.op.id });
      return { env: name, state: to.env, members: ordered.map((m) => m.name) };
    },
    async undo() {},
  };
}

export const envStart = lifecycle('start');
export const envStop = lifecycle('stop');
export const envSuspend = lifecycle('suspend');
export const envResume = lifecycle('resume');

/** env.freeze: pause or unpause a member's container on this host, for an operation of the environment's home host. */
export const envFreeze: OpHandler = {
  undoes: false,
  async run(r) {
    const env = await loadEnv(r);
    const a = new OpArgs(r.op);
    const m = env.members.find((x) => x.name === a.string('member'));
    if (!m) throw new NotFoundError(`member ${a.string('member')} of ${env.name} is gone from the record`);
    const action = a.string('action');
    if (action !== 'pause' && action !== 'unpause') throw new FailureError(`env.freeze: unknown action ${action}`);
    await freezeHere(r, m, action);
    return { member: m.name, action };
  },
  async undo() {},
};
