import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { resolve as resolvePath } from 'node:path';
import { ConflictError, FailureError, NotFoundError, PrerequisiteError, ValidationError } from '../../core/errors.js';
import { validateHubUser, validateTokenId, type HubAccess, type HubDotSummary, summarizeDot } from '../../core/hub.js';
import { validateRemoteName } from '../../core/remote.js';
import { HubStore } from '../../host/hub-store.js';
import { parseAge } from '../../core/ops.js';
import { withDots } from '../dot/common.js';
import { timeCell, type CommandResult, type Context } from '../types.js';

interface HubDirOption {
  hub?: string;
}

/** The hub directory: --hub, else KNARR_HUB_DIR or hub.dir in the config file. */
function hubDir(options: HubDirOption, ctx: Context): string {
  if (options.hub !== undefined) {
    if (options.hub === '' || /[\0\n]/.test(options.hub)) throw new ValidationError('--hub', 'give the hub directory, a path');
    return resolvePath(ctx.cwd, options.hub);
  }
  if (ctx.config.hub.dir !== null) return ctx.config.hub.dir;
  throw new ValidationError('--hub', 'name the hub directory with --hub DIR, KNARR_HUB_DIR, or hub: {dir: DIR} in the config file');
}

const tokenRow = (t: { id: string; user: string; access: string; createdAt: string }) => [t.id, t.user, t.access, timeCell(t.createdAt)];

/** `knarr hub token create USER [--read|--write]`: the token is shown here once; the hub keeps its sha256. */
export async function hubTokenCreate(userArg: string, options: HubDirOption & { read?: boolean; write?: boolean }, ctx: Context): Promise<CommandResult> {
  const user = validateHubUser('USER', userArg);
  if (options.read && options.write) throw new ValidationError('--write', 'give --read or --write, not both');
  const access: HubAccess = options.write ? 'write' : 'read';
  const dir = hubDir(options, ctx);
  if (ctx.runner.dryRun) {
    ctx.runner.note(`add a ${access} token of ${user} to ${dir}/tokens.json (kept as its sha256)`);
    return { data: { id: null, user, access, token: null }, view: { kind: 'lines', lines: [`would make a ${access} token of ${user} in ${dir}`] } };
  }
  const { record, token } = await new HubStore(dir).createToken(user, access);
  return {
    data: { id: record.id, user, access, token },
    // The token alone on stdout, so `> file` keeps just it; the rest goes to stderr.
    view: { kind: 'lines', lines: [token] },
  };
}

/** `knarr hub token list`. */
export async function hubTokenList(options: HubDirOption, ctx: Context): Promise<CommandResult> {
  const tokens = (await new HubStore(hubDir(options, ctx)).listTokens()).map(({ id, user, access, createdAt }) => ({ id, user, access, createdAt }));
  return { data: tokens, view: { kind: 'table', columns: ['ID', 'USER', 'ACCESS', 'CREATED'], rows: tokens.map(tokenRow) } };
}

/** `knarr hub token revoke ID`: gone from tokens.json, which the serving agent reads again at its next request. */
export async function hubTokenRevoke(idArg: string, options: HubDirOption, ctx: Context): Promise<CommandResult> {
  const id = validateTokenId('ID', idArg);
  const store = new HubStore(hubDir(options, ctx));
  const had = (await store.listTokens()).find((t) => t.id === id);
  if (!had) throw new NotFoundError(`the hub has no token ${id}`, { hint: 'see the ids with: knarr hub token list' });
  if (ctx.runner.dryRun) {
    ctx.runner.note(`remove token ${id} (${had.user}, ${had.access}) from ${store.dir}/tokens.json`);
    return { data: { id, user: had.user, access: had.access, revoked: false }, view: { kind: 'lines', lines: [`would revoke token ${id} of ${had.user}`] } };
  }
  const gone = await store.revokeToken(id);
  if (!gone) throw new NotFoundError(`the hub has no token ${id}`);
  return { data: { id, user: gone.user, access: gone.access, revoked: true }, view: { kind: 'lines', lines: [`token ${id} of ${gone.user} revoked`] } };
}

/** A dot remote's record: a URL, or (from knarr that keeps a token and CA with it) JSON {url, tokenFile?, caFile?}. */
function remoteRecord(text: string): { url: string; tokenFile?: string; caFile?: string } {
  if (text.startsWith('{')) {
    try {
      return JSON.parse(text) as { url: string; tokenFile?: string; caFile?: string };
    } catch {
      /* a plain URL after all */
    }
  }
  return { url: text };
}

