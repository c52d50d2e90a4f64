import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ValidationError } from '../core/errors.js';
import { checkSpecNesting } from '../core/job-spec.js';

/** A YAML parser: the yaml package's, loaded only by the commands that read a file. */
export type YamlParse = (text: string) => unknown;

export const loadYamlParser = async (): Promise<YamlParse> => (await import('yaml')).parse as YamlParse;

/** A file named on the command line (relative to the command's directory), its failure named after field. */
export async function readInputFile(ctx: { cwd: string }, field: string, file: string): Promise<{ text: string; path: string }> {
  const path = resolve(ctx.cwd, file);
  try {
    return { text: await readFile(path, 'utf8'), path };
  } catch (e) {
    throw new ValidationError(field, `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** YAML (or JSON) text as a value, its nesting checked before the parser recurses into it; deep says what a file nested too deeply cannot be. */
export function parseYamlText(parse: YamlParse, field: string, path: string, text: string, deep = ''): unknown {
  checkSpecNesting(field, text);
  try {
    return parse(text) ?? {};
  } catch (e) {
    // Block-style YAML nested deep enough overflows the parser too.
    if (e instanceof RangeError) throw new ValidationError(field, `${path} is nested too deeply${deep}`);
    throw new ValidationError(field, `${path} is not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
}
