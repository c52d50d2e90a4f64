import { existsSync, readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { knarr } from '../harness/cli.js';
import { tempDir, type TempDir } from '../harness/tmp.js';

let tmp: TempDir;
beforeEach(async () => {
  tmp = await tempDir('knarr-hubsrv-cli-');
});
afterEach(() => tmp.cleanup());

describe('knarr hub token and hub list on a local hub directory', () => {
  it('bad input is refused naming the field, before the hub directory is touched', async () => {
    const hub = `${tmp.path}/hub`;
    const bad = await knarr(['hub', 'token', 'create', 'Alice', '--hub', hub]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/USER: "Alice" is not a hub user/);
    const both = await knarr(['hub', 'token', 'create', 'alice', '--read', '--write', '--hub', hub]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--write: give --read or --write, not both/);
    const nowhere = await knarr(['hub', 'token', 'create', 'alice'], { env: { KNARR_HUB_DIR: undefined } });
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toMatch(/--hub: name the hub directory/);
    expect((await knarr(['hub', 'token', 'revoke', 'nothex', '--hub', hub])).code).toBe(2);
    expect((await knarr(['hub', 'list', '--remote', 'ftp://x', '--hub', hub])).code).toBe(2);
    expect(existsSync(hub)).toBe(false);
  });

  it('--dry-run says what it would do and writes no token; the real run prints the token once, read access by default', async () => {
    const hub = `${tmp.path}/hub`;
    const dry = await knarr(['--dry-run', 'hub', 'token', 'create', 'alice', '--write', '--hub', hub]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^# add a write token of alice to .*tokens\.json/m);
    expect(existsSync(`${hub}/tokens.json`)).toBe(false);
    const made = await knarr(['hub', 'token', 'create', 'alice'], { env: { KNARR_HUB_DIR: hub } });
    expect(made.code, made.stderr).toBe(0);
    const token = made.stdout.trim();
    expect(token).toMatch(/^knh_[0-9a-f]{16}_[0-9a-f]{64}$/);
    expect(readFileSync(`${hub}/tokens.json`, 'utf8')).not.toContain(token);
    const list = await knarr(['--json', 'hub', 'token', 'list', '--hub', hub]);
    expect(list.json()).toEqual([{ id: token.split('_')[1], user: 'alice', access: 'read', createdAt: expect.any(String) }]);
    const dryRevoke = await knarr(['--dry-run', 'hub', 'token', 'revoke', token.split('_')[1]!, '--hub', hub]);
    expect(dryRevoke.code, dryRevoke.stderr).toBe(0);
    expect((await knarr(['--json', 'hub', 'token', 'list', '--hub', hub])).json()).toHaveLength(1);
    expect((await knarr(['--json', 'hub', 'list', '--hub', hub])).json()).toEqual([]);
  });
});
