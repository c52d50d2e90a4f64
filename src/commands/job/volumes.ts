import { subdotDir } from '../../core/dots.js';
import { NotFoundError } from '../../core/errors.js';
import type { HostRecord } from '../../core/hosts.js';
import type { JobSpec } from '../../core/job-spec.js';
import { DotRepo } from '../../state/dots.js';
import { fleetKeys } from '../../state/keys.js';
import type { Store } from '../../state/store.js';
import { dotHandle, hostId, subdotLabel } from '../dot/common.js';
import type { Context } from '../types.js';

/**
 * The docker binds for a job's dot volumes on this host: each subdot's active branch, bound straight
 * from the pool into the container. A dot this host does not have is an error naming it.
 */
export async function dotBinds(ctx: Context, store: Store, spec: JobSpec): Promise<string[]> {
  const binds: string[] = [];
  const repo = new DotRepo(store, ctx.config.fleet, hostId(), false);
  for (const v of spec.volumes) {
    if (v.kind !== 'dot') continue;
    const dot = await repo.get(v.dot);
    if (!dot)
      throw new NotFoundError(`job ${spec.name} uses dot ${v.dot}, which host ${hostId()} does not have`, {
        hint: `make it with knarr dot init ${v.dot}, or pull it there`,
      });
    const sub = subdotDir(v.subdot);
    if (!dot.subdots.includes(sub))
      throw new NotFoundError(`dot ${v.dot} has no subdot ${v.subdot}`, { hint: `make it with: knarr dot init ${subdotLabel(v.dot, sub)}` });
    const h = await dotHandle(ctx, dot);
    await h.storage.ensureSubdir(h.ref(), sub);
    binds.push(`${h.storage.branchPath(h.ref())}/${sub}:${v.target}${v.readOnly ? ':ro' : ''}`);
  }
  return binds;
}

/** The names of the hosts that have every dot the job uses (all hosts when it uses none); a host's dots are under its dotHost. */
export async function hostsWithDots(store: Store, fleet: string, spec: JobSpec, hosts: readonly HostRecord[]): Promise<string[]> {
  const dots = spec.volumes.flatMap((v) => (v.kind === 'dot' ? [v.dot] : []));
  if (dots.length === 0) return hosts.map((h) => h.name);
  const keys = fleetKeys(fleet);
  const have = await Promise.all(
    hosts.map(async (h) => (await Promise.all(dots.map((d) => store.get(keys.hostDot(h.dotHost ?? h.name, d))))).every((x) => x !== null)),
  );
  return hosts.filter((_, i) => have[i]).map((h) => h.name);
}
