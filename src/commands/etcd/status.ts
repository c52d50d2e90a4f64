import { isEtcdProcess, probeHealth } from '../../host/etcd-server.js';
import { ExitCode } from '../../core/errors.js';
import type { CommandResult, Context } from '../types.js';
import { readEtcdState } from './local.js';
import { etcdData, etcdFields } from './view.js';
import { clientFiles, etcdctlArgv, stateTls } from './cluster.js';
import { shellCommand } from '../../core/shell.js';

/** `knarr etcd status`: the managed etcd's process, health and data place (or the external endpoints' health). */
export async function etcdStatus(ctx: Context): Promise<CommandResult> {
  if (ctx.config.etcd.length > 0) {
    const checks = await Promise.all(ctx.config.etcd.map(async (url) => ({ endpoint: url, ...(await probeHealth(url)) })));
    // endpoints is a list of URLs here too, as for the managed etcd; each one's health is beside it.
    const data = { managed: false, healthy: checks.some((c) => c.healthy), endpoints: checks.map((c) => c.endpoint), endpointHealth: checks };
    return {
      data,
      view: {
        kind: 'table',
        columns: ['ENDPOINT', 'HEALTHY', 'VERSION', 'ERROR'],
        rows: checks.map((c) => [c.endpoint, c.healthy ? 'yes' : 'no', c.version ?? '-', c.error ?? '']),
      },
      exitCode: data.healthy ? ExitCode.ok : ExitCode.storeUnavailable,
    };
  }
  const state = await readEtcdState(ctx);
  const running = await isEtcdProcess(state?.pid ?? null);
  const health = running && state ? await probeHealth(state.clientUrl, 2000, stateTls(state)) : null;
  // What an operator types to reach the same etcd with etcdctl (the certificates knarr uses), quoted for a shell.
  const etcdctl = state?.tls ? shellCommand(etcdctlArgv(clientFiles(state.tls), state.endpoints ?? [state.clientUrl], []).slice(0, 9)) : null;
  const data = { managed: true, ...etcdData(state, running, health), etcdctl };
  // Scripts can wait with `until knarr etcd status; do ...`: non-zero until healthy.
  const fields = etcdFields(data);
  if (etcdctl) fields.push(['etcdctl', etcdctl]);
  return { data, view: { kind: 'fields', fields }, exitCode: data.healthy ? ExitCode.ok : ExitCode.storeUnavailable };
}
