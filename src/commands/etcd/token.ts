import { NotFoundError } from '../../core/errors.js';
import { formatJoinToken } from '../../core/etcd-cluster.js';
import type { CommandResult, Context } from '../types.js';
import { readToken } from './cluster.js';
import { refuseExternal } from './local.js';

/** `knarr etcd token`: the join token another host gives to `knarr etcd join`. */
export async function etcdToken(ctx: Context): Promise<CommandResult> {
  refuseExternal(ctx, 'token');
  const token = await readToken(ctx);
  if (!token) {
    throw new NotFoundError('this host has no join token: its etcd is not a TLS cluster member', {
      hint: 'start the first member with: knarr etcd up --advertise IP',
    });
  }
  const text = formatJoinToken(token);
  return { data: { token: text, caHash: `sha256:${token.caHash}` }, view: { kind: 'lines', lines: [text] } };
}
