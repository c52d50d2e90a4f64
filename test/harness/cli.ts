import { PassThrough } from 'node:stream';
import { main } from '../../src/cli/main.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read fields of the output without declaring its shape.
  json<T = any>(): T;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
}

/** Runs knarr in-process with captured streams, as an operator would at a shell. */
export async function knarr(argv: string[], opts: CliOptions = {}): Promise<CliRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (b: Buffer) => out.push(b));
  stderr.on('data', (b: Buffer) => err.push(b));
  const env: NodeJS.ProcessEnv = { ...process.env, KNARR_CONFIG: undefined, KNARR_ETCD: undefined, CI: 'true', ...opts.env };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const code = await main(argv, { stdout, stderr, env, cwd: opts.cwd ?? process.cwd(), stderrIsTTY: false });
  const result = { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
  return {
    ...result,
    json() {
      try {
        return JSON.parse(result.stdout);
      } catch {
        throw new Error(`stdout is not JSON (exit ${code}):\n${result.stdout}\nstderr:\n${result.stderr}`);
      }
    },
  };
}
