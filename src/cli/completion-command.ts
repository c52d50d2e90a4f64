import type { CommandResult } from '../commands/types.js';
import { completionScript, type Shell } from './completions.js';

/** `knarr completion bash|zsh|fish`: the same script as the committed file in completions/. */
export async function completion(shell: Shell): Promise<CommandResult> {
  const script = completionScript(shell);
  return { data: { shell, script }, view: { kind: 'raw', text: script } };
}
