import { readFileSync } from 'node:fs';
import type { Handler } from '../commands/types.js';
import { FailureError, ValidationError } from '../core/errors.js';
import { COMPLETION_FILES, SHELLS, type Shell } from './completion-files.js';

// The same depth from src/cli, dist/cli and dist/bundle: the package root.
const COMPLETIONS_DIR = new URL('../../completions/', import.meta.url);

/** `knarr completion bash|zsh|fish`: prints the committed file in completions/ (generated from the command table at build time). */
export const completion: Handler = async ({ args }) => {
  const shell = args[0] as string;
  if (!(SHELLS as readonly string[]).includes(shell)) {
    throw new ValidationError('SHELL', `${JSON.stringify(shell)} is not supported; use bash, zsh or fish`);
  }
  const file = new URL(COMPLETION_FILES[shell as Shell], COMPLETIONS_DIR);
  let script: string;
  try {
    script = readFileSync(file, 'utf8');
  } catch (e) {
    throw new FailureError(`cannot read the ${shell} completion script ${file.pathname}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: 'the installation is incomplete: reinstall knarr', cause: e });
  }
  return { data: { shell, script }, view: { kind: 'raw', text: script } };
};
