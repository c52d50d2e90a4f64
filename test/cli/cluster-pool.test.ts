import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { tempDir, type TempDir } from '../harness/tmp.js';

let tmp: TempDir;
let state: string;
beforeEach(async () => {
  tmp = await tempDir();
  state = `${tmp.path}/state`;
});
afterEach(() => tmp.cleanup());

describe('the pool clusters and images go on', () => {
  it('with two pools that can hold nodes and none configured, says both qualify and that --pool picks one', async () => {
    for (const name of ['nodes', 'other']) expect((await knarr(['--state-dir', state, 'pool', 'init', '--name', name, '--driver', 'dir'])).code).toBe(0);
    for (const argv of [
      ['image', 'import', 'base', '--busybox'],
      ['cluster', 'create', 'c1', '--size', '1'],
    ]) {
      const r = await knarr(['--state-dir', state, ...argv]);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/there is no pool knarr, and 2 pools can: nodes \(dir\), other \(dir\); --pool picks one\n  hint: add --pool nodes/);
      expect(r.stderr).not.toMatch(/pool init/);
      const json = await knarr(['--json', '--state-dir', state, ...argv]);
      expect(JSON.parse(json.stderr).error).toMatchObject({ pools: ['nodes', 'other'] });
    }
  });
});
