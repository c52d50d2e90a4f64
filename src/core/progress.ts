/** Bytes as an operator reads them: 512 B, 12.3 MB, 1.5 GB (powers of 1024, as du -h). */
export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Seconds as m:ss, or h:mm:ss past an hour. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const two = (n: number) => String(n).padStart(2, '0');
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}:${two(m)}:${two(s % 60)}` : `${m}:${two(s % 60)}`;
}

/** One progress line: "push d 3f2a: 12.3 MB of 40.0 MB, 5.1 MB/s, ETA 0:05"; the rate and ETA once there is a rate. */
export function formatProgress(label: string, bytes: number, total: number | undefined, elapsedMs: number): string {
  const rate = elapsedMs >= 500 ? (bytes * 1000) / elapsedMs : 0;
  const parts = [total !== undefined && total > 0 ? `${formatBytes(bytes)} of ${formatBytes(total)}` : formatBytes(bytes)];
  if (rate > 0) parts.push(`${formatBytes(rate)}/s`);
  if (rate > 0 && total !== undefined && total > bytes) parts.push(`ETA ${formatDuration((total - bytes) / rate)}`);
  return `${label}: ${parts.join(', ')}`;
}

/** A status line cut to fit one terminal row (columns - 1: writing the last column wraps on some terminals); null when the width is unknown or unusable. */
export function fitLine(text: string, columns: number | undefined): string | null {
  if (columns === undefined || !Number.isFinite(columns) || columns < 2) return null;
  const room = Math.floor(columns) - 1;
  const chars = [...text];
  return chars.length <= room ? text : `${chars.slice(0, Math.max(0, room - 1)).join('')}…`;
}
