import { ValidationError } from './errors.js';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};

/** Parses "512M", "1.5G", "1073741824" into bytes; binary units, as zfs and truncate read them. */
export function parseSize(field: string, input: string): number {
  const text = input.trim();
  const m = /^([+-]?\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(text);
  if (!m) throw new ValidationError(field, `${JSON.stringify(input)} is not a size; write it like 512M, 2G or 1073741824`);
  const value = Number(m[1]);
  const unit = UNITS[(m[2] ?? '').toLowerCase()];
  if (unit === undefined) {
    throw new ValidationError(field, `unknown unit ${JSON.stringify(m[2])}; use K, M, G or T`);
  }
  const bytes = Math.floor(value * unit);
  if (!(bytes > 0)) throw new ValidationError(field, `${JSON.stringify(input)} must be greater than zero`);
  if (!Number.isSafeInteger(bytes)) throw new ValidationError(field, `${JSON.stringify(input)} is too large`);
  return bytes;
}

/** Formats bytes as a short binary size for tables ("1.5G"). */
export function formatSize(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '-';
  const units = ['B', 'K', 'M', 'G', 'T', 'P'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const text = i === 0 || v >= 100 ? String(Math.round(v)) : v.toFixed(1).replace(/\.0$/, '');
  return `${text}${units[i]}`;
}
