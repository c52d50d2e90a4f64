import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HubStore } from '../../src/host/hub-store.js';
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

  it('gc removes abandoned uploads and unnamed blobs older than the age; named blobs and young files stay; --dry-run only lists', async () => {
    const hub = `${tmp.path}/hub`;
    const store = new HubStore(hub);
    const dir = store.dotDir('alice', 'pg');
    mkdirSync(`${dir}/blobs`, { recursive: true });
    mkdirSync(`${dir}/uploads`, { recursive: true });
    const put = (rel: string, body: string, ageH: number) => {
      writeFileSync(`${dir}/${rel}`, body);
      const t = new Date(Date.now() - ageH * 3600_000);
      utimesSync(`${dir}/${rel}`, t, t);
    };
    const sha = (b: string) => createHash('sha256').update(b).digest('hex');
    const [named, unnamedOld, unnamedYoung] = ['named stream', 'left by a push whose manifest never came', 'uploaded a minute ago'].map(sha) as [
      string,
      string,
      string,
    ];
    put(`blobs/${named}`, 'named stream', 48);
    put(`blobs/${unnamedOld}`, 'left by a push whose manifest never came', 48);
    put(`blobs/${unnamedYoung}`, 'uploaded a minute ago', 0);
    put('uploads/0000000000000001-full', 'a cut push', 30);
    put('uploads/0000000000000002-full', 'a push under way', 0);
    const id = '00000000a1deadbeef';
    const manifest = {
      version: 2,
      dot: 'pg',
      format: 'zfs',
      subdots: ['__default__'],
      branches: { master: { commits: [id] } },
      commits: {
        [id]: {
          record: { id, dot: 'pg', branch: 'master', message: 'm', author: 'a', createdAt: '2026-01-01T00:00:00Z' },
          base: null,
          file: named,
          sha256: named,
          bytes: 'named stream'.length,
        },
      },
      updatedAt: '2026-01-01T00:00:00Z',
    };
    await store.putManifest('alice', 'pg', manifest, { ifMatch: null, create: true, private: false });
    const left = () =>
      ['blobs', 'uploads'].flatMap((sub) =>
        [named, unnamedOld, unnamedYoung, '0000000000000001-full', '0000000000000002-full'].filter((n) => existsSync(`${dir}/${sub}/${n}`)),
      );
    const all = left();
    expect(all).toHaveLength(5);

    const bad = await knarr(['hub', 'gc', '--older-than', 'yesterday', '--hub', hub]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--older-than: "yesterday" is not an age/);
    const dry = await knarr(['--dry-run', 'hub', 'gc', '--hub', hub]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`# remove blob alice/pg ${unnamedOld}`);
    expect(dry.stdout).toContain('# remove upload alice/pg 0000000000000001-full');
    expect(dry.stdout.match(/^# remove/gm)).toHaveLength(2);
    expect(left()).toEqual(all);

    const gc = await knarr(['--json', 'hub', 'gc', '--hub', hub]);
    expect(gc.code, gc.stderr).toBe(0);
    const out = gc.json() as { removed: { kind: string; name: string; bytes: number }[]; bytes: number };
    expect(out.removed.map((r) => `${r.kind} ${r.name}`).sort()).toEqual([`blob ${unnamedOld}`, 'upload 0000000000000001-full']);
    expect(out.bytes).toBe('left by a push whose manifest never came'.length + 'a cut push'.length);
    expect(left().sort()).toEqual([named, unnamedYoung, '0000000000000002-full'].sort());
    // The dot is whole: its manifest still names a blob the hub holds.
    expect((await knarr(['--json', 'hub', 'list', '--hub', hub])).json()).toMatchObject([{ user: 'alice', dot: 'pg' }]);
    // A second run finds nothing; an age of 0 takes the young unnamed files, never the named blob.
    expect((await knarr(['hub', 'gc', '--hub', hub])).stdout).toMatch(/nothing to remove/);
    expect((await knarr(['hub', 'gc', '--older-than', '0', '--hub', hub])).code).toBe(0);
    expect(left()).toEqual([named]);
  });
});
