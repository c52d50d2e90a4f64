import { isEtcdProcess, probeHealth } from '../../host/etcd-server.js';
import { NOSPACE_FIX, defragRecordPath, probeSpace, type DefragRecord, type Space } from '../../host/etcd-space.js';
import { readJson } from '../../host/local-state.js';
import { statePaths } from '../../core/paths.js';
import { ExitCode } from '../../core/errors.js';
import { formatSize } from '../../core/size.js';
import type { CommandResult, Context } from '../types.js';
import { readEtcdState } from './local.js';
import { etcdData, etcdFields } from './view.js';
import { clientFiles, etcdctlArgv, stateTls } from './cluster.js';
import { shellCommand } from '../../core/shell.js';

/** "12 MB of 2 GB (1%)": the database against its quota. */
const spaceText = (s: Space | null) => {
  if (s?.dbBytes == null) return '-';
  if (s.quotaBytes === null || s.quotaBytes === 0) return formatSize(s.dbBytes);
  return `${formatSize(s.dbBytes)} of ${formatSize(s.quotaBytes)} quota (${Math.round((100 * s.dbBytes) / s.quotaBytes)}%)`;
};

/** Says what to do about a raised alarm: NOSPACE stops every write of the fleet. */
function warnAlarms(ctx: Context, endpoint: string, s: Space | null): void {
  if (s?.alarms.includes('NOSPACE')) ctx.events.warn(`etcd at ${endpoint} is out of space (alarm NOSPACE): it refuses every write; ${NOSPACE_FIX}`);
  else if (s && s.alarms.length > 0) ctx.events.warn(`etcd at ${endpoint} raised alarm ${s.alarms.join(', ')}`);
}

/** `knarr etcd status`: the managed etcd's process, health, data place and size against its quota (or the external endpoints'). */
export async function etcdStatus(ctx: Context): Promise<CommandResult> {
  if (ctx.config.etcd.length > 0) {
    const checks = await Promise.all(
      ctx.config.etcd.map(async (url) => {
        const health = await probeHealth(url);
        return { endpoint: url, ...health, space: health.version !== null ? await probeSpace(url) : null };
      }),
    );
    for (const c of checks) warnAlarms(ctx, c.endpoint, c.space);
    // endpoints is a list of URLs here too, as for the managed etcd; each one's health is beside it.
    const data = { managed: false, healthy: checks.some((c) => c.healthy), endpoints: checks.map((c) => c.endpoint), endpointHealth: checks };
    return {
      data,
      view: {
        kind: 'table',
        columns: ['ENDPOINT', 'HEALTHY', 'VERSION', 'DB', 'ALARMS', 'ERROR'],
        rows: checks.map((c) => [c.endpoint, c.healthy ? 'yes' : 'no', c.version ?? '-', spaceText(c.space), c.space?.alarms.join(',') || '-', c.error ?? '']),
      },
      exitCode: data.healthy ? ExitCode.ok : ExitCode.storeUnavailable,
    };
  }
  const state = await readEtcdState(ctx);
  const running = await isEtcdProcess(state?.pid ?? null);
  const tls = state ? stateTls(state) : undefined;
  const health = running && state ? await probeHealth(state.clientUrl, 2000, tls) : null;
  const space = running && state ? await probeSpace(state.clientUrl, 2000, tls) : null;
  if (state) warnAlarms(ctx, state.clientUrl, space);
  // What an operator types to reach the same etcd with etcdctl (the certificates knarr uses), quoted for a shell.
  const etcdctl = state?.tls ? shellCommand(etcdctlArgv(clientFiles(state.tls), state.endpoints ?? [state.clientUrl], []).slice(0, 9)) : null;
  const data = {
    managed: true,
    ...etcdData(state, running, health),
    etcdctl,
    dbBytes: space?.dbBytes ?? null,
    dbInUseBytes: space?.dbInUseBytes ?? null,
    quotaBytes: space?.quotaBytes ?? null,
    alarms: space?.alarms ?? [],
    // What this host's agent noted of its last scheduled defragmentation of the member.
    lastDefrag: await readJson<DefragRecord>(defragRecordPath(statePaths(ctx.config.stateDir).etcdDir)),
  };
  const fields = etcdFields(data);
  const d = data.lastDefrag;
  fields.push(
    ['db', spaceText(space)],
    ['alarms', data.alarms.join(',') || '-'],
    ['last defrag', d ? `${d.endedAt} (${formatSize(d.beforeBytes)} -> ${formatSize(d.afterBytes)})` : '-'],
  );
  if (etcdctl) fields.push(['etcdctl', etcdctl]);
  // Scripts can wait with `until knarr etcd status; do ...`: non-zero until healthy.
  return { data, view: { kind: 'fields', fields }, exitCode: data.healthy ? ExitCode.ok : ExitCode.storeUnavailable };
}
