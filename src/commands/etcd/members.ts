import { memberIdHex, type MemberRow } from '../../core/etcd-cluster.js';
import { ExitCode } from '../../core/errors.js';
import { formatSize } from '../../core/size.js';
import { etcdPost, isEtcdProcess, type ClientTls, type EtcdServerState } from '../../host/etcd-server.js';
import { writeJsonAtomic } from '../../host/local-state.js';
import { statePaths } from '../../core/paths.js';
import type { CommandResult, Context } from '../types.js';
import { listMembers, stateTls } from './cluster.js';
import { readEtcdState } from './local.js';

interface RawStatus {
  header?: { member_id?: string };
  leader?: string;
  dbSize?: string;
  isLearner?: boolean;
  errors?: string[];
}

/** The endpoints and client TLS knarr reaches the cluster with: --etcd, else this host's managed etcd. */
export async function clusterAccess(ctx: Context): Promise<{ endpoints: string[]; tls: ClientTls | undefined; managed: boolean }> {
  if (ctx.config.etcd.length > 0) return { endpoints: [...ctx.config.etcd], tls: undefined, managed: false };
  const state = await readEtcdState(ctx);
  if (!state) return { endpoints: [`http://127.0.0.1:${ctx.config.etcdServer.clientPort}`], tls: undefined, managed: true };
  return { endpoints: state.endpoints ?? [state.clientUrl], tls: stateTls(state), managed: true };
}

/** Every member with its leader, learner, health and db size, each asked directly (a dead one reads unhealthy). */
export async function memberRows(ctx: Context): Promise<{ rows: MemberRow[]; endpoints: string[] }> {
  const access = await clusterAccess(ctx);
  const { members } = await listMembers(access.endpoints, access.tls);
  const rows = await Promise.all(
    members.map(async (m): Promise<MemberRow> => {
      const row: MemberRow = {
        id: memberIdHex(m.ID),
        name: m.name ?? '',
        peerUrls: m.peerURLs ?? [],
        clientUrls: m.clientURLs ?? [],
        learner: m.isLearner === true,
        started: Boolean(m.name),
        leader: false,
        healthy: false,
        dbBytes: null,
        error: m.name ? null : 'not started',
      };
      for (const url of row.clientUrls) {
        try {
          const s = await etcdPost<RawStatus>(url, '/v3/maintenance/status', {}, access.tls, 2000);
          row.leader = s.leader !== undefined && s.leader === s.header?.member_id;
          row.dbBytes = Number(s.dbSize ?? 0);
          row.healthy = (s.errors ?? []).length === 0 && s.leader !== undefined && s.leader !== '0';
          row.error = s.errors?.join('; ') || (row.healthy ? null : 'no leader');
          break;
        } catch (e) {
          row.error = (e as Error).message;
        }
      }
      return row;
    }),
  );
  const endpoints = rows.flatMap((r) => r.clientUrls);
  if (access.managed) await recordEndpoints(ctx, endpoints);
  return { rows: rows.sort((a, b) => a.name.localeCompare(b.name)), endpoints };
}

/** This host's record follows the cluster (its own member first): its clients then reach every member. */
async function recordEndpoints(ctx: Context, endpoints: readonly string[]): Promise<EtcdServerState | null> {
  const state = await readEtcdState(ctx);
  if (ctx.runner.dryRun || endpoints.length === 0 || !state?.tls) return state;
  const next = [state.clientUrl, ...endpoints.filter((u) => u !== state.clientUrl)];
  if (JSON.stringify(next) === JSON.stringify(state.endpoints) || !(await isEtcdProcess(state.pid))) return state;
  const updated = { ...state, endpoints: next };
  await writeJsonAtomic(statePaths(ctx.config.stateDir).etcdState, updated);
  return updated;
}

/**
 * A member's client URLs as the cluster lists them now, recorded: the first member learns only this way of
 * the hosts that joined it, and an agent that kept its own member alone would stall with it.
 */
export async function refreshEndpoints(ctx: Context, state: EtcdServerState): Promise<EtcdServerState> {
  // No member answers (no quorum yet): the recorded list, and the agent waits for the store as it always did.
  const listed = await listMembers(state.endpoints ?? [state.clientUrl], stateTls(state)).catch(() => null);
  const urls = listed?.members.flatMap((m) => m.clientURLs ?? []) ?? [];
  return (await recordEndpoints(ctx, urls)) ?? state;
}

/** `knarr etcd members`: the cluster's members. */
export async function etcdMembers(ctx: Context): Promise<CommandResult> {
  const { rows } = await memberRows(ctx);
  return {
    data: rows,
    view: {
      kind: 'table',
      columns: ['NAME', 'ID', 'PEER URLS', 'CLIENT URLS', 'LEADER', 'LEARNER', 'HEALTHY', 'DB SIZE', 'ERROR'],
      rows: rows.map((r) => [
        r.name || '(unstarted)',
        r.id,
        r.peerUrls.join(','),
        r.clientUrls.join(',') || '-',
        r.leader ? 'yes' : 'no',
        r.learner ? 'yes' : 'no',
        r.healthy ? 'yes' : 'no',
        r.dbBytes === null ? '-' : formatSize(r.dbBytes),
        r.error ?? '',
      ]),
      wide: ['ID', 'ERROR'],
    },
    exitCode: rows.some((r) => r.healthy) ? ExitCode.ok : ExitCode.storeUnavailable,
  };
}
