import { ConflictError, NotFoundError } from '../../core/errors.js';
import { parseRemoteUrl, validateRemoteName, type RemoteEndpoint, type RemoteUrl } from '../../core/remote.js';
import { FileRemote } from '../../host/remote-file.js';
import { SshRemote } from '../../host/remote-ssh.js';
import type { DotRepo } from '../../state/dots.js';
import type { CommandResult, Context } from '../types.js';
import { withDots } from './common.js';
import { knarrCommand } from '../../core/shell.js';

/** A remote by name, or a URL given in its place (handy at boot, before any remote is recorded). */
export async function resolveRemote(repo: DotRepo, field: string, nameOrUrl: string): Promise<{ name: string; url: RemoteUrl }> {
  if (nameOrUrl.includes('://')) return { name: nameOrUrl, url: parseRemoteUrl(field, nameOrUrl) };
  validateRemoteName(field, nameOrUrl);
  const url = await repo.getRemote(nameOrUrl);
  if (url === null)
    throw new NotFoundError(`no remote named ${nameOrUrl}`, { hint: `add it with: ${knarrCommand('dot', 'remote', 'add', nameOrUrl, 'file:///path')}` });
  return { name: nameOrUrl, url: parseRemoteUrl(field, url) };
}

/** The adapter for a remote URL: a directory of streams, or knarr on another host over ssh. */
export function openRemote(ctx: Context, url: RemoteUrl): RemoteEndpoint {
  if (url.kind === 'ssh')
    return new SshRemote({ url: url.url, user: url.user, host: url.host, port: url.port, stateDir: url.path }, ctx.runner, {
      knarr: ctx.config.dots.remoteKnarr,
      sshConfig: ctx.config.dots.sshConfig,
    });
  return new FileRemote(url.path, ctx.runner);
}

/** `knarr dot remote add NAME URL`. */
export async function remoteAdd(remoteName: string, remoteUrl: string, ctx: Context): Promise<CommandResult> {
  const name = validateRemoteName('NAME', remoteName);
  const url = parseRemoteUrl('URL', remoteUrl);
  return withDots(ctx, async (repo) => {
    const had = await repo.getRemote(name);
    if (had !== null && had !== url.url)
      throw new ConflictError(`remote ${name} already points at ${had}`, { hint: `remove it first: knarr dot remote rm ${name}` });
    if (had === null) ctx.runner.note(`record remote ${name} -> ${url.url} in etcd`);
    await repo.putRemote(name, url.url);
    return { data: { name, url: url.url, action: had === null ? 'added' : 'exists' }, view: { kind: 'lines', lines: [`remote ${name} -> ${url.url}`] } };
  });
}

/** `knarr dot remote rm NAME`. */
export async function remoteRm(remoteName: string, ctx: Context): Promise<CommandResult> {
  const name = validateRemoteName('NAME', remoteName);
  return withDots(ctx, async (repo) => {
    if ((await repo.getRemote(name)) === null) throw new NotFoundError(`no remote named ${name}`);
    ctx.runner.note(`remove remote ${name} from etcd`);
    await repo.deleteRemote(name);
    return { data: { name, removed: true }, view: { kind: 'lines', lines: [`remote ${name} removed`] } };
  });
}

/** `knarr dot remote list`. */
export const remoteList = (ctx: Context): Promise<CommandResult> =>
  withDots(ctx, async (repo) => {
    const remotes = await repo.listRemotes();
    return { data: remotes, view: { kind: 'table', columns: ['REMOTE', 'URL'], rows: remotes.map((r) => [r.name, r.url]) } };
  });
