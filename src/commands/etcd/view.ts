import type { EtcdServerState, Health } from '../../host/etcd-server.js';
import { timeCell, type Cell } from '../types.js';

export function etcdData(state: EtcdServerState | null, running: boolean, health: Health | null) {
  return {
    running,
    healthy: health?.healthy ?? false,
    version: health?.version ?? null,
    pid: running ? (state?.pid ?? null) : null,
    endpoints: state ? (state.endpoints ?? [state.clientUrl]) : [],
    member: state?.tls ? state.name : null,
    socket: state?.socket ?? null,
    dataDir: state?.dataDir ?? null,
    pool: state?.pool ?? null,
    logFile: state?.logFile ?? null,
    startedAt: running ? (state?.startedAt ?? null) : null,
    error: health && !health.healthy ? health.error : null,
  };
}

export type EtcdData = ReturnType<typeof etcdData>;

export function etcdFields(d: EtcdData): [string, Cell][] {
  return [
    ['running', d.running ? `yes (pid ${d.pid})` : 'no'],
    ['healthy', d.healthy ? 'yes' : d.error ? `no (${d.error})` : 'no'],
    ['version', d.version ?? '-'],
    ['endpoints', d.endpoints.join(',') || '-'],
    ['socket', d.socket ?? '-'],
    ['data', d.dataDir ? `${d.dataDir}${d.pool ? ` (pool ${d.pool})` : ''}` : '-'],
    ['log', d.logFile ?? '-'],
    ['started', timeCell(d.startedAt)],
  ];
}
