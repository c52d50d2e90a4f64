import { removeBreaksQuorum } from '../../core/etcd-cluster.js';
import { ConflictError, NotFoundError } from '../../core/errors.js';
import type { CommandResult, Context } from '../types.js';
import { clientFiles, etcdctlArgv, membershipChange } from './cluster.js';
import { memberRows } from './members.js';
import { readEtcdState } from './local.js';

/** `knarr etcd remove MEMBER`: drops a member (by name or hex ID); refuses to leave the cluster without a quorum unless --force. */
export async function etcdRemove(member: string, opts: { force: boolean }, ctx: Context): Promise<CommandResult> {
  const { rows, endpoints } = await memberRows(ctx);
  const target = rows.find((r) => r.name === member || r.id === member.toLowerCase());
  if (!target) {
    throw new NotFoundError(`no etcd member ${member}`, { hint: `the members are: ${rows.map((r) => r.name || r.id).join(', ')} (knarr etcd members)` });
  }
  if (rows.length === 1)
    throw new ConflictError(`${member} is the cluster's only member: removing it would end the cluster`, { hint: 'stop it with: knarr etcd down' });
  if (removeBreaksQuorum(rows, target.id) && !opts.force) {
    const voters = rows.filter((r) => !r.learner && r.id !== target.id);
    throw new ConflictError(
      `removing ${target.name || target.id} leaves ${voters.filter((r) => r.healthy).length} healthy of ${voters.length} voting members: below the ` +
        `quorum of ${Math.floor(voters.length / 2) + 1}`,
      { hint: 'bring the unhealthy members back (knarr etcd up on them) or remove them first; --force removes it anyway' },
    );
  }
  const state = await readEtcdState(ctx);
  const files = state?.tls;
  const argv = files
    ? etcdctlArgv(clientFiles(files), endpoints, ['member', 'remove', target.id])
    : ['etcdctl', '--endpoints', endpoints.join(','), 'member', 'remove', target.id];
  ctx.events.step(`etcd: removing member ${target.name || target.id}`);
  await membershipChange(ctx, argv, 'member remove', 30_000);
  ctx.events.done();
  const action = ctx.runner.dryRun ? 'planned' : 'removed';
  const self = state?.tls && target.peerUrls.includes(state.peerUrl);
  return {
    data: { action, member: target.name, id: target.id, self: Boolean(self) },
    view: {
      kind: 'lines',
      lines: [
        `${action} member ${target.name || target.id} (${target.id})${self ? '; it was this host: its etcd stops and cannot rejoin with its old data' : ''}`,
      ],
    },
  };
}
