import { readdirSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir, type TempDir } from '../harness/tmp.js';

const root = new URL('../..', import.meta.url).pathname;

let tmp: TempDir;
beforeEach(async () => {
  tmp = await tempDir();
});
afterEach(() => tmp.cleanup());

describe("the agent's store client (etcd3, gRPC)", () => {
  it('is in a chunk of its own, loaded by no command on the start-up path', async () => {
    const bundle = `${root}/dist/bundle`;
    const chunks = readdirSync(bundle).filter((f) => f.endsWith('.cjs'));
    const withEtcd3 = chunks.filter((f) => /require\(["']etcd3["']\)/.test(readFileSync(`${bundle}/${f}`, 'utf8')));
    expect(withEtcd3).toHaveLength(1);
    expect(withEtcd3[0]).toMatch(/^etcd3-store-/);
    const script = `
      const { bundleLoader } = require(${JSON.stringify(`${root}/bin/knarr`)});
      const loader = bundleLoader(${JSON.stringify(bundle)});
      loader.load('knarr.cjs')
        .main(['--state-dir', ${JSON.stringify(`${tmp.path}/state`)}, '--json', 'pool', 'list'],
          { stdout: process.stdout, stderr: process.stderr, env: {}, cwd: '/' })
        .then((code) => console.error(JSON.stringify({ code, loaded: Object.keys(require.cache) })));`;
    const r = await execa(process.execPath, ['-e', script], { reject: false });
    const { code, loaded } = JSON.parse(r.stderr) as { code: number; loaded: string[] };
    expect(code).toBe(0);
    expect(loaded.filter((f) => /node_modules\/(etcd3|@grpc|cockatiel|protobufjs)\//.test(f))).toEqual([]);
  });
});
