import { describe, expect, it } from 'vitest';
import { completes, GLOBAL_OPTIONS, leafCommands, longName, visible } from '../../src/cli/commands-table.js';
import { NAME_KINDS } from '../../src/commands/define.js';

const leaf = (path: string) => leafCommands().find((l) => l.path.join(' ') === path)!.def;
const argKinds = (path: string) => (leaf(path).args ?? []).map(completes);
const optionKind = (path: string, name: string) => completes((leaf(path).options ?? []).find((o) => longName(o.flags) === name)!);

describe('what completion offers for each argument and option value', () => {
  it('follows the name: an argument dot, branch or node, an option --pool or --host, a path-like name', () => {
    expect(argKinds('dot checkout')).toEqual(['dot', 'branch']);
    expect(argKinds('cluster exec')).toEqual(['cluster', 'node', 'none']);
    expect(argKinds('image save')).toEqual(['cluster', 'node', 'none']);
    expect(argKinds('etcd backup')).toEqual(['path']);
    expect(argKinds('dot mount')).toEqual(['dot', 'path']);
    expect(optionKind('dot log', 'branch')).toBe('branch');
    expect(optionKind('etcd up', 'pool')).toBe('pool');
    expect(optionKind('job run', 'host')).toBe('host');
    expect(optionKind('pool init', 'loop-file')).toBe('path');
    expect(completes(GLOBAL_OPTIONS.find((o) => longName(o.flags) === 'state-dir')!)).toBe('path');
  });

  it('an explicit field wins where the name does not say: a new name offers nothing, an existing one its kind', () => {
    expect(argKinds('cluster create')).toEqual(['none']);
    expect(argKinds('cluster show')).toEqual(['cluster']);
    expect(argKinds('image rm')).toEqual(['image']);
    expect(argKinds('image import')).toEqual(['none', 'path']);
    expect(argKinds('dot remote rm')).toEqual(['remote']);
    expect(argKinds('dot remote add')).toEqual(['none', 'none']);
    expect(argKinds('job run')[0]).toBe('docker-image');
  });

  it('every kind of name is offered somewhere in the visible table', () => {
    const used = new Set(leafCommands(visible()).flatMap(({ def }) => [...(def.args ?? []), ...(def.options ?? [])].map(completes)));
    for (const kind of NAME_KINDS) expect(used, kind).toContain(kind);
  });
});
