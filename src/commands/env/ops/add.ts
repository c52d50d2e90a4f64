import { ConflictError } from '../../../core/errors.js';
import { secondBalancer, type EnvRecord, type RoleSpec } from '../../../core/env.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { addMember, envArg, envRepo, loadEnv, reserveMembers, undoAdds } from './flow.js';
import { planAdd, planCreate } from './plan.js';

type Groups = { role: string; count: number }[];

const groupsOf = (r: OpRun): Groups => (r.op.args.members ?? []) as Groups;

/** Adds the reserved members one after another, each with its hooks; progress counts members. */
async function addAll(r: OpRun, env: string, names: readonly string[]): Promise<void> {
  for (const [i, name] of names.entries()) {
    await r.progress(i, names.length, `adding ${name}`);
    await r.checkpoint();
    await addMember(r, env, name);
  }
  await r.progress(names.length, names.length, 'added');
}

/** env.create: the record (roles, no members), then every member of the file, lowest priority first; undone as a whole. */
export const envCreate: OpHandler = {
  plan: planCreate,
  async run(r) {
    const name = envArg(r);
    const repo = envRepo(r);
    const record: EnvRecord = {
      name,
      home: r.op.host,
      createdAt: new Date().toISOString(),
      createdBy: r.op.id,
      roles: Object.fromEntries(((r.op.args.roles ?? []) as RoleSpec[]).map((x) => [x.name, x])),
      members: [],
      next: {},
      state: 'running',
    };
    if (!(await repo.create(record)) && (await repo.get(name))?.createdBy !== r.op.id)
      throw new ConflictError(`an environment named ${name} exists`, { hint: `see it with: knarr env show ${name}` });
    if (!r.op.state.recorded) {
      await repo.addHistory(name, { event: 'state', member: '-', message: 'created', op: r.op.id });
      await r.save({ recorded: true });
    }
    await addAll(r, name, await reserveMembers(r, name, groupsOf(r)));
    return { env: name, members: (await repo.get(name))?.members.map((m) => m.name) ?? [] };
  },
  async undo(r) {
    const name = envArg(r);
    const env = await undoAdds(r, name);
    // Only the record this operation made goes: another create's environment of the same name stays.
    if (env?.createdBy === r.op.id) await envRepo(r).remove(name);
  },
};

/** env.add: count members of a role (with what they require first), each with its hooks; undone as a whole. */
export const envAdd: OpHandler = {
  plan: planAdd,
  async run(r) {
    const name = envArg(r);
    const a = new OpArgs(r.op);
    const role = a.string('role');
    const newRole = r.op.args.roleSpec as RoleSpec | undefined;
    if (newRole && !r.op.state.roleAdded) {
      // A role given with the add joins the environment's roles first (undone with the add when no member is left of it).
      await envRepo(r).update(name, (e) => (e.roles[newRole.name] ? null : { ...e, roles: { ...e.roles, [newRole.name]: newRole } }));
      await r.save({ roleAdded: true });
    }
    if (!r.op.state.plan) {
      // Checked again here: another add queued in the same instant may have made the balancer since the command checked.
      const env = await loadEnv(r, name);
      const second = env.roles[role] ? secondBalancer(env, env.roles[role], a.integer('count')) : null;
      if (second) throw new ConflictError(second, { hint: `see it with: knarr env show ${name}` });
    }
    const names = await reserveMembers(r, name, [{ role, count: a.integer('count') }]);
    await addAll(r, name, names);
    return { env: name, added: names };
  },
  async undo(r) {
    const name = envArg(r);
    await undoAdds(r, name);
    // The role this add brought goes with it while no member is of it: a corrected role file is then taken.
    const newRole = r.op.args.roleSpec as RoleSpec | undefined;
    if (newRole && r.op.state.roleAdded)
      await envRepo(r).update(name, (e) => {
        if (JSON.stringify(e.roles[newRole.name]) !== JSON.stringify(newRole) || e.members.some((m) => m.role === newRole.name)) return null;
        const { [newRole.name]: _gone, ...roles } = e.roles;
        return { ...e, roles };
      });
  },
};
