import { defineCommand, defineGroup } from '../define.js';

const hostArg = { host: { description: 'host name', required: true } } as const;

const list = defineCommand(
  {
    name: 'list',
    summary: 'hosts with up/down, state, tags and load',
    examples: [{ command: 'knarr host list', description: 'the fleet' }],
    dryRun: 'reads',
  },
  async (_input, ctx) => (await import('./host.js')).hostList(ctx),
);

const show = defineCommand(
  {
    name: 'show',
    summary: 'one host',
    args: hostArg,
    examples: [{ command: 'knarr --json host show h1', description: 'h1 as JSON' }],
    dryRun: 'reads',
  },
  async ({ args }, ctx) => (await import('../events/recent.js')).withRecentEvents(ctx, 'host', args.host, (await import('./host.js')).hostShow(args.host, ctx)),
);

const drain = defineCommand(
  {
    name: 'drain',
    summary: 'take no new jobs on a host (--undo to serve again)',
    args: hostArg,
    options: { undo: { flags: '--undo', description: 'serve jobs again' } },
    examples: [{ command: 'knarr host drain h1', description: 'drain h1' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./host.js')).hostDrain(args.host, options, ctx),
);

const tag = defineCommand(
  {
    name: 'tag',
    summary: 'add (or --remove) tags of a host',
    args: { ...hostArg, tag: { description: 'tags', variadic: true } },
    options: { remove: { flags: '--remove', description: 'remove the tags instead' } },
    examples: [{ command: 'knarr host tag h1 ssd zone=eu', description: 'tag h1' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./host.js')).hostTag(args.host, args.tag, options, ctx),
);

const leave = defineCommand(
  {
    name: 'leave',
    summary: 'forget a host (its agent must be stopped, or --force)',
    args: hostArg,
    options: { force: { flags: '--force', description: 'also when its agent still runs' } },
    examples: [{ command: 'knarr host leave h9', description: 'forget h9' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./host.js')).hostLeave(args.host, options, ctx),
);

export const host = defineGroup({
  name: 'host',
  summary: 'hosts of the fleet: up while their agent holds its lease',
  description:
    'Each host is registered by its agent (knarr daemon) under an etcd lease: a host whose lease lapses is down. States: ok, draining (takes no ' +
    'new jobs), and gone after leave.',
  subcommands: [list, show, drain, tag, leave],
});
