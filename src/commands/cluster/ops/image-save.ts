import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { ConflictError, NotFoundError } from '../../../core/errors.js';
import { OpArgs } from '../../../core/op-args.js';
import type { OpRecord } from '../../../core/ops.js';
import { mountAt, treeBytes } from '../../../host/mounts.js';
import type { OpHandler, OpRun } from '../../../ops/runner.js';
import { imageVolume } from '../common.js';
import { requireCluster, setting, type ClusterRef } from './shared.js';

/** What `knarr image save` wrote into the operation: the cluster's node to save, the new image's name, and the cluster's host. */
export interface ImageSaveArgs extends ClusterRef {
  node: number;
  image: string;
  host?: string;
}

export function imageSaveArgs(op: OpRecord): ImageSaveArgs {
  const a = new OpArgs(op);
  return {
    user: a.string('user'),
    name: a.string('name'),
    pool: a.optionalString('pool'),
    node: a.integer('node'),
    image: a.string('image'),
    host: a.optionalString('host'),
  };
}

/** cp -a from into to, with bytes, rate and ETA on a TTY: the copy is measured as it grows. */
async function copyShowingProgress(r: OpRun, from: string, to: string, label: string): Promise<void> {
  const meter = r.ctx.events.progress(label, await treeBytes(from));
  let seen = 0;
  let measuring = false;
  const timer = setInterval(() => {
    if (measuring) return;
    measuring = true;
    void treeBytes(to)
      .then((n) => {
        if (n > seen) meter.add(n - seen);
        seen = Math.max(seen, n);
      })
      .finally(() => (measuring = false));
  }, 1000);
  try {
    await r.ctx.runner.run(['cp', '-a', `${from}/.`, to]);
  } finally {
    clearInterval(timer);
    meter.end();
  }
}

const saveSetting = (r: OpRun) => setting(r, imageSaveArgs(r.op));

export const imageSave: OpHandler = {
  async run(r) {
    const s = await saveSetting(r);
    const c = await requireCluster(s);
    const node = c.nodes.find((n) => n.index === s.args.node);
    if (!node) throw new NotFoundError(`cluster ${c.name} has no node ${s.args.node}`);
    const base = await s.repo.image(r.op.host, c.image);
    if (!base) throw new NotFoundError(`image ${c.image} is gone from ${r.op.host}`);
    const name = s.args.image;
    const source = `${c.user}/${c.name}/${node.hostname}`;
    const saved = await s.repo.image(r.op.host, name);
    // A run cut short after its record was written: done already.
    if (r.op.attempts > 1 && saved?.source === source) return { image: name, from: `${c.name}/${node.hostname}` };
    if (saved) throw new ConflictError(`image ${name} already exists on ${r.op.host}`);
    const vol = await s.driver.ensureVolume(s.pool, imageVolume(name), r.ctx.runner);
    // A run cut short after its rename: only the record is missing.
    if (
      r.op.attempts > 1 &&
      (await readdir(`${vol.path}/rootfs`).then(
        () => true,
        () => false,
      ))
    ) {
      await s.repo.putImage({ name, host: r.op.host, pool: s.pool.name, rootfs: `${vol.path}/rootfs`, source, createdAt: new Date().toISOString() });
      return { image: name, from: `${c.name}/${node.hostname}` };
    }
    const layer = (await s.driver.ensureVolume(s.pool, node.volume, r.ctx.runner)).path;
    const view = `${vol.path}/view`;
    const partial = `${vol.path}/rootfs.partial`;
    await rm(partial, { recursive: true, force: true });
    await mkdir(view, { recursive: true });
    await mkdir(partial, { recursive: true });
    // A run cut short while copying left the view mounted.
    if (await mountAt(view)) await r.ctx.runner.run(['umount', view]);
    // Both layers read-only, the node's on top: overlayfs applies its deletions (whiteouts) to the base.
    await r.ctx.runner.run(['mount', '-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${layer}/delta:${base.rootfs}`, view]);
    try {
      await r.progress(0, 1, `copying ${node.hostname}'s filesystem`);
      await copyShowingProgress(r, view, partial, `image save ${name}: copying ${node.hostname}'s filesystem`);
    } finally {
      await r.ctx.runner.run(['umount', view]);
    }
    await rm(view, { recursive: true, force: true });
    await rename(partial, `${vol.path}/rootfs`);
    await s.repo.putImage({
      name,
      host: r.op.host,
      pool: s.pool.name,
      rootfs: `${vol.path}/rootfs`,
      source: `${c.user}/${c.name}/${node.hostname}`,
      createdAt: new Date().toISOString(),
    });
    return { image: name, from: `${c.name}/${node.hostname}` };
  },
  async undo(r) {
    const s = await saveSetting(r);
    const name = s.args.image;
    if (!name || (await s.repo.image(s.args.host ?? '', name))) return;
    await s.driver.removeVolume(s.pool, imageVolume(name), r.ctx.runner);
  },
};
