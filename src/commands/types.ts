export type { Context, Meter, Reporter } from '../ops/context.js';

/** Commander's values as parsed, which defineCommand's parseInput turns into a handler's typed input. */
export interface CommandInput {
  /** Positional arguments, in table order (a variadic one last, as an array). */
  args: (string | string[] | undefined)[];
  /** Command options by camelCase name. */
  opts: Record<string, unknown>;
}

/** A point in time: a table shows it relative to now ("5m ago", "in 2m"); JSON and YAML carry the data's ISO 8601 text. */
export interface TimeCell {
  time: string | number | null | undefined;
}

/** One value of a table or fields view: text, or a time the renderer formats. */
export type Cell = string | TimeCell;

/** A time for a view's cell; absent or unparseable times show as "-". */
export const timeCell = (time: string | number | null | undefined): TimeCell => ({ time });

/** How a result reads as a table: rows of columns, label/value fields, or plain lines. */
export type View =
  | {
      kind: 'table';
      columns: string[];
      rows: Cell[][];
      /** Columns (by name) only `-o wide` shows; the others always show. */
      wide?: readonly string[];
      /** Columns a terminal's width never cuts (they name the row); by default the first titled one. */
      keep?: readonly string[];
    }
  | { kind: 'fields'; fields: [string, Cell][] }
  | { kind: 'lines'; lines: string[] }
  | { kind: 'raw'; text: string }
  /** Views one under another, a blank line between (a show command's fields, then its events). */
  | { kind: 'sections'; sections: View[] };

export interface CommandResult<T = unknown> {
  /** What --json and -o yaml print. */
  data: T;
  /** What -o table (the default) prints; JSON when absent. */
  view?: View;
  exitCode?: number;
  /** Raw bytes for stdout instead of a rendered result (`dot send`); the CLI hands it stdout. */
  /** Resolves to the exit code when the stream decides it (a job's). */
  stream?: (stdout: import('node:stream').Writable, stderr: import('node:stream').Writable) => Promise<number> | Promise<void>;
}
