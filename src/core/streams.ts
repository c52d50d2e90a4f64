import { Transform, type Readable } from 'node:stream';

/** Calls each with every JSON value of a newline-delimited stream (docker events, etcd watches); other lines are skipped. */
export function onJsonLines(stream: Readable, each: (value: unknown) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        continue;
      }
      each(value);
    }
  });
}

/** A pause that a watch cuts short: sleep(ms) resolves after ms, or at once when wake() is called. */
export class Wakeup {
  private pending: (() => void) | null = null;
  /** A wake while nobody slept: the next sleep returns at once, so a change between a check and the sleep is not missed. */
  private missed = false;

  wake(): void {
    if (this.pending) this.pending();
    else this.missed = true;
  }

  sleep(ms: number): Promise<void> {
    if (this.missed) {
      this.missed = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.pending = null;
        resolve();
      }
      this.pending = done;
    });
  }
}

/** Stops reading stdin once a job is over, so knarr can exit while its writer still has more (a pipe stays open otherwise). */
export function stopReading(stdin: Readable): void {
  stdin.unpipe();
  stdin.pause();
  (stdin as { unref?: () => void }).unref?.();
  stdin.destroy();
}

/** input as it passes, each piece's size told to onBytes (a progress line); an error of input ends it too. */
export function metered(input: Readable, onBytes: (bytes: number) => void): Readable {
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      onBytes(chunk.length);
      done(null, chunk);
    },
  });
  input.once('error', (e) => counter.destroy(e));
  // Its consumer may attach later: it finds the failure in counter.errored, and it is no uncaught error meanwhile.
  counter.on('error', () => undefined);
  return input.pipe(counter);
}
