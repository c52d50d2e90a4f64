import { defineCommand, defineGroup } from '../define.js';
import { detachOption } from '../options.js';

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

const evacuate = defineCommand(
  {
    name: 'evacuate',
    summary: "move a host's jobs and migrate its cluster nodes to other hosts; it takes no new work",
    description:
      'A durable operation run by the agent of HOST. Each job that may move is placed by the scheduler on another host (its agent starts it, ' +
      "then HOST's agent removes its copy); fixed jobs, jobs pinned to HOST and jobs run with no agent stay and are listed. Each cluster node " +
      'is migrated (cluster.migrate, cold). Refused before anything changes when another host cannot take something; run it again to go on after a failure.',
    args: hostArg,
    options: { detach: detachOption },
    examples: [
      { command: 'knarr host evacuate h1', description: 'empty h1 for maintenance' },
      { command: 'knarr --dry-run host evacuate h1', description: 'where each job and node would go' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./evacuate.js')).hostEvacuate(args.host, options, ctx),
);

const restore = defineCommand(
  {
    name: 'restore',
    summary: 'let an evacuated (or drained) host take new work again; nothing moves back by itself',
    args: hostArg,
    examples: [{ command: 'knarr host restore h1', description: 'h1 serves again' }],
    dryRun: 'plans',
  },
  async ({ args }, ctx) => (await import('./evacuate.js')).hostRestore(args.host, ctx),
);

export const host = defineGroup({
  name: 'host',
  summary: 'hosts of the fleet: up while their agent holds its lease',
  description:
    'Each host is registered by its agent (knarr daemon) under an etcd lease: a host whose lease lapses is down. States: ok, draining (takes no ' +
    'new jobs), evacuated (its work moved away by host evacuate; none comes back until host restore), and gone after leave.',
  subcommands: [list, show, drain, tag, leave, evacuate, restore],
});
