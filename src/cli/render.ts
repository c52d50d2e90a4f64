import type { View } from '../commands/types.js';
import type { OutputFormat } from '../core/config.js';
import type { KnarrError } from '../core/errors.js';

function pad(s: string, n: number): string {
  return s + ' '.repeat(Math.max(0, n - s.length));
}

export function renderTable(columns: string[], rows: string[][]): string {
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : pad(c, widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns), ...rows.map(line)].join('\n') + '\n';
}

export function renderView(view: View): string {
  switch (view.kind) {
    case 'table':
      return renderTable(view.columns, view.rows);
    case 'fields': {
      const w = Math.max(...view.fields.map(([k]) => k.length));
      return view.fields.map(([k, v]) => `${pad(`${k}:`, w + 1)} ${v}`.trimEnd()).join('\n') + '\n';
    }
    case 'lines':
      return view.lines.map((l) => `${l}\n`).join('');
    case 'raw':
      return view.text;
    case 'sections':
      return view.sections.map(renderView).join('\n');
  }
}

/** Turns a handler's result into what stdout carries, in the chosen format. */
export async function renderResult(data: unknown, view: View | undefined, format: OutputFormat): Promise<string> {
  if (format === 'json') return `${JSON.stringify(data, null, 2)}\n`;
  if (format === 'yaml') {
    const { stringify } = await import('yaml');
    return stringify(data);
  }
  return view ? renderView(view) : `${JSON.stringify(data, null, 2)}\n`;
}

/** Under --dry-run: the planned commands, one a line (table), or with the result (json/yaml). */
export async function renderDryRun(planned: string[], data: unknown, format: OutputFormat): Promise<string> {
  if (format === 'table') return planned.map((l) => `${l}\n`).join('');
  return renderResult({ dryRun: true, commands: planned, result: data }, undefined, format);
}

/** One line for a person (plus an indented hint), or one JSON line under --json. */
export function renderError(err: KnarrError, format: OutputFormat, verbose: boolean): string {
  if (format !== 'table') {
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
