import { defineCommand, defineGroup } from '../define.js';

const hubDirOption = { flags: '--hub <dir>', description: "the hub's directory (default $KNARR_HUB_DIR, else hub.dir in the config file)" } as const;

const tokenCreate = defineCommand(
  {
    name: 'create',
    summary: "make a token for a hub user's dots; printed once, kept hashed",
    args: { user: { description: 'hub user (lower-case letters, digits, _ and -)', required: true } },
    options: {
      read: { flags: '--read', description: "pull the user's private dots (the default)" },
      write: { flags: '--write', description: "push to the user's dots, and pull them" },
      hub: hubDirOption,
    },
    examples: [
      { command: 'knarr hub token create justincormack --write > push.token', description: 'a token to push with' },
      { command: 'knarr --json hub token create justincormack', description: 'a read token as {id, user, access, token}' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./hub.js')).hubTokenCreate(args.user, options, ctx),
);

const tokenList = defineCommand(
  {
    name: 'list',
    summary: "the hub's tokens: id, user, access (never the secrets)",
    options: { hub: hubDirOption },
    examples: [{ command: 'knarr hub token list --hub /srv/hub', description: 'who can push and pull' }],
    dryRun: 'reads',
  },
  async ({ options }, ctx) => (await import('./hub.js')).hubTokenList(options, ctx),
);

const tokenRevoke = defineCommand(
  {
    name: 'revoke',
    summary: 'revoke a token: the hub refuses it at once',
    args: { id: { description: 'token id, as hub token list shows it', required: true } },
    options: { hub: hubDirOption },
    examples: [{ command: 'knarr hub token revoke 3f9a0c1d2b4e5f60', description: 'revoke one token' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./hub.js')).hubTokenRevoke(args.id, options, ctx),
);

const token = defineGroup({
  name: 'token',
  summary: "hub tokens: a user's read or write access",
  subcommands: [tokenCreate, tokenList, tokenRevoke],
});

const list = defineCommand(
  {
    name: 'list',
    summary: 'the dots a hub holds (of one user), with their branches and size',
    args: { user: { description: 'only the dots of this hub user' } },
    options: {
      hub: hubDirOption,
      remote: { flags: '--remote <name-or-url>', description: 'ask a hub over http(s): a dot remote name, or https://HOST:PORT', completes: 'remote' },
      tokenFile: { flags: '--token-file <file>', description: "a hub token, so --remote shows that user's private dots too" },
      caFile: { flags: '--ca-file <file>', description: "a PEM CA to trust for --remote's https" },
    },
    examples: [
      { command: 'knarr hub list --hub /srv/hub', description: 'every dot in a local hub directory' },
      { command: 'knarr hub list justincormack --remote https://hub.example:7946', description: "a user's public dots on a hub" },
    ],
    dryRun: 'reads',
  },
  async ({ args, options }, ctx) => (await import('./hub.js')).hubList(args.user, options, ctx),
);

const gc = defineCommand(
  {
    name: 'gc',
    summary: "remove a hub directory's abandoned uploads and the blobs no manifest names, older than an age",
    description:
      'An upload a push left (cut, never resumed) and a blob no branch of its dot names any more take space until this runs. Only files not ' +
      'written to for --older-than go: a push under way, or one that uploaded its blobs and is about to publish its manifest, keeps its own. Each ' +
      "dot is judged while holding its manifest's lock. " +
      'Under --dry-run it lists what would go and removes nothing.',
    options: { olderThan: { flags: '--older-than <age>', description: 'how old what goes is: 90s, 30m, 12h, 7d, 2w (default 24h)' }, hub: hubDirOption },
    examples: [
      { command: 'knarr --dry-run hub gc --hub /srv/hub', description: 'list what a gc would remove' },
      { command: 'knarr hub gc --older-than 7d', description: 'remove what was last written more than a week ago' },
    ],
    dryRun: 'plans',
  },
  async ({ options }, ctx) => (await import('./hub.js')).hubGc(options, ctx),
);

export const hub = defineGroup({
  name: 'hub',
  summary: "a dots hub's tokens and dots (knarr daemon --hub DIR serves it)",
  description:
    'A hub is a directory of dots that knarr daemon --hub DIR serves on its API under /hub/v1/ (https with --tls-cert): content-addressed ' +
    "streams and a manifest per dot. Pushing needs a write token of the dot's user; pulling a public dot needs none, a private one a read token. " +
    'Tokens are kept as sha256 only in DIR/tokens.json; a revoke takes effect at once.',
  subcommands: [token, list, gc],
});
