'use strict';
// Loads dist/bundle's chunks with V8's code cache (code-cache.bin, written by the build): a chunk whose cached code
// matches this Node is deserialized instead of parsed and compiled, which was most of knarr's own start-up.
const { readFileSync, statSync, writeFileSync, renameSync } = require('node:fs');
const { wrap } = require('node:module');
const { Script } = require('node:vm');

const CACHE_FILE = 'code-cache.bin';

/** name -> { size, mtimeMs, data }; empty when there is no cache (or it cannot be read). */
function readCache(dir) {
  const entries = new Map();
  let blob;
  try {
    blob = readFileSync(`${dir}/${CACHE_FILE}`);
  } catch {
    return entries;
  }
  try {
    const headerLength = blob.readUInt32LE(0);
    let at = 4 + headerLength;
    for (const [name, size, mtimeMs, length] of JSON.parse(blob.toString('utf8', 4, at))) {
      entries.set(name, { size, mtimeMs, data: blob.subarray(at, at + length) });
      at += length;
    }
  } catch {
    entries.clear();
  }
  return entries;
}

/** True when the chunk on disk is the one the cache was made from: V8 itself only checks the source's length. */
function unchanged(filename, entry) {
  const st = statSync(filename);
  return st.size === entry.size && st.mtimeMs === entry.mtimeMs;
}

/**
 * A loader for the bundle in dir. Chunks require each other as "./name.cjs" (rolldown's CommonJS output) and
 * otherwise only Node's modules; the bundle has no import() (rolldown.config.mjs), which a vm.Script could not serve.
 */
function bundleLoader(dir) {
  const cache = readCache(dir);
  const modules = new Map();
  const scripts = new Map();
  /** The chunks whose cached code V8 took. */
  const cached = new Set();
  const load = (name) => {
    const known = modules.get(name);
    if (known) return known.exports;
    const filename = `${dir}/${name}`;
    const module = { id: filename, filename, exports: {}, loaded: false };
    modules.set(name, module);
    const entry = cache.get(name);
    const cachedData = entry && unchanged(filename, entry) ? entry.data : undefined;
    const script = new Script(wrap(readFileSync(filename, 'utf8')), { filename, cachedData });
    scripts.set(name, script);
    if (cachedData && !script.cachedDataRejected) cached.add(name);
    const chunkRequire = (id) => (id.startsWith('./') ? load(id.slice(2)) : require(id));
    script.runInThisContext()(module.exports, chunkRequire, module, filename, dir);
    module.loaded = true;
    return module.exports;
  };
  /** Writes the code of every chunk loaded so far, including the functions that have run: the build calls this. */
  const writeCache = () => {
    const names = [...scripts.keys()];
    const datas = names.map((name) => scripts.get(name).createCachedData());
    const header = Buffer.from(
      JSON.stringify(names.map((name, i) => {
        const st = statSync(`${dir}/${name}`);
        return [name, st.size, st.mtimeMs, datas[i].length];
      })),
    );
    const size = Buffer.alloc(4);
    size.writeUInt32LE(header.length);
    const tmp = `${dir}/${CACHE_FILE}.${process.pid}`;
    writeFileSync(tmp, Buffer.concat([size, header, ...datas]));
    renameSync(tmp, `${dir}/${CACHE_FILE}`);
    return { chunks: names.length, bytes: datas.reduce((n, d) => n + d.length, 0) };
  };
  return { load, writeCache, cached };
}

module.exports = { bundleLoader, CACHE_FILE };
