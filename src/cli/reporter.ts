import type { Meter, Reporter } from '../commands/types.js';
import { fitLine, formatProgress } from '../core/progress.js';

interface ReporterIo {
  stderr: NodeJS.WritableStream;
  stderrIsTTY: boolean;
  env: NodeJS.ProcessEnv;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const FRAME_MS = 100;
const NO_METER: Meter = { add() {}, end() {} };

/**
 * A one-line status on an interactive terminal, plain "==>" lines otherwise, nothing under --quiet.
 * The status line is redrawn in place with \r and erase-to-end-of-line, cut to the terminal's width:
 * it never depends on counting wrapped rows, and a terminal without a usable width (0 columns) gets plain lines.
 */
export function createReporter(io: ReporterIo, quiet: boolean): Reporter {
  const log = (line: string) => void io.stderr.write(`${line}\n`);
  if (quiet) return { step() {}, warn() {}, done() {}, log, progress: () => NO_METER };
  const warn = (m: string) => void io.stderr.write(`knarr: warning: ${m}\n`);
  const plain = (m: string) => void io.stderr.write(`==> ${m}\n`);
  const interactive = io.stderrIsTTY && !io.env.CI && io.env.TERM !== 'dumb';
  if (!interactive) {
    return { step: plain, warn, done() {}, log, progress: (label) => (plain(label), NO_METER) };
  }
  const columns = () => (io.stderr as NodeJS.WriteStream).columns;
  let status: (() => string) | null = null;
  let timer: NodeJS.Timeout | null = null;
  let drawn = false;
  let frame = 0;
  const clear = () => {
    if (drawn) io.stderr.write('\r\x1b[K');
    drawn = false;
  };
  const draw = () => {
    if (!status) return;
    const line = fitLine(`${FRAMES[frame++ % FRAMES.length]} ${status()}`, columns());
    // The terminal lost its width while a status was up: no more redraws.
    if (line === null) return stop();
    io.stderr.write(`${drawn ? '\r' : ''}${line}\x1b[K`);
    drawn = true;
  };
  const stop = () => {
    if (timer) clearInterval(timer);
    timer = null;
    status = null;
    clear();
  };
  /** Shows a status line; false when the terminal has no usable width (the caller prints a plain line). */
  const show = (text: () => string): boolean => {
    stop();
    if (fitLine(' ', columns()) === null) return false;
    status = text;
    draw();
    // unref: a status line never keeps knarr running.
    timer = setInterval(draw, FRAME_MS).unref();
    return true;
  };
  return {
    step(m) {
      if (!show(() => m)) plain(m);
    },
    warn(m) {
      clear();
      warn(m);
    },
    log(line) {
      clear();
      log(line);
    },
    done: stop,
    progress(label, total) {
      const started = Date.now();
      let bytes = 0;
      const text = () => formatProgress(label, bytes, total, Date.now() - started);
      if (!show(text)) {
        plain(label);
        return NO_METER;
      }
      return {
        add: (n) => void (bytes += n),
        end() {
          if (status === text) stop();
        },
      };
    },
  };
}
