import { request } from 'node:http';

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
export async function probeSpace(clientUrl: string, timeoutMs = 2000): Promise<Space> {
  const metric = (text: string, name: string) => {
    const m = new RegExp(`^${name} ([0-9.e+]+)$`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  };
  const metrics = await httpCall('GET', `${clientUrl}/metrics`, '', timeoutMs).then(
    (r) => r.body,
    () => '',
  );
  const alarms = await httpCall('POST', `${clientUrl}/v3/maintenance/alarm`, '{"action":"GET"}', timeoutMs).then(
    (r) => ((JSON.parse(r.body) as { alarms?: { alarm?: string }[] }).alarms ?? []).map((a) => a.alarm ?? 'NONE'),
    () => [],
  );
  return {
    dbBytes: metric(metrics, 'etcd_mvcc_db_total_size_in_bytes') ?? metric(metrics, 'etcd_debugging_mvcc_db_total_size_in_bytes'),
    dbInUseBytes: metric(metrics, 'etcd_mvcc_db_total_size_in_use_in_bytes'),
    quotaBytes: metric(metrics, 'etcd_server_quota_backend_bytes'),
    alarms,
  };
}

function httpCall(method: string, url: string, body: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, timeout: timeoutMs, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs}ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
