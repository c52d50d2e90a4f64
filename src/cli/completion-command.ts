import type { Handler } from '../commands/types.js';
import { ValidationError } from '../core/errors.js';
import { SHELLS, completionScript, type Shell } from './completions.js';

/** `knarr completion bash|zsh|fish`: the same script as the committed file in completions/. */
export const completion: Handler = async ({ args }) => {
  const shell = args[0] as string;
  if (!(SHELLS as readonly string[]).includes(shell)) {
    throw new ValidationError('SHELL', `${JSON.stringify(shell)} is not supported; use bash, zsh or fish`);
  }
  const script = completionScript(shell as Shell);
  return { data: { shell, script }, view: { kind: 'raw', text: script } };
};
