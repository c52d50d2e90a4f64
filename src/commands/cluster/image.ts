import { createReadStream } from 'node:fs';
import { chmod, lstat, open, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { validateClusterName, validateNodeIndex } from '../../core/cluster.js';
import { ConflictError, NotFoundError, PrerequisiteError, ValidationError } from '../../core/errors.js';
import { validateName } from '../../core/names.js';
import { metered } from '../../core/streams.js';
import { pathExists } from '../../host/mounts.js';
import { findExecutable } from '../../host/which.js';
import { thisHost } from '../../daemon/pidfile.js';
import { timeCell, type CommandResult, type Context } from '../types.js';
import { withStore } from '../with-store.js';
import { ClusterRepo } from '../../state/clusters.js';
import { runOperation } from '../op.js';
import { clusterPool, imageVolume, requireCluster, userOf } from './common.js';

/** PID 1 of every node: waits, and exits at once on lxc-stop's signal (a plain sleep would make lxc-stop wait). */
const KNARR_INIT = `#!/bin/sh
trap 'kill $! 2>/dev/null; exit 0' TERM PWR INT USR1
[ -x /etc/knarr-rc ] && /etc/knarr-rc
while :; do sleep 2147483647 & wait $!; done
`;

/** A busybox rootfs from the host's busybox-static binary: no download. */
async function buildBusybox(ctx: Context, root: string): Promise<void> {
  const busybox = findExecutable('busybox', ctx.env.PATH);
  if (!busybox) throw new PrerequisiteError('busybox is not installed', { hint: 'apt-get install busybox-static' });
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'root', 'tmp', 'nfs', 'dev', 'proc', 'sys', 'run', 'var/log'])
    await mkdir(`${root}/${d}`, { recursive: true });
  await ctx.runner.run(['cp', busybox, `${root}/bin/busybox`]);
  await ctx.runner.run(['chroot', root, '/bin/busybox', '--install', '-s']);
  await writeFile(`${root}/etc/passwd`, 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(`${root}/etc/group`, 'root:x:0:\n');
  await chmod(`${root}/tmp`, 0o1777);
}

/** tar guesses compression from a file but not from a pipe: the flag its magic bytes call for. */
async function decompressFlag(file: string): Promise<string[]> {
  const fh = await open(file, 'r');
  const head = Buffer.alloc(6);
  try {
    await fh.read(head, 0, 6, 0);
  } finally {
    await fh.close();
  }
  const magic: [string, string][] = [
    ['1f8b', '-z'],
    ['425a68', '-j'],
    ['fd377a585a00', '-J'],
    ['28b52ffd', '--zstd'],
  ];
  const hex = head.toString('hex');
  return magic.filter(([m]) => hex.startsWith(m)).map(([, flag]) => flag);
}

/** Unpacks a rootfs tar file, read through knarr so a terminal shows its bytes, rate and ETA. */
async function importTar(ctx: Context, file: string, into: string): Promise<void> {
  const meter = ctx.events.progress(`import ${file}`, (await stat(file)).size);
  try {
    await ctx.runner.pipe(['tar', ...(await decompressFlag(file)), '-xf', '-', '-C', into, '--numeric-owner'], {
      stdin: metered(createReadStream(file), meter.add),
      redirect: `< ${file}`,
    });
  } finally {
    meter.end();
  }
}

/** root/rel after checking that no part of rel is a symlink: an imported rootfs must not make knarr write outside it. */
async function inside(root: string, rel: string): Promise<string> {
  let path = root;
  for (const part of rel.split('/')) {
    path = `${path}/${part}`;
    const st = await lstat(path).catch(() => null);
    if (st?.isSymbolicLink())
      throw new ValidationError('ROOTFS', `/${rel} in the image goes through a symlink (${path.slice(root.length)}); knarr will not write through it`);
    if (!st) break;
  }
  return `${root}/${rel}`;
}

