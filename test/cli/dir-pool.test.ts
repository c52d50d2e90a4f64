import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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

describe('dir pools through the CLI', () => {
  it('init creates, a re-run reports exists and changes nothing', async () => {
    const first = await knarr(['--json', '--state-dir', state, 'pool', 'init', '--name', 'd1', '--driver', 'dir']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.json()).toMatchObject({ action: 'created', name: 'd1', driver: 'dir', health: 'ONLINE', mountpoint: `${state}/mnt/d1` });
    expect(existsSync(`${state}/mnt/d1/.knarr-pool`)).toBe(true);
    const record = `${state}/pools/d1.json`;
    const before = { text: readFileSync(record, 'utf8'), mtime: statSync(record).mtimeMs };

    const second = await knarr(['--json', '--state-dir', state, 'pool', 'init', '--name', 'd1', '--driver', 'dir']);
    expect(second.code).toBe(0);
    expect(second.json().action).toBe('exists');
    expect(readFileSync(record, 'utf8')).toBe(before.text);
    expect(statSync(record).mtimeMs).toBe(before.mtime);
  });

  it('refuses a non-empty directory unless --force', async () => {
    const dir = `${tmp.path}/busy`;
    await knarr(['--state-dir', state, 'pool', 'init', '--name', 'x', '--driver', 'dir', '--path', `${tmp.path}/other`]);
    writeFileSync(`${tmp.path}/keep.txt`, 'data');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir);
    writeFileSync(`${dir}/file`, 'data');
    const refused = await knarr(['--state-dir', state, 'pool', 'init', '--name', 'busy', '--driver', 'dir', '--path', dir]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/refusing to use .*busy for pool busy: the directory is not empty/);
    expect(existsSync(`${state}/pools/busy.json`)).toBe(false);
    const forced = await knarr(['--state-dir', state, 'pool', 'init', '--name', 'busy', '--driver', 'dir', '--path', dir, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(`${dir}/file`, 'utf8')).toBe('data');
  });

  it('a second pool on the same path, or the same name on another driver, is a conflict', async () => {
    const path = `${tmp.path}/p`;
    expect((await knarr(['--state-dir', state, 'pool', 'init', '--name', 'a', '--driver', 'dir', '--path', path])).code).toBe(0);
    const samePath = await knarr(['--state-dir', state, 'pool', 'init', '--name', 'b', '--driver', 'dir', '--path', path]);
    expect(samePath.code).toBe(4);
    expect(samePath.stderr).toMatch(/pool a already uses/);
    const otherDriver = await knarr(['--state-dir', state, 'pool', 'init', '--name', 'a', '--driver', 'zfs']);
    expect(otherDriver.code).toBe(4);
    expect(otherDriver.stderr).toMatch(/pool a already exists on this host and it uses the dir driver, not zfs/);
  });

  it('list, status and destroy', async () => {
    await knarr(['--state-dir', state, 'pool', 'init', '--name', 'a', '--driver', 'dir']);
    await knarr(['--state-dir', state, 'pool', 'init', '--name', 'b', '--driver', 'dir']);
    const list = await knarr(['--state-dir', state, 'pool', 'list']);
    expect(list.stdout.split('\n')[0]).toMatch(/^NAME\s+DRIVER\s+HEALTH\s+SIZE\s+USED\s+FREE\s+MOUNTPOINT$/);
    expect(list.stdout).toMatch(/^a\s+dir\s+ONLINE/m);
    const yaml = await knarr(['-o', 'yaml', '--state-dir', state, 'pool', 'list']);
    expect(yaml.stdout).toMatch(/^- name: a\n/);

    const status = await knarr(['--json', '--state-dir', state, 'pool', 'status', 'b']);
    expect(status.json()).toMatchObject({ name: 'b', online: true });
    expect(status.json().sizeBytes).toBeGreaterThan(0);
    const ambiguous = await knarr(['--state-dir', state, 'pool', 'status']);
    expect(ambiguous.code).toBe(3);
    expect(ambiguous.stderr).toMatch(/has 2 pools; name one \(a, b\)/);

    const noYes = await knarr(['--state-dir', state, 'pool', 'destroy', 'a']);
    expect(noYes.code).toBe(2);
    expect(existsSync(`${state}/mnt/a`)).toBe(true);
    const plan = await knarr(['--dry-run', '--state-dir', state, 'pool', 'destroy', 'a']);
    expect(plan.stdout).toBe(`rm -rf --one-file-system ${state}/mnt/a\n`);
    expect(existsSync(`${state}/mnt/a`)).toBe(true);
    const gone = await knarr(['--state-dir', state, 'pool', 'destroy', 'a', '--yes']);
    expect(gone.code, gone.stderr).toBe(0);
    expect(existsSync(`${state}/mnt/a`)).toBe(false);
    expect(existsSync(`${state}/pools/a.json`)).toBe(false);
    const missing = await knarr(['--state-dir', state, 'pool', 'destroy', 'a', '--yes']);
    expect(missing.code).toBe(3);
  });

  it('status of a host with no pool says how to make one', async () => {
    const r = await knarr(['--state-dir', state, 'pool', 'status']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/this host has no pool yet\n  hint: create one with: knarr pool init/);
  });
});

describe('configuration reaches the command: flag > env > file', () => {
  it('picks the state dir from the flag, then KNARR_STATE_DIR, then the config file', async () => {
    for (const name of ['flag', 'env', 'file']) {
      await knarr(['--state-dir', `${tmp.path}/${name}`, 'pool', 'init', '--name', name, '--driver', 'dir']);
    }
    const config = `${tmp.path}/config.yaml`;
    writeFileSync(config, `stateDir: ${tmp.path}/file\n`);
    const names = async (argv: string[], env: Record<string, string> = {}) =>
      (await knarr(['--json', '--config', config, ...argv, 'pool', 'list'], { env })).json().map((p: { name: string }) => p.name);
    expect(await names([])).toEqual(['file']);
    expect(await names([], { KNARR_STATE_DIR: `${tmp.path}/env` })).toEqual(['env']);
    expect(await names(['--state-dir', `${tmp.path}/flag`], { KNARR_STATE_DIR: `${tmp.path}/env` })).toEqual(['flag']);
  });

  it('a config file with an unknown key is refused with its path', async () => {
    const config = `${tmp.path}/bad.yaml`;
    writeFileSync(config, 'stateDirectory: /x\n');
    const r = await knarr(['--config', config, 'pool', 'list']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad.yaml: stateDirectory: unknown setting/);
  });

  it('a named config file that does not exist is an error', async () => {
    const r = await knarr(['--config', `${tmp.path}/none.yaml`, 'pool', 'list']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--config: cannot read .*none.yaml: ENOENT/);
  });

  it('KNARR_JSON and KNARR_DRY_RUN act like their flags', async () => {
    const r = await knarr(['--state-dir', state, 'pool', 'init', '--name', 'p', '--driver', 'dir'], { env: { KNARR_JSON: '1', KNARR_DRY_RUN: '1' } });
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ dryRun: true, commands: [`mkdir -p ${state}/mnt/p`, `touch ${state}/mnt/p/.knarr-pool`] });
    expect(existsSync(state)).toBe(false);
  });
});
