/** Times for a person: how long ago (or until) a moment is. */
const UNITS: [number, string][] = [
  [365 * 86400, 'y'],
  [86400, 'd'],
  [3600, 'h'],
  [60, 'm'],
  [1, 's'],
];

/** "5m ago", "3d ago", "in 2m": whole units, in hours up to two days. */
export function relativeTime(time: string | number | null | undefined, now: number): string {
  if (time === null || time === undefined || time === '') return '-';
  const t = typeof time === 'number' ? time : Date.parse(time);
  if (!Number.isFinite(t)) return String(time);
  const seconds = Math.round((now - t) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 1) return 'now';
  const [unit, name] = UNITS.find(([u, n]) => abs >= (n === 'd' ? 2 * 86400 : u)) ?? [1, 's'];
  const text = `${Math.floor(abs / unit)}${name}`;
  return seconds > 0 ? `${text} ago` : `in ${text}`;
}
