import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConflictError, NotFoundError, ValidationError } from '../../core/errors.js';
import { looksLikeHubHost, validatePath } from '../../core/names.js';
import { HUB_DEFAULT_PORT, hubHostUrl, parseRemoteUrl, validateRemoteName, type RemoteEndpoint, type RemoteUrl } from '../../core/remote.js';
import { setting } from '../../core/settings.js';
import { FileRemote } from '../../host/remote-file.js';
import { SshRemote } from '../../host/remote-ssh.js';
import type { DotRepo, RemoteRecord } from '../../state/dots.js';
import type { CommandResult, Context } from '../types.js';
import { withDots } from './common.js';
import { knarrCommand } from '../../core/shell.js';

/** A remote as a command uses it: what to call it in messages, its URL, and a hub's token and CA files as its record gives them. */
export interface ResolvedRemote {
  name: string;
  url: RemoteUrl;
  /** The remote's name when it is a recorded one; null for a URL or hub host given in its place. */
  recorded: string | null;
  tokenFile: string | null;
  caFile: string | null;
}

/**
 * A remote by name, or a URL given in its place (handy at boot, before any remote is recorded), or a
 * host name with a "." that no remote has (dothub.com: a hub, https on its default port). user is
 * the account of a REMOTE/USER/DOT, which only a hub has.
 */
export async function resolveRemote(repo: DotRepo, field: string, nameOrUrl: string, user: string | null = null): Promise<ResolvedRemote> {
  let resolved: ResolvedRemote;
  if (nameOrUrl.includes('://')) {
    resolved = { name: nameOrUrl, url: parseRemoteUrl(field, nameOrUrl), recorded: null, tokenFile: null, caFile: null };
  } else {
    const record = looksLikeHubHost(nameOrUrl) && !isRemoteName(nameOrUrl) ? null : await repo.getRemote(validateRemoteName(field, nameOrUrl));
    if (record !== null) {
      resolved = {
        name: nameOrUrl,
        url: parseRemoteUrl(field, record.url),
        recorded: nameOrUrl,
        tokenFile: record.tokenFile ?? null,
        caFile: record.caFile ?? null,
      };
    } else if (looksLikeHubHost(nameOrUrl)) {
      resolved = { name: nameOrUrl, url: parseRemoteUrl(field, hubHostUrl(nameOrUrl, null)), recorded: null, tokenFile: null, caFile: null };
    } else {
      throw new NotFoundError(`no remote named ${nameOrUrl}`, { hint: `add it with: ${knarrCommand('dot', 'remote', 'add', nameOrUrl, 'file:///path')}` });
    }
  }
  if (user === null) return resolved;
  if (resolved.url.kind !== 'hub')
    throw new ValidationError(field, `remote ${resolved.name} is a ${resolved.url.kind} remote; REMOTE/USER/DOT names a hub account, write REMOTE/DOT`);
  const url: RemoteUrl = { ...resolved.url, user, url: `${resolved.url.base}/${user}` };
  return { ...resolved, name: `${resolved.name.replace(/\/+$/, '')}/${user}`, url };
}

/** A host name a remote could also be called: looked up first, so a remote named like a host wins. */
function isRemoteName(text: string): boolean {
  try {
    validateRemoteName('remote', text);
    return true;
  } catch {
    return false;
  }
}

/** How an operator gives a hub remote its token, or its CA: the remote's own file, else the settings. */
function hubHints(remote: ResolvedRemote): { tokenHint: string; caHint: string; reachHint?: string } {
  const tokenSetting = setting('dots.hubTokenFile');
  const caSetting = setting('dots.hubCaFile');
  const url = remote.url.url;
  const own = (flag: string) =>
    remote.recorded ? `record it with the remote: ${knarrCommand('dot', 'remote', 'add', remote.recorded, url, flag, 'FILE')}, or set ` : 'set ';
  return {
    tokenHint:
      `${own('--token-file')}${tokenSetting.key} (${tokenSetting.env}) to a file holding a token of the account; ` +
      `the hub's operator makes one with: knarr hub token create USER --write (or --read for private pulls)`,
    caHint: `${own('--ca-file')}${caSetting.key} (${caSetting.env}) to the PEM CA file that signed the hub's certificate`,
    // A mistyped remote name with a "." reads as a hub's host: the hint says so.
    ...(remote.recorded === null && !remote.name.includes('://')
      ? {
          reachHint:
            `no remote is named ${remote.name.split('/')[0]}, so it was taken as a hub's host (https, port ${HUB_DEFAULT_PORT}); ` +
            `see ${knarrCommand('dot', 'remote', 'list')}`,
        }
      : {}),
  };
}

