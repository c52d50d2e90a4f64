import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { COMMANDS, leafCommands } from '../../src/cli/commands-table.js';

const commandsDir = fileURLToPath(new URL('../../src/commands/', import.meta.url));

describe('every command is a typed definition', () => {
  it('each leaf of the table runs through defineCommand (or a typed run), none through an option bag', () => {
    const leaves = leafCommands(COMMANDS);
    expect(leaves.length).toBeGreaterThan(60);
    for (const { path, def } of leaves) expect(def.run, path.join(' ')).toBeTypeOf('function');
  });

  it('no handler looks options up by name, takes the option bag, or casts its arguments', () => {
    const files = readdirSync(commandsDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && f !== 'types.ts' && f !== 'define.ts');
    for (const file of files) {
      const text = readFileSync(`${commandsDir}${file}`, 'utf8');
      expect(text, file).not.toMatch(/\bopt(String|Bool|List)\(|\bCommandInput\b|as unknown as|args\[\d\] as |opts: \{\}|\{ args: \[/);
    }
  });
});
