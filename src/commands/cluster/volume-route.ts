import type { IncomingMessage, ServerResponse } from 'node:http';
import { validateClusterName, validateNodeIndex, validateUser } from '../../core/cluster.js';
import { KnarrError } from '../../core/errors.js';
import { ApiError, type Route } from '../../daemon/api.js';
import { thisHost } from '../../daemon/pidfile.js';
import { pathExists } from '../../host/mounts.js';
import { intoResponse, TRAILER_BYTES, TRAILER_SHA256, volumeSendArgv } from '../../host/volume-stream.js';
import { ClusterRepo } from '../../state/clusters.js';
import type { Store } from '../../state/store.js';
import type { Context } from '../types.js';
import { clusterPool, lxcFor } from './common.js';

/** The agent's path a stopped node's volume is read from (by the agent of the host it migrates to). */
export const volumePath = (user: string, name: string, node: number) =>
  `/v1/clusters/${encodeURIComponent(user)}/${encodeURIComponent(name)}/nodes/${node}/volume`;

/** A knarr error as the HTTP status a client maps back to its kind. */
const asApi = (e: unknown) => (e instanceof KnarrError ? new ApiError(e.exitCode === 2 ? 400 : e.code === 'E_NOT_FOUND' ? 404 : 409, e.message) : e);

/**
 * The cluster routes of the agent's API. GET .../volume streams a node's volume as tar, its size and sha256 in
 * the trailers; only a node of this host that is stopped (a running one would be copied half-written).
 */
export function clusterRoutes(ctx: Context, store: Store): Record<string, Route> {
  const repo = new ClusterRepo(store, ctx.config.fleet);
  const lxc = lxcFor(ctx);
  return {
    'GET /v1/clusters/:user/:name/nodes/:node/volume': async (_req: IncomingMessage, res: ServerResponse, p) => {
      let path: string;
      let container: string;
      try {
        const user = validateUser('user', p.user!);
        const name = validateClusterName('name', p.name!);
        const index = validateNodeIndex('node', p.node!);
        const c = await repo.get(user, name);
        const node = c?.nodes.find((n) => n.index === index);
        if (!c || !node) throw new ApiError(404, `user ${user} has no cluster ${name} with a node ${index}`);
        const here = await thisHost(ctx.config.stateDir);
        if (node.host !== here) throw new ApiError(409, `node ${index} of cluster ${name} is on ${node.host}, not ${here}`);
        container = node.container;
        const state = await lxc.state(container);
        if (state !== null && state !== 'STOPPED') throw new ApiError(409, `node ${index} of cluster ${name} (${container}) is ${state}: stop it first`);
        path = `${(await clusterPool(ctx, c.pool)).mountpoint}/${node.volume}`;
        if (!(await pathExists(path))) throw new ApiError(404, `node ${index} of cluster ${name} has no volume on ${here}`);
      } catch (e) {
        throw asApi(e);
      }
      res.writeHead(200, { 'content-type': 'application/x-tar', trailer: `${TRAILER_BYTES}, ${TRAILER_SHA256}` });
      await ctx.runner.pipe(volumeSendArgv(path), { stdout: intoResponse(res), mutates: false });
      return undefined;
    },
  };
}
