import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { defineCommand, parseInput, type TypedInput } from '../../src/commands/define.js';
import { ValidationError } from '../../src/core/errors.js';

const spec = {
  args: {
    dot: { description: 'dot', required: true },
    target: { description: 'where' },
    shell: { description: 'shell', choices: ['bash', 'zsh'] },
    rest: { description: 'more', variadic: true },
  },
  options: {
    message: { flags: '-m, --message <text>', description: 'message', required: true },
    author: { flags: '--author <name>', description: 'author' },
    meta: { flags: '--meta <k=v>', description: 'metadata', repeatable: true },
    force: { flags: '--force', description: 'force' },
    driver: { flags: '--driver <driver>', description: 'driver', choices: ['zfs', 'btrfs'] },
    loopFile: { flags: '--loop-file <path>', description: 'loop file' },
  },
} as const;

type Input = TypedInput<typeof spec.args, typeof spec.options>;

describe('defineCommand infers the handler input from the definition', () => {
  // Checked by the compile below: vitest's expectTypeOf does nothing at run time.
  it('types each option and argument by its definition', () => {
    defineCommand({ name: 'commit', summary: 's', dryRun: 'plans', ...spec }, async ({ args, options }) => {
      expectTypeOf(options.message).toEqualTypeOf<string>();
      expectTypeOf(options.author).toEqualTypeOf<string | undefined>();
      expectTypeOf(options.meta).toEqualTypeOf<string[]>();
      expectTypeOf(options.force).toEqualTypeOf<boolean>();
      expectTypeOf(options.driver).toEqualTypeOf<'zfs' | 'btrfs' | undefined>();
      expectTypeOf(args.dot).toEqualTypeOf<string>();
      expectTypeOf(args.target).toEqualTypeOf<string | undefined>();
      expectTypeOf(args.shell).toEqualTypeOf<'bash' | 'zsh' | undefined>();
      expectTypeOf(args.rest).toEqualTypeOf<string[]>();
      // @ts-expect-error an option the definition does not have
      void options.mesage;
      return { data: null };
    });
    expectTypeOf<Input['options']['loopFile']>().toEqualTypeOf<string | undefined>();
    // Flags widened to string say nothing: the handler gets unknown, not a wrong boolean.
    const wide: { flags: string; description: string } = { flags: '--size <n>', description: 'n' };
    defineCommand({ name: 'w', summary: 's', dryRun: 'reads', options: { size: wide } }, async ({ options }) => {
      expectTypeOf(options.size).toEqualTypeOf<unknown>();
      return { data: null };
    });
    const typed = async (opts: { force: string }) => ({ data: opts });
    defineCommand({ name: 'x', summary: 's', dryRun: 'reads', options: { force: { flags: '--force', description: 'f' } } }, async ({ options }) =>
      // @ts-expect-error a handler that wants another type than the definition gives is refused
      typed(options),
    );
  });

  it('the assertions above compile (and the refused ones are refused)', () => {
    const file = fileURLToPath(import.meta.url);
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: ['node'],
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.file?.fileName === file || d.file?.fileName.includes('/src/commands/define.ts'));
    expect(diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))).toEqual([]);
  }, 60_000);
});

describe('parseInput: commander values to the typed input, checked once', () => {
  const raw = (args: (string | string[] | undefined)[], opts: Record<string, unknown>) => ({ args, opts });

  it('reads each option under its commander name, with defaults for flags and lists', () => {
    const input = parseInput(spec, raw(['app'], { message: 'hi', loopFile: '/x.img', meta: ['a=1', 'b=2'] }));
    expect(input).toEqual({
      args: { dot: 'app', target: undefined, shell: undefined, rest: [] },
      options: { message: 'hi', author: undefined, meta: ['a=1', 'b=2'], force: false, driver: undefined, loopFile: '/x.img' },
    });
    expect(parseInput(spec, raw(['app', 't', 'zsh', ['x', 'y']], { message: 'hi', force: true, driver: 'btrfs' })).options.force).toBe(true);
  });

  it('refuses a missing required option, naming the flag', () => {
    const e = (() => {
      try {
        parseInput(spec, raw(['app'], {}));
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(ValidationError);
    expect((e as ValidationError).field).toBe('--message');
    expect((e as ValidationError).message).toBe('--message: is required');
  });

  it('refuses a value not among the choices, naming the flag and the choices', () => {
    expect(() => parseInput(spec, raw(['app'], { message: 'hi', driver: 'ntfs' }))).toThrow(
      new ValidationError('--driver', 'unknown driver "ntfs"; use one of zfs, btrfs'),
    );
    expect(() => parseInput(spec, raw(['app', undefined, 'fish'], { message: 'hi' }))).toThrow(/^SHELL: unknown shell "fish"; use one of bash, zsh$/);
  });

  it('refuses a missing required argument', () => {
    expect(() => parseInput(spec, raw([], { message: 'hi' }))).toThrow(/^DOT: is required$/);
  });
});
