import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { settingFlags } from '../../src/commands/setting-options.js';
import { knarr } from '../harness/cli.js';
import { tempDir, type TempDir } from '../harness/tmp.js';

let tmp: TempDir;
beforeEach(async () => {
  tmp = await tempDir();
});
afterEach(() => tmp.cleanup());

const run = (argv: string[], env: Record<string, string> = {}) => knarr(['--state-dir', `${tmp.path}/state`, ...argv], { env });

describe('knarr daemon takes its flags from the settings table', () => {
  it('keeps the daemon flags commander gave, a --no- flag as false, and nothing else', () => {
    const opts = { prune: false, tags: ['a,b', 'c'], listen: '127.0.0.1:1', ttl: undefined, json: true, fix: true };
    expect(settingFlags('daemon', opts)).toEqual({ prune: false, tags: ['a,b', 'c'], listen: '127.0.0.1:1' });
    expect(settingFlags('daemon', {})).toEqual({});
  });

  it('a flag value goes through the table parser, naming the flag', async () => {
    const mode = await run(['daemon', '--mode', 'fresh']);
    expect(mode.code).toBe(2);
    expect(mode.stderr).toMatch(/--mode: use recovery \(keep clusters\) or new/);
    const ttl = await run(['daemon', '--ttl', '1'], { KNARR_DAEMON_TTL: '20' });
    expect(ttl.code).toBe(2);
    expect(ttl.stderr).toMatch(/--ttl: must be a whole number of seconds from 2 to 300/);
  });
});
