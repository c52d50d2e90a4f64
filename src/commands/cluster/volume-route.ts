import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { validateClusterName, validateNodeIndex, validateUser } from '../../core/cluster.js';
import { KnarrError } from '../../core/errors.js';
import { ApiError, type UpgradeRoute } from '../../daemon/api.js';
import { thisHost } from '../../daemon/pidfile.js';
import { pathExists } from '../../host/mounts.js';
import { volumeSendArgv, withTrailer } from '../../host/volume-stream.js';
import { ClusterRepo } from '../../state/clusters.js';
import type { Store } from '../../state/store.js';
import type { Context } from '../types.js';
import { clusterPool, lxcFor } from './common.js';

/** The agent's upgrade path a stopped node's volume is read from (by the agent of the host it migrates to). */
export const VOLUME_PATH = '/v1/cluster-volume';
export const volumeQuery = (user: string, name: string, node: number) => `${VOLUME_PATH}?${new URLSearchParams({ user, name, node: String(node) })}`;

/** A knarr error as the HTTP status a client maps back to its kind. */
const asApi = (e: unknown) => (e instanceof KnarrError ? new ApiError(e.exitCode === 2 ? 400 : e.code === 'E_NOT_FOUND' ? 404 : 409, e.message) : e);

/**
 * The cluster upgrades of the agent's API. GET /v1/cluster-volume?user=U&name=N&node=I answers 101 and sends a
 * node's volume as tar on the raw connection, then its length and sha256; only a node of this host that is
 * stopped (a running one would be copied half-written). A raw connection, not a chunked body: it moves the
 * bytes at about twice the speed.
 */
export function clusterUpgrades(ctx: Context, store: Store): Record<string, UpgradeRoute> {
  const repo = new ClusterRepo(store, ctx.config.fleet);
  const lxc = lxcFor(ctx);
  return {
    [`GET ${VOLUME_PATH}`]: async (req: IncomingMessage, socket: Duplex) => {
      let path: string;
      try {
        const q = new URL(req.url ?? '/', 'http://agent').searchParams;
        const user = validateUser('user', q.get('user') ?? '');
        const name = validateClusterName('name', q.get('name') ?? '');
        const index = validateNodeIndex('node', q.get('node') ?? '');
        const c = await repo.get(user, name);
        const node = c?.nodes.find((n) => n.index === index);
        if (!c || !node) throw new ApiError(404, `user ${user} has no cluster ${name} with a node ${index}`);
        const here = await thisHost(ctx.config.stateDir);
        if (node.host !== here) throw new ApiError(409, `node ${index} of cluster ${name} is on ${node.host}, not ${here}`);
        const state = await lxc.state(node.container);
        if (state !== null && state !== 'STOPPED') throw new ApiError(409, `node ${index} of cluster ${name} (${node.container}) is ${state}: stop it first`);
        path = `${(await clusterPool(ctx, c.pool)).mountpoint}/${node.volume}`;
        if (!(await pathExists(path))) throw new ApiError(404, `node ${index} of cluster ${name} has no volume on ${here}`);
      } catch (e) {
        throw asApi(e);
      }
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
      const out = withTrailer();
      // A receiver gone mid-way stops tar, rather than leave it blocked on a stream no one reads.
      socket.once('close', () => out.destroy());
      out.pipe(socket);
      try {
        await ctx.runner.pipe(volumeSendArgv(path), { stdout: out, mutates: false });
      } catch {
        // No trailer: the receiver finds the stream broken off.
        socket.destroy();
      }
    },
  };
}
