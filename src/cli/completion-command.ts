import { readFileSync } from 'node:fs';
import type { CommandResult } from '../commands/types.js';
import { FailureError } from '../core/errors.js';
import { COMPLETION_FILES, type Shell } from './completion-files.js';

// The same depth from src/cli, dist/cli and dist/bundle: the package root.
const COMPLETIONS_DIR = new URL('../../completions/', import.meta.url);

/** `knarr completion bash|zsh|fish`: prints the committed file in completions/ (generated from the command table at build time). */
export async function completion(shell: Shell): Promise<CommandResult> {
  const file = new URL(COMPLETION_FILES[shell], COMPLETIONS_DIR);
  let script: string;
  try {
    script = readFileSync(file, 'utf8');
  } catch (e) {
    throw new FailureError(`cannot read the ${shell} completion script ${file.pathname}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
      hint: 'the installation is incomplete: reinstall knarr',
      cause: e,
    });
  }
  return { data: { shell, script }, view: { kind: 'raw', text: script } };
}
