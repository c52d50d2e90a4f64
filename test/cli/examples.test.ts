import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { GLOBAL_OPTIONS, COMMANDS, longName } from '../../src/cli/commands-table.js';

describe('examples/linuxkit.yml', () => {
  const doc = parse(readFileSync(new URL('../../examples/linuxkit.yml', import.meta.url), 'utf8'));
  const knarrStep = doc.onboot.find((c: { name: string }) => c.name === 'knarr');

  it('runs knarr onboot as an onboot container with what it needs to make and propagate mounts', () => {
    expect(knarrStep.capabilities).toEqual(['all']);
    expect(knarrStep.rootfsPropagation).toBe('shared');
    expect(knarrStep.binds).toEqual(expect.arrayContaining(['/dev:/dev', '/var:/var:rshared,rbind']));
  });

  it('uses only flags knarr has, and every flag onboot requires', () => {
    const argv: string[] = knarrStep.command;
    expect(argv[0]).toBe('knarr');
    const onboot = COMMANDS.find((c) => c.name === 'onboot')!;
    const known = new Set([...GLOBAL_OPTIONS, ...(onboot.options ?? [])].map((o) => `--${longName(o.flags)}`));
    const flags = argv.filter((a) => a.startsWith('--'));
    for (const f of flags) expect(known, f).toContain(f);
    expect(flags).toEqual(expect.arrayContaining(['--storage-device', '--dot', '--mountpoint', '--seed']));
    expect(argv).toContain('onboot');
  });
});
