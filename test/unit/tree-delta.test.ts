import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { ConflictError } from '../../src/core/errors.js';
import { Runner } from '../../src/host/runner.js';
import { applyDelta, applyRemovals, deltaTarArgv, readDelta, treeChanges, writeDeltaFiles } from '../../src/host/storage/tree/delta.js';

const tmp = mkdtempSync(`${tmpdir()}/knarr-tree-delta-`);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const runner = () => new Runner({ dryRun: false, verbose: false, env: process.env, log: () => undefined });
let n = 0;
const fresh = () => {
  const d = `${tmp}/${n++}`;
  mkdirSync(d, { recursive: true });
  return d;
};
/** A stream made as lvm's send makes it: the delta member, then the changed files. */
function deltaStream(meta: string, tree: string): Buffer {
  const [cmd, ...args] = deltaTarArgv(meta, tree);
  return execFileSync(cmd!, args, { maxBuffer: 64 * 1024 * 1024 });
}

describe('incremental tree streams', () => {
  it('carry only what changed, and applied to a copy of the base give the new tree', async () => {
    const base = fresh();
    mkdirSync(`${base}/d/sub`, { recursive: true });
    writeFileSync(`${base}/d/big`, Buffer.alloc(1024 * 1024, 7));
    writeFileSync(`${base}/d/small`, 'one');
    writeFileSync(`${base}/gone`, 'x');
    mkdirSync(`${base}/gonedir/deep`, { recursive: true });
    writeFileSync(`${base}/gonedir/deep/f`, 'x');
    writeFileSync(`${base}/becomes-dir`, 'file');
    mkdirSync(`${base}/lost+found`);
    const tree = fresh();
    execFileSync('cp', ['-a', `${base}/.`, tree]);
    writeFileSync(`${tree}/d/small`, 'two, longer');
    rmSync(`${tree}/gone`);
    rmSync(`${tree}/gonedir`, { recursive: true });
    rmSync(`${tree}/becomes-dir`);
    mkdirSync(`${tree}/becomes-dir`);
    writeFileSync(`${tree}/becomes-dir/in`, 'new');
    writeFileSync(`${tree}/d/sub/new`, 'new');

    const changes = await treeChanges(base, tree, ['lost+found']);
    expect(changes.removed.sort()).toEqual(['becomes-dir', 'gone', 'gonedir']);
    expect(changes.changed).toEqual(expect.arrayContaining(['./d/small', './d/sub/new', './becomes-dir', './becomes-dir/in']));
    expect(changes.changed.some((p) => p.includes('big') || p.includes('lost+found'))).toBe(false);
    expect(changes.bytes).toBe('two, longer'.length + 'new'.length * 2);

    const meta = fresh();
    await writeDeltaFiles(meta, 'c0base', changes);
    const stream = deltaStream(meta, tree);
    expect(stream.length).toBeLessThan(64 * 1024);

    const target = fresh();
    execFileSync('cp', ['-a', `${base}/.`, target]);
    await applyDelta(runner(), target, 'c0base', Readable.from([stream]), 'test');
    expect(readFileSync(`${target}/d/small`, 'utf8')).toBe('two, longer');
    expect(readFileSync(`${target}/becomes-dir/in`, 'utf8')).toBe('new');
    expect(readFileSync(`${target}/d/sub/new`, 'utf8')).toBe('new');
    expect(readFileSync(`${target}/d/big`).length).toBe(1024 * 1024);
    for (const p of ['gone', 'gonedir']) expect(existsSync(`${target}/${p}`)).toBe(false);
  });

  it('are refused on another base, cut short, or without their delta member', async () => {
    const tree = fresh();
    writeFileSync(`${tree}/f`, Buffer.alloc(200_000, 1));
    const meta = fresh();
    await writeDeltaFiles(meta, 'c0base', { changed: ['./f'], removed: [], bytes: 200_000 });
    const stream = deltaStream(meta, tree);
    await expect(applyDelta(runner(), fresh(), 'c0other', Readable.from([stream]), 'test')).rejects.toThrow(/applies on top of c0base/);
    await expect(applyDelta(runner(), fresh(), 'c0base', Readable.from([stream.subarray(0, 100_000)]), 'test')).rejects.toThrow();
    await expect(applyDelta(runner(), fresh(), 'c0base', Readable.from([stream.subarray(0, 300)]), 'test')).rejects.toThrow(ConflictError);
    const plain = execFileSync('tar', ['-C', tree, '-cf', '-', '.']);
    await expect(readDelta(Readable.from([plain]), 'test')).rejects.toThrow(/first member is "\.\/"/);
  });

  it('never delete outside the tree', async () => {
    const root = fresh();
    const outside = fresh();
    writeFileSync(`${outside}/keep`, 'x');
    symlinkSync(outside, `${root}/link`);
    for (const bad of ['../x', '/etc/passwd', 'a/../../x', '', 'a//b']) {
      await expect(applyRemovals(runner(), root, [bad], 'test')).rejects.toThrow(ConflictError);
    }
    await applyRemovals(runner(), root, ['link/keep'], 'test');
    expect(existsSync(`${outside}/keep`)).toBe(true);
    await applyRemovals(runner(), root, ['link'], 'test');
    expect(existsSync(`${root}/link`)).toBe(false);
    expect(existsSync(`${outside}/keep`)).toBe(true);
  });
});
