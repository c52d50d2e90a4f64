import type { Cell, View } from '../commands/types.js';
import type { OutputFormat } from '../core/config.js';
import type { KnarrError } from '../core/errors.js';
import { relativeTime } from '../core/time.js';

export { relativeTime };

function pad(s: string, n: number): string {
  return s + ' '.repeat(Math.max(0, n - s.length));
}

/** How a result is drawn: the format, and for tables the headers, the terminal's width (none: not a TTY) and now. */
export interface RenderOptions {
  format: OutputFormat;
  headers?: boolean;
  /** Columns of the terminal stdout is; undefined when stdout is no TTY, and then nothing is cut. */
  width?: number;
  /** Milliseconds since the epoch that relative times are counted from. */
  now?: number;
}

/** Tables are drawn for a person under table and wide; json and yaml carry the data. */
export const isTableFormat = (format: OutputFormat): boolean => format === 'table' || format === 'wide';

export function cellText(cell: Cell, now: number): string {
  return typeof cell === 'string' ? cell : relativeTime(cell.time, now);
}

/** A show command's time reads relative, with the exact time beside it. */
function fieldText(cell: Cell, now: number): string {
  const text = cellText(cell, now);
  return typeof cell === 'string' || text === '-' || text === String(cell.time) ? text : `${text} (${new Date(cell.time!).toISOString()})`;
}

/** A value cut to n characters, its last one an ellipsis. */
function cut(s: string, n: number): string {
  return s.length <= n ? s : n <= 1 ? '…'.slice(0, n) : `${s.slice(0, n - 1)}…`;
}

/** Column widths that fit width: the widest shrinkable column loses a character at a time, never below its floor. */
export function fitWidths(columns: readonly string[], widths: readonly number[], width: number, keep?: readonly string[]): number[] {
  const out = [...widths];
  // The columns that name a row are never cut: those the view keeps, else its first titled one (and a NAME).
  const kept = keep ?? [columns.find((c) => c !== '') ?? '', 'NAME'];
  const floor = columns.map((c, i) => (kept.includes(c) ? widths[i]! : Math.min(widths[i]!, Math.max(c.length, 6))));
  let total = out.reduce((a, b) => a + b, 0) + 2 * (out.length - 1);
  while (total > width) {
    let widest = -1;
    for (let i = 0; i < out.length; i++) if (out[i]! > floor[i]! && (widest < 0 || out[i]! > out[widest]!)) widest = i;
    if (widest < 0) break;
    out[widest]!--;
    total--;
  }
  return out;
}

export function renderTable(columns: string[], rows: string[][], opts: { headers?: boolean; width?: number; keep?: readonly string[] } = {}): string {
  const natural = columns.map((c, i) => Math.max(opts.headers === false ? 0 : c.length, ...rows.map((r) => (r[i] ?? '').length)));
  const widths = opts.width !== undefined && opts.width > 0 ? fitWidths(columns, natural, opts.width, opts.keep) : natural;
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? cut(c, widths[i]!) : pad(cut(c, widths[i]!), widths[i]!)))
      .join('  ')
      .trimEnd();
  const lines = (opts.headers === false ? rows : [columns, ...rows]).map(line);
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

export function renderView(view: View, opts: Omit<RenderOptions, 'format'> & { wide?: boolean } = {}): string {
  const now = opts.now ?? Date.now();
  switch (view.kind) {
    case 'table': {
      const shown = view.columns.map((c, i) => (opts.wide || !view.wide?.includes(c) ? i : -1)).filter((i) => i >= 0);
      const rows = view.rows.map((r) => shown.map((i) => cellText(r[i] ?? '', now)));
      return renderTable(
        shown.map((i) => view.columns[i]!),
        rows,
        { ...opts, keep: view.keep },
      );
    }
    case 'fields': {
      const w = Math.max(...view.fields.map(([k]) => k.length));
      return view.fields.map(([k, v]) => `${pad(`${k}:`, w + 1)} ${fieldText(v, now)}`.trimEnd()).join('\n') + '\n';
    }
    case 'lines':
      return view.lines.map((l) => `${l}\n`).join('');
    case 'raw':
      return view.text;
    case 'sections':
      return view.sections.map((v) => renderView(v, opts)).join('\n');
  }
}

/** Turns a handler's result into what stdout carries, in the chosen format. */
export async function renderResult(data: unknown, view: View | undefined, opts: RenderOptions): Promise<string> {
  if (opts.format === 'json') return `${JSON.stringify(data, null, 2)}\n`;
  if (opts.format === 'yaml') {
    const { stringify } = await import('yaml');
    return stringify(data);
  }
  return view ? renderView(view, { ...opts, wide: opts.format === 'wide' }) : `${JSON.stringify(data, null, 2)}\n`;
}

/** Under --dry-run: the planned commands, one a line (table), or with the result (json/yaml). */
export async function renderDryRun(planned: string[], data: unknown, format: OutputFormat): Promise<string> {
  if (isTableFormat(format)) return planned.map((l) => `${l}\n`).join('');
  return renderResult({ dryRun: true, commands: planned, result: data }, undefined, { format });
}

/** One line for a person (plus an indented hint), or one JSON line under --json. */
export function renderError(err: KnarrError, format: OutputFormat, verbose: boolean): string {
  if (!isTableFormat(format)) {
    return `${JSON.stringify({ error: { code: err.code, message: err.message, hint: err.hint ?? null, exitCode: err.exitCode, ...err.detail } })}\n`;
  }
  let text = `knarr: ${err.message}\n`;
  if (err.hint)
    text +=
      err.hint
        .split('\n')
        .map((l, i) => (i === 0 ? `  hint: ${l}` : `    ${l}`))
        .join('\n') + '\n';
  if (verbose && err.code === 'E_INTERNAL' && err.stack) text += `${err.stack}\n`;
  if (verbose && err.cause instanceof Error && err.cause.stack) text += `caused by: ${err.cause.stack}\n`;
  return text;
}