/** `knarr image import NAME ROOTFS.tar|DIR | --busybox [--pool P]`: a base image for cluster nodes. */
export async function imageImport(
  nameArg: string,
  source: string | undefined,
  opts: { busybox: boolean; pool?: string },
  ctx: Context,
): Promise<CommandResult> {
  const name = validateName('NAME', nameArg, 64);
  const busybox = opts.busybox;
  if ((source === undefined) === !busybox)
    throw new ValidationError('ROOTFS', busybox ? 'give a rootfs or --busybox, not both' : 'give a rootfs (a .tar file or a directory), or --busybox');
  const src = source === undefined ? null : resolve(ctx.cwd, source);
  const kind =
    src === null
      ? 'busybox'
      : await stat(src).then(
          (s) => (s.isDirectory() ? 'dir' : 'tar'),
          () => null,
        );
  if (kind === null) throw new NotFoundError(`${src} does not exist`, { hint: 'give a rootfs tar file or directory' });
  const pool = await clusterPool(ctx, opts.pool);
  return withStore(ctx, async (store) => {
    const repo = new ClusterRepo(store, ctx.config.fleet);
    const host = await thisHost(ctx.config.stateDir);
    if (await repo.image(host, name)) throw new ConflictError(`image ${name} already exists on ${host}`, { hint: `remove it first: knarr image rm ${name}` });
    const vol = await ctx.drivers[pool.driver].ensureVolume(pool, imageVolume(name), ctx.runner);
    const rootfs = `${vol.path}/rootfs`;
    if (ctx.runner.plan(['import', src ?? 'busybox', rootfs])) return { data: { name, rootfs, planned: true } };
    // Built aside and renamed when whole: an interrupted import leaves no half image.
    const partial = `${vol.path}/rootfs.partial`;
    await rm(partial, { recursive: true, force: true });
    await rm(rootfs, { recursive: true, force: true });
    await mkdir(partial, { recursive: true });
    if (kind === 'busybox') await buildBusybox(ctx, partial);
    else if (kind === 'dir') await ctx.runner.run(['cp', '-a', `${src}/.`, partial]);
    else await importTar(ctx, src!, partial);
    if (!(await pathExists(`${partial}/bin/sh`)))
      throw new ValidationError('ROOTFS', `${src ?? 'the image'} has no /bin/sh; nodes need a shell (a busybox rootfs has one)`);
    await mkdir(await inside(partial, 'sbin'), { recursive: true });
    await writeFile(await inside(partial, 'sbin/knarr-init'), KNARR_INIT, { mode: 0o755 });
    await mkdir(await inside(partial, 'nfs'), { recursive: true });
    await mkdir(await inside(partial, 'root/.ssh'), { recursive: true });
    await mkdir(await inside(partial, 'etc'), { recursive: true });
    const hosts = await inside(partial, 'etc/hosts');
    if (!(await pathExists(hosts))) await writeFile(hosts, '127.0.0.1 localhost\n');
    await rename(partial, rootfs);
    const record = { name, host, pool: pool.name, rootfs, source: src ?? 'busybox', createdAt: new Date().toISOString() };
    await repo.putImage(record);
    return { data: record, view: { kind: 'lines', lines: [`image ${name} imported on ${host} (${rootfs})`] } };
  });
}

/** `knarr image list`: this host's base images. */
export const imageList = async (ctx: Context): Promise<CommandResult> =>
  withStore(ctx, async (store) => {
    const images = (await new ClusterRepo(store, ctx.config.fleet).images(await thisHost(ctx.config.stateDir))).sort((a, b) => a.name.localeCompare(b.name));
    return {
      data: images,
      view: {
        kind: 'table',
        columns: ['IMAGE', 'POOL', 'SOURCE', 'CREATED', 'HOST', 'ROOTFS'],
        wide: ['HOST', 'ROOTFS'],
        rows: images.map((i) => [i.name, i.pool, i.source, timeCell(i.createdAt), i.host, i.rootfs]),
      },
    };
  });

/** `knarr image rm NAME`: refused while a cluster uses it. */
export const imageRm = async (nameArg: string, ctx: Context): Promise<CommandResult> =>
  withStore(ctx, async (store) => {
    const name = validateName('NAME', nameArg, 64);
    const repo = new ClusterRepo(store, ctx.config.fleet);
    const host = await thisHost(ctx.config.stateDir);
    const image = await repo.image(host, name);
    if (!image) throw new NotFoundError(`no image ${name} on ${host}`, { hint: 'list them with: knarr image list' });
    const users = (await repo.list()).filter((c) => c.image === name && c.host === host);
    if (users.length > 0)
      throw new ConflictError(`image ${name} is the base of ${users.map((c) => `${c.user}/${c.name}`).join(', ')}`, { hint: 'delete those clusters first' });
    const pool = await clusterPool(ctx, image.pool);
    await ctx.drivers[pool.driver].removeVolume(pool, imageVolume(name), ctx.runner);
    if (ctx.runner.dryRun) {
      ctx.runner.note(`remove image ${name}'s record on ${host} from etcd`);
      return { data: { name, removed: false, planned: true } };
    }
    await repo.removeImage(host, name);
    return { data: { name, removed: true }, view: { kind: 'lines', lines: [`image ${name} removed`] } };
  });

/** `knarr image save CLUSTER NODE NAME`: a node's changes over its base, as a new image. */
export async function imageSave(
  clusterArg: string,
  nodeArg: string,
  nameArg: string,
  opts: { user?: string; detach: boolean },
  ctx: Context,
): Promise<CommandResult> {
  const name = validateClusterName('CLUSTER', clusterArg);
  const node = validateNodeIndex('NODE', nodeArg);
  const image = validateName('NAME', nameArg, 64);
  const user = userOf(ctx, opts.user);
  return withStore(ctx, async (store) => {
    const repo = new ClusterRepo(store, ctx.config.fleet);
    const c = await requireCluster(repo, user, name);
    const at = c.nodes.find((n) => n.index === node);
    if (!at) throw new NotFoundError(`cluster ${name} has no node ${node}`);
    // The image is made where the node's volume is: on the node's host, as an image of that host.
    if (await repo.image(at.host, image)) throw new ConflictError(`image ${image} already exists on ${at.host}`);
    return runOperation(ctx, store, 'image.save', { user, name, node, image, host: at.host }, at.host, { detach: opts.detach });
  });
}