/** The adapter for a remote: a directory of streams, knarr on another host over ssh, or a hub. */
export async function openRemote(ctx: Context, remote: ResolvedRemote | RemoteUrl, opts: { private?: boolean } = {}): Promise<RemoteEndpoint> {
  const r: ResolvedRemote = 'kind' in remote ? { name: remote.url, url: remote, recorded: null, tokenFile: null, caFile: null } : remote;
  const url = r.url;
  if (url.kind === 'hub') {
    // Loaded only for a hub: a boot that seeds from a file or ssh remote does not pay for it.
    const { HubRemote } = await import('../../host/remote-hub.js');
    return new HubRemote(
      {
        base: url.base,
        user: url.user,
        tokenFile: r.tokenFile ?? ctx.config.dots.hubTokenFile,
        caFile: r.caFile ?? ctx.config.dots.hubCaFile,
        ...hubHints(r),
        private: opts.private ?? false,
        warn: (m) => ctx.events.warn(m),
      },
      ctx.runner,
    );
  }
  if (opts.private) throw new ValidationError('--private', `remote ${r.name} is a ${url.kind} remote; only a hub keeps private dots`);
  if (url.kind === 'ssh')
    return new SshRemote({ url: url.url, user: url.user, host: url.host, port: url.port, stateDir: url.path }, ctx.runner, {
      knarr: ctx.config.dots.remoteKnarr,
      sshConfig: ctx.config.dots.sshConfig,
    });
  return new FileRemote(url.path, ctx.runner);
}

/** A file a remote reads later (a token, a CA): absolute, and there now. */
function remoteFile(field: string, text: string | undefined, cwd: string): string | undefined {
  if (text === undefined) return undefined;
  const path = validatePath(field, resolve(cwd, text));
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch {
    throw new ValidationError(field, `${JSON.stringify(path)} does not exist; give the file that holds it`);
  }
  if (!isFile) throw new ValidationError(field, `${JSON.stringify(path)} is not a file`);
  return path;
}

const sameRecord = (a: RemoteRecord, b: RemoteRecord) => a.url === b.url && a.tokenFile === b.tokenFile && a.caFile === b.caFile;

/** `knarr dot remote add NAME URL [--token-file F] [--ca-file F]`. */
export async function remoteAdd(
  remoteName: string,
  remoteUrl: string,
  opts: { tokenFile?: string | undefined; caFile?: string | undefined },
  ctx: Context,
): Promise<CommandResult> {
  const name = validateRemoteName('NAME', remoteName);
  const url = parseRemoteUrl('URL', remoteUrl);
  const tokenFile = remoteFile('--token-file', opts.tokenFile, ctx.cwd);
  const caFile = remoteFile('--ca-file', opts.caFile, ctx.cwd);
  if (url.kind !== 'hub' && (tokenFile !== undefined || caFile !== undefined))
    throw new ValidationError(tokenFile !== undefined ? '--token-file' : '--ca-file', `a ${url.kind} remote takes no token or CA; only a hub (https://) does`);
  if (url.kind === 'hub' && url.base.startsWith('http:') && caFile !== undefined)
    throw new ValidationError('--ca-file', `${url.url} is http; a CA is for https`);
  const record: RemoteRecord = { url: url.url, ...(tokenFile ? { tokenFile } : {}), ...(caFile ? { caFile } : {}) };
  return withDots(ctx, async (repo) => {
    const had = await repo.getRemote(name);
    if (had !== null && had.url !== url.url)
      throw new ConflictError(`remote ${name} already points at ${had.url}`, { hint: `remove it first: knarr dot remote rm ${name}` });
    const action = had === null ? 'added' : sameRecord(had, record) ? 'exists' : 'updated';
    if (action === 'added') ctx.runner.note(`record remote ${name} -> ${url.url} in etcd`);
    if (action === 'updated') ctx.runner.note(`record the token and CA files of remote ${name} in etcd`);
    if (action !== 'exists') await repo.putRemote(name, record);
    const lines = [`remote ${name} -> ${url.url}`, ...(tokenFile ? [`token file ${tokenFile}`] : []), ...(caFile ? [`CA file ${caFile}`] : [])];
    return { data: { name, ...record, action }, view: { kind: 'lines', lines } };
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

/** `knarr dot remote list`: names, URLs and a hub's token and CA files (the files, never a token). */
export const remoteList = (ctx: Context): Promise<CommandResult> =>
  withDots(ctx, async (repo) => {
    const remotes = await repo.listRemotes();
    return {
      data: remotes.map((r) => ({ name: r.name, url: r.url, tokenFile: r.tokenFile ?? null, caFile: r.caFile ?? null })),
      view: {
        kind: 'table',
        columns: ['REMOTE', 'URL', 'TOKEN-FILE', 'CA-FILE'],
        rows: remotes.map((r) => [r.name, r.url, r.tokenFile ?? '-', r.caFile ?? '-']),
      },
    };
  });
