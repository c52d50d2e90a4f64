import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { treeBytes } from '../../src/host/mounts.js';

describe('treeBytes (what image save measures its copy by)', () => {
  const dir = mkdtempSync(`${tmpdir()}/knarr-tree-bytes-`);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('adds the regular files of every folder, follows no link, and takes a missing path as 0', async () => {
    mkdirSync(`${dir}/a/b`, { recursive: true });
    writeFileSync(`${dir}/top`, 'x'.repeat(10));
    writeFileSync(`${dir}/a/b/deep`, 'y'.repeat(1000));
    symlinkSync('/etc/passwd', `${dir}/a/link`);
    expect(await treeBytes(dir)).toBe(1010);
    expect(await treeBytes(`${dir}/gone`)).toBe(0);
  });
});
