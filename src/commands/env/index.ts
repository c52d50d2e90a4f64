import { defineCommand, defineGroup } from '../define.js';
import { detachOption } from '../options.js';

const nameArg = { name: { description: 'environment name', required: true, completes: 'env' } } as const;

const create = defineCommand(
  {
    name: 'create',
    summary: 'create an environment: its roles and members from a file, made as one operation',
    args: { name: { description: 'environment name', required: true } },
    description:
      'Reads an environment file (roles: role mappings or role file paths; members: role: count) and makes every member, lowest priority first, ' +
      "each with its hooks in order. The built-in balancer role is always there. Without --file the environment starts empty, with the balancer's role only. " +
      'A hook that denies, or a member that does not start, undoes the whole create.',
    options: {
      file: { flags: '-f, --file <file>', description: 'environment file (YAML or JSON)' },
      detach: detachOption,
    },
    examples: [
      { command: 'knarr env create shop -f shop.yaml', description: 'the roles and members of shop.yaml' },
      { command: 'knarr env create shop -f shop.yaml --detach', description: 'queue it and print the operation id' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./commands.js')).envCreate(args.name, options, ctx),
);

const add = defineCommand(
  {
    name: 'add',
    summary: 'add members of a role (and what they require first), each with its hooks',
    description:
      "Each member is added in turn: its beforeItIsAdded hook, then every other member's beforeOtherIsAdded in priority order (a non-zero exit " +
      "denies the add, and nothing is left), then the member is made, then its afterItIsAdded and the others' afterOtherIsAdded (a non-zero exit " +
      'undoes the add). A role that requires another (web requires a balancer from its second member) gets it added first.',
    args: { ...nameArg, role: { description: 'role name', required: true } },
    options: {
      count: { flags: '--count <n>', description: 'how many members (default 1)' },
      file: { flags: '-f, --file <file>', description: "the role's file, for a role the environment does not have yet" },
      detach: detachOption,
    },
    examples: [
      { command: 'knarr env add shop web', description: 'one more web member' },
      { command: 'knarr env add shop db -f db.yaml', description: 'a new role and its first member' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./commands.js')).envAdd(args.name, args.role, options, ctx),
);

const remove = defineCommand(
  {
    name: 'remove',
    aliases: ['rm'],
    summary: 'remove one member, with its removal hooks',
    description:
      "Runs the member's beforeItIsRemoved and the others' beforeOtherIsRemoved (a non-zero exit denies it), takes the member away (the " +
      "balancer forgets it first), then its afterItIsRemoved (on its host) and the others' afterOtherIsRemoved. A member others require stays.",
    args: { ...nameArg, member: { description: 'member name (ENV-ROLE-N)', required: true, completes: 'member' } },
    options: { detach: detachOption },
    examples: [{ command: 'knarr env remove shop shop-web-3', description: 'one web member less' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./commands.js')).envRemove(args.name, args.member, options, ctx),
);

const VERBS = {
  start: 'start every member (lowest priority first)',
  stop: 'stop every member (highest priority first); they are kept',
  suspend: "freeze every member's processes (docker pause, lxc-freeze for a node; a balancer stops listening)",
  resume: 'thaw every suspended member',
  destroy: 'remove every member, the record and its history',
} as const;

const lifecycle = (Object.keys(VERBS) as (keyof typeof VERBS)[]).map((verb) =>
  defineCommand(
    {
      name: verb,
      summary: VERBS[verb],
      args: nameArg,
      options: { detach: detachOption },
      examples: [{ command: `knarr env ${verb} shop`, description: `${verb} shop` }],
      dryRun: 'plans',
    },
    async ({ args, options }, ctx) => (await import('./commands.js')).envLifecycle(verb, args.name, options, ctx),
  ),
);

const list = defineCommand(
  {
    name: 'list',
    summary: 'environments with state, members by role, service and home host',
    examples: [{ command: 'knarr env list', description: 'every environment' }],
    dryRun: 'reads',
  },
  async (_input, ctx) => (await import('./commands.js')).envList(ctx),
);

const show = defineCommand(
  {
    name: 'show',
    summary: 'an environment: roles, members (role, host, address, state), service and latest events',
    args: nameArg,
    examples: [{ command: 'knarr --json env show shop', description: 'shop as JSON' }],
    dryRun: 'reads',
  },
  async ({ args }, ctx) => (await import('./commands.js')).envShow(args.name, ctx),
);

const events = defineCommand(
  {
    name: 'events',
    summary: "an environment's history: members added and removed, each hook run with its exit and duration (-f to follow)",
    args: nameArg,
    options: { follow: { flags: '-f, --follow', description: 'keep printing new lines as they happen' } },
    examples: [{ command: 'knarr env events shop -f', description: 'follow what happens in shop' }],
    dryRun: 'reads',
  },
  async ({ args, options }, ctx) => (await import('./commands.js')).envEvents(args.name, options, ctx),
);

export const env = defineGroup({
  name: 'env',
  summary: 'environments: groups of members with roles, ordered hooks and a balancer',
  description:
    'An environment is a group of members (docker jobs, LXC nodes, or the built-in balancer) that make one application, as Cloud48 groups containers: ' +
    "each member is of a role (a YAML file: priority, what a member is, what it requires, hooks), and each role reacts to the environment's " +
    "events in priority order, lowest first. Every change is a durable operation on the environment's home host (knarr op) with a child " +
    "operation per member made. The environment's service (its name) is served by the balancer: link a job to it with --link NAME.",
  subcommands: [create, add, remove, ...lifecycle, list, show, events],
});
