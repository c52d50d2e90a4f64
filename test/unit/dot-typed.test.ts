import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { CommandDef } from '../../src/commands/define.js';
import { dot } from '../../src/commands/dot/index.js';

const dotDir = fileURLToPath(new URL('../../src/commands/dot/', import.meta.url));
const onbootFile = fileURLToPath(new URL('../../src/commands/onboot.ts', import.meta.url));

function leaves(def: CommandDef, path: string[] = []): [string, CommandDef][] {
  const here = [...path, def.name];
  return def.subcommands ? def.subcommands.flatMap((c) => leaves(c, here)) : [[here.join(' '), def]];
}

describe('dot commands are typed definitions', () => {
  it('every dot command runs through defineCommand, none through the untyped handler bag', () => {
    const all = leaves(dot);
    expect(all.length).toBeGreaterThanOrEqual(21);
    for (const [name, def] of all) {
      expect(def.run, name).toBeTypeOf('function');
      expect(def.handler, name).toBeUndefined();
    }
  });

  it('no dot handler looks options up by name, takes the option bag, or casts its arguments', () => {
    for (const file of readdirSync(dotDir).filter((f) => f.endsWith('.ts'))) {
      const text = readFileSync(`${dotDir}${file}`, 'utf8');
      expect(text, file).not.toMatch(/\bopt(String|Bool|List)\(|\bHandler\b|\bCommandInput\b|as unknown as|args\[\d\] as /);
    }
  });

  it('onboot calls the dot handlers with typed arguments, not a CLI option bag', () => {
    expect(readFileSync(onbootFile, 'utf8')).not.toMatch(/dot(Init|Mount)\(\{/);
  });
});
