import { etcdPost, httpGet, type ClientTls } from './etcd-server.js';

/** What a NOSPACE alarm asks of the operator, in order. */
export const NOSPACE_FIX =
  'free space: knarr etcd compact, then knarr etcd defrag --disarm (it defragments, then clears the alarm as etcdctl alarm disarm does)';

export interface Space {
  /** Bytes of the database file, and of it in use (the rest is freed by a defrag). */
  dbBytes: number | null;
  dbInUseBytes: number | null;
  quotaBytes: number | null;
  /** etcd's raised alarms, e.g. NOSPACE. */
  alarms: string[];
}

/** The database's size against its quota, and the raised alarms, from etcd's /metrics and alarm list; null fields when it does not say. */
export async function probeSpace(clientUrl: string, timeoutMs = 2000, tls?: ClientTls): Promise<Space> {
  const metric = (text: string, name: string) => {
    const m = new RegExp(`^${name} ([0-9.e+]+)$`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  };
  const metrics = await httpGet(`${clientUrl}/metrics`, timeoutMs, tls).then(
    (r) => r.body,
    () => '',
  );
  const alarms = await etcdPost<{ alarms?: { alarm?: string }[] }>(clientUrl, '/v3/maintenance/alarm', { action: 'GET' }, tls, timeoutMs).then(
    (r) => (r.alarms ?? []).map((a) => a.alarm ?? 'NONE'),
    () => [],
  );
  return {
    dbBytes: metric(metrics, 'etcd_mvcc_db_total_size_in_bytes') ?? metric(metrics, 'etcd_debugging_mvcc_db_total_size_in_bytes'),
    dbInUseBytes: metric(metrics, 'etcd_mvcc_db_total_size_in_use_in_bytes'),
    quotaBytes: metric(metrics, 'etcd_server_quota_backend_bytes'),
    alarms,
  };
}

/** Defragments the one member at clientUrl (etcd's gateway, as `etcdctl defrag` does): it answers nothing meanwhile. */
export async function defragMember(clientUrl: string, tls: ClientTls | undefined, timeoutMs: number): Promise<void> {
  await etcdPost(clientUrl, '/v3/maintenance/defragment', {}, tls, timeoutMs);
}

/** What the agent notes of the last defragmentation of its host's member (etcd/defrag.json), for `etcd status` and its own pace. */
export interface DefragRecord {
  member: string;
  startedAt: string;
  endedAt: string;
  beforeBytes: number;
  afterBytes: number | null;
}

export const defragRecordPath = (etcdDir: string) => `${etcdDir}/defrag.json`;

/** Worth a defragmentation: at least minFree bytes, and a quarter of the file, lie free inside it. */
export function defragWorthIt(space: Space, minFreeBytes: number): boolean {
  if (space.dbBytes === null || space.dbInUseBytes === null) return false;
  const free = space.dbBytes - space.dbInUseBytes;
  return free >= minFreeBytes && free >= space.dbBytes / 4;
}
