import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leafCommands } from '../../src/cli/commands-table.js';
import { completionScript } from '../../src/cli/completions.js';
import { manPages } from '../../src/cli/manpages.js';
import { haveTools } from '../harness/tools.js';

// An alias added to two commands for the test: the scripts must treat it as the command itself.
const defs = ['dot show', 'dot list'].map((p) => leafCommands().find((l) => l.path.join(' ') === p)!.def as { aliases?: readonly string[] });
const saved = defs.map((d) => d.aliases);

describe('completion of a command typed by an alias', () => {
  let dir: string;
  beforeAll(() => {
    defs[0]!.aliases = [...(saved[0] ?? []), 'sh0'];
    defs[1]!.aliases = [...(saved[1] ?? []), 'ls0'];
    dir = mkdtempSync(`${tmpdir()}/knarr-alias-`);
    // A stand-in knarr that names one dot, so the script's own logic is what is tested.
    writeFileSync(`${dir}/knarr`, '#!/bin/sh\n[ "$4 $5" = "__complete dot" ] && echo pgdata\nexit 0\n');
    chmodSync(`${dir}/knarr`, 0o755);
    for (const shell of ['bash', 'fish'] as const) writeFileSync(`${dir}/${shell}`, completionScript(shell));
  });
  afterAll(() => {
    defs.forEach((d, i) => {
      d.aliases = saved[i];
    });
    rmSync(dir, { recursive: true, force: true });
  });

  it('offers the alias beside the name, and completes its arguments as the command', async () => {
    const env = { PATH: `${dir}:${process.env.PATH}` };
    const bash = async (line: string) =>
      (
        await execa('bash', ['-c', `source ${dir}/bash; COMP_LINE='${line}'; COMP_POINT=${line.length}; _knarr; printf '%s\\n' "\${COMPREPLY[@]}"`], { env })
      ).stdout.split('\n');
    expect(await bash('knarr dot ')).toEqual(expect.arrayContaining(['show', 'sh0', 'list', 'ls0']));
    expect(await bash('knarr dot sh0 ')).toEqual(['pgdata']);
    expect(await bash('knarr dot show ')).toEqual(['pgdata']);
    const fish = async (line: string) =>
      (await execa('fish', ['-c', `set -g fish_complete_path ${dir}; source ${dir}/fish; complete -C '${line}'`], { env, reject: false })).stdout
        .split('\n')
        .map((l) => l.split('\t')[0]);
    if (haveTools('fish')) {
      expect(await fish('knarr dot sh0 ')).toEqual(['pgdata']);
      expect(await fish('knarr dot ')).toEqual(expect.arrayContaining(['sh0', 'ls0']));
    }
    expect(completionScript('zsh')).toMatch(/^ {4}'dot\/show' \| 'dot\/sh0'\) args='dot'/m);
  });

  it('the man pages name the alias', () => {
    const pages = manPages();
    expect(pages['knarr-dot.1']).toContain('Also typed as knarr dot sh0.');
    expect(pages['knarr.1']).toMatch(/dots on this host \(also (ls, )?ls0\)/);
  });
});
