import { COMPLETION_FILES, SHELLS } from './completion-files.js';
import { completionScript } from './completions.js';
import { manPages } from './manpages.js';
import { configurationDoc } from './settings-doc.js';

/** Every generated file, by path relative to the repository root. */
export function generatedFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const shell of SHELLS) files[`completions/${COMPLETION_FILES[shell]}`] = completionScript(shell);
  for (const [name, text] of Object.entries(manPages())) files[`man/${name}`] = text;
  files['docs/configuration.md'] = configurationDoc();
  return files;
}
