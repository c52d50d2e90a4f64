import type { Reporter } from '../commands/types.js';

interface ReporterIo {
  stderr: NodeJS.WritableStream;
  stderrIsTTY: boolean;
  env: NodeJS.ProcessEnv;
}

/** A spinner on an interactive terminal, plain "==>" lines otherwise, nothing under --quiet. */
export function createReporter(io: ReporterIo, quiet: boolean): Reporter {
  if (quiet) return { step() {}, warn() {}, done() {} };
  const warn = (m: string) => void io.stderr.write(`knarr: warning: ${m}\n`);
  const interactive = io.stderrIsTTY && !io.env.CI && io.env.TERM !== 'dumb';
  if (!interactive) {
    return { step: (m) => void io.stderr.write(`==> ${m}\n`), warn, done() {} };
  }
  let spinner: { text: string; stop(): void; start(): unknown } | null = null;
  let text = '';
  let finished = false;
  let loading: Promise<void> | null = null;
  return {
    step(m) {
      text = m;
      finished = false;
      if (spinner) {
        spinner.text = m;
        spinner.start();
        return;
      }
      loading ??= import('ora').then(({ default: ora }) => {
        spinner = ora({ text, stream: io.stderr as NodeJS.WriteStream });
        if (!finished) spinner.start();
      });
    },
    warn(m) {
      spinner?.stop();
      warn(m);
    },
    done() {
      finished = true;
      spinner?.stop();
    },
  };
}