/** A hub's base URL (scheme, host and port) from an http(s) URL. */
function hubBase(field: string, text: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new ValidationError(field, `${JSON.stringify(text)} is not a URL; give https://HOST:PORT or a dot remote name`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    throw new ValidationError(field, `${JSON.stringify(text)} is not a hub: a hub URL is https://HOST:PORT`);
  return new URL(u.origin);
}

async function readSmall(field: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    throw new ValidationError(field, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** GET /hub/v1/dots of a hub over http(s). */
async function remoteDots(base: URL, user: string | undefined, token: string | null, ca: Buffer | undefined): Promise<HubDotSummary[]> {
  const url = new URL(`/hub/v1/dots${user ? `?user=${encodeURIComponent(user)}` : ''}`, base);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { method: 'GET', headers: token ? { authorization: `Bearer ${token}` } : {}, timeout: 30_000, ...(ca ? { ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          return reject(new FailureError(`the hub at ${base.origin} answered ${res.statusCode} with no JSON (is it a knarr hub?)`));
        }
        const error = (body as { error?: string }).error;
        if (res.statusCode === 401 || res.statusCode === 403)
          return reject(
            new PrerequisiteError(`the hub at ${base.origin} refused (${res.statusCode}): ${error}`, { hint: 'give a valid token with --token-file' }),
          );
        if (res.statusCode === 404) return reject(new NotFoundError(`${base.origin} serves no hub (404: ${error}); is its agent started with --hub?`));
        if (res.statusCode !== 200 || !Array.isArray(body))
          return reject(new FailureError(`the hub at ${base.origin} answered ${res.statusCode}: ${error ?? text}`));
        resolve(body as HubDotSummary[]);
      });
    });
    req.on('timeout', () => req.destroy(new FailureError(`the hub at ${base.origin} did not answer within 30s`)));
    req.on('error', (e: Error) => reject(e instanceof FailureError ? e : new FailureError(`cannot reach the hub at ${base.origin}: ${e.message}`)));
    req.end();
  });
}

/** `knarr hub list [USER] [--remote NAME|URL]`: a local hub directory's dots, or a hub's over http(s) (its public dots, and the token's user's). */
export async function hubList(
  userArg: string | undefined,
  options: HubDirOption & { remote?: string; tokenFile?: string; caFile?: string },
  ctx: Context,
): Promise<CommandResult> {
  const user = userArg === undefined ? undefined : validateHubUser('USER', userArg);
  let dots: HubDotSummary[];
  if (options.remote !== undefined) {
    if (options.hub !== undefined) throw new ValidationError('--hub', 'give --hub (a local directory) or --remote (a hub over http), not both');
    let record: { url: string; tokenFile?: string; caFile?: string };
    if (options.remote.includes('://')) record = { url: options.remote };
    else {
      const name = validateRemoteName('--remote', options.remote);
      const text = await withDots(ctx, (repo) => repo.getRemote(name));
      if (text === null) throw new NotFoundError(`no dot remote named ${name}`, { hint: 'add it with: knarr dot remote add NAME https://HOST:PORT' });
      record = remoteRecord(typeof text === 'string' ? text : JSON.stringify(text));
    }
    const base = hubBase('--remote', record.url);
    const tokenFile = options.tokenFile ?? record.tokenFile;
    const caFile = options.caFile ?? record.caFile;
    const token = tokenFile ? (await readSmall('--token-file', tokenFile)).toString('utf8').trim() : null;
    const ca = caFile ? await readSmall('--ca-file', caFile) : undefined;
    dots = await remoteDots(base, user, token, ca);
  } else {
    if (options.tokenFile !== undefined || options.caFile !== undefined)
      throw new ValidationError(options.tokenFile !== undefined ? '--token-file' : '--ca-file', 'goes with --remote (a hub over http)');
    const store = new HubStore(hubDir(options, ctx));
    dots = (await store.listDots(user)).map((d) => summarizeDot(d.user, d.manifest, d.private));
  }
  if (dots.some((d) => typeof d?.user !== 'string' || typeof d.dot !== 'string')) throw new ConflictError('the hub answered a listing knarr cannot read');
  return {
    data: dots,
    view: {
      kind: 'table',
      columns: ['USER', 'DOT', 'FORMAT', 'BRANCHES', 'PRIVATE', 'BYTES', 'UPDATED'],
      rows: dots.map((d) => [
        d.user,
        d.dot,
        d.format,
        Object.keys(d.branches ?? {}).join(',') || '-',
        d.private ? 'yes' : 'no',
        String(d.bytes),
        timeCell(d.updatedAt),
      ]),
    },
  };
}

/** How old an upload or an unnamed blob is before `hub gc` removes it, unless --older-than says. */
const HUB_GC_AGE = '24h';

/** `knarr hub gc [--older-than AGE]`: abandoned uploads and blobs no manifest names, older than AGE, removed. */
export async function hubGc(options: HubDirOption & { olderThan?: string }, ctx: Context): Promise<CommandResult> {
  const age = parseAge('--older-than', options.olderThan ?? HUB_GC_AGE);
  const store = new HubStore(hubDir(options, ctx));
  const dryRun = ctx.runner.dryRun;
  const gone = await store.collect(Date.now() - age, dryRun);
  const bytes = gone.reduce((n, g) => n + g.bytes, 0);
  if (dryRun) for (const g of gone) ctx.runner.note(`remove ${g.kind} ${g.user}/${g.dot} ${g.name} (${g.bytes} bytes)`);
  const verb = dryRun ? 'would remove' : 'removed';
  return {
    data: { removed: gone, bytes, dryRun },
    view: {
      kind: 'lines',
      lines: [
        ...gone.map((g) => `${verb} ${g.kind} ${g.user}/${g.dot} ${g.name.slice(0, 16)} (${g.bytes} bytes, last written ${timeCell(g.modifiedAt)})`),
        gone.length === 0 ? 'nothing to remove' : `${verb} ${gone.length} file(s), ${bytes} bytes`,
      ],
    },
  };
}
