import { defineCommand, defineGroup } from '../define.js';
import { detachOption, userOption } from '../options.js';

const nameArg = { name: { description: 'cluster name', required: true, completes: 'cluster' } } as const;

/** Where nodes go: cluster plan's flags, which a create takes alike. */
export const placementOptions = {
  spread: { flags: '--spread', description: 'nodes on as many hosts as fit (the default of plan and of a create with a placement flag)' },
  pack: { flags: '--pack', description: 'fill one host before the next' },
  host: { flags: '--host <host>', description: 'every node on this fleet host' },
  tags: { flags: '--tag <tag>', description: 'only hosts with this tag', repeatable: true },
} as const;

const create = defineCommand(
  {
    name: 'create',
    summary: 'create and start a cluster of N nodes',
    args: { name: { description: 'cluster name', required: true } },
    options: {
      size: { flags: '--size <n>', description: 'number of nodes (1 to 64)' },
      image: { flags: '--image <image>', description: 'base image (default base; see knarr image import)' },
      user: userOption,
      memory: { flags: '--memory <size>', description: 'memory limit per node, e.g. 256M' },
      cpus: { flags: '--cpus <n>', description: 'cpu limit per node: 0.5, 2 or 500m' },
      pool: { flags: '--pool <pool>', description: "pool for the nodes' volumes (btrfs, lvm or dir)" },
      authorizedKeys: { flags: '--authorized-keys <file>', description: 'public keys for /root/.ssh/authorized_keys (never a private key)' },
      ...placementOptions,
      detach: detachOption,
    },
    examples: [
      { command: 'knarr cluster create lab --size 3 --memory 256M', description: 'three nodes host-0..host-2 on this host' },
      { command: 'knarr cluster create lab --size 6 --spread', description: "six nodes over the fleet's hosts (agents with --share)" },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./commands.js')).clusterCreate(args.name, options, ctx),
);

const plan = defineCommand(
  {
    name: 'plan',
    summary: 'where each node of a new cluster would go, and why other hosts lost',
    description:
      'Places the nodes as a create with a placement flag would, with the job scheduler (hosts up, joined and not draining; tags; the cpu and memory ' +
      "left after jobs, other clusters' " +
      'nodes and the placeholders of creates and migrations under way), each node counted on its host before the next is placed. A node with no limit ' +
      'counts as 100m of cpu and 64 MiB of memory. Reads only; exits 1 when some node fits nowhere.',
    args: { name: { description: 'cluster name', required: true } },
    options: {
      size: { flags: '--size <n>', description: 'number of nodes (1 to 64)' },
      ...placementOptions,
      memory: { flags: '--memory <size>', description: 'memory limit per node, e.g. 256M' },
      cpus: { flags: '--cpus <n>', description: 'cpu limit per node: 0.5, 2 or 500m' },
      user: userOption,
      perNode: { flags: '--per-node', description: "each node's verdict of every host, instead of one line per host" },
    },
    examples: [
      { command: 'knarr cluster plan lab --size 6 --memory 512M', description: 'six nodes spread over the hosts that fit' },
      { command: 'knarr cluster plan lab --size 4 --pack --tag ssd --per-node', description: "each node's choice among the ssd hosts" },
    ],
    dryRun: 'reads',
  },
  async ({ args, options }, ctx) => (await import('./plan.js')).clusterPlan(args.name, options, ctx),
);

const lifecycle = (['start', 'stop', 'delete'] as const).map((verb) =>
  defineCommand(
    {
      name: verb,
      ...(verb === 'delete' ? { aliases: ['rm'] } : {}),
      summary:
        verb === 'delete'
          ? "remove every node, volume and address of a cluster (the user's /nfs data stays)"
          : `${verb} every node of a cluster (volumes are kept)`,
      args: nameArg,
      options: { user: userOption, detach: detachOption },
      examples: [{ command: `knarr cluster ${verb} lab`, description: `${verb} lab` }],
      dryRun: 'plans',
    },
    async ({ args, options }, ctx) => (await import('./commands.js')).clusterLifecycle(verb, args.name, options, ctx),
  ),
);

const scale = defineCommand(
  {
    name: 'scale',
    summary: 'add or remove nodes; the others keep their data',
    args: nameArg,
    options: {
      size: { flags: '--size <n>', description: 'the new number of nodes' },
      user: userOption,
      detach: detachOption,
    },
    examples: [{ command: 'knarr cluster scale lab --size 5', description: 'grow lab to five nodes' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./commands.js')).clusterScale(args.name, options, ctx),
);

const nodeOptArg = {
  ...nameArg,
  node: { description: 'one node, by index or hostname (0, host-0); every node when left out' },
} as const;

const nodeLifecycle = (
  [
    ['suspend', 'freeze every process of a node, or of every node, in the cgroup freezer (memory and addresses kept)', 'lab 1', 'freeze host-1'],
    ['resume', 'thaw suspended nodes: their processes carry on where they were', 'lab', 'thaw every node of lab'],
    ['reboot', 'stop and start nodes again one at a time, with the limits the record holds now', 'lab host-2', 'reboot host-2'],
  ] as const
).map(([verb, summary, example, what]) =>
  defineCommand(
    {
      name: verb,
      summary,
      args: nodeOptArg,
      options: { user: userOption, detach: detachOption },
      examples: [{ command: `knarr cluster ${verb} ${example}`, description: what }],
      dryRun: 'plans',
    },
    async ({ args, options }, ctx) => (await import('./commands.js')).clusterNodeLifecycle(verb, args.name, args.node, options, ctx),
  ),
);

const update = defineCommand(
  {
    name: 'update',
    summary: "change nodes' memory and cpu limits: live where the kernel takes them, else at the next start",
    args: nodeOptArg,
    options: {
      memory: { flags: '--memory <size>', description: 'memory limit per node, e.g. 512M; none takes the limit away' },
      cpus: { flags: '--cpus <n>', description: 'cpu limit per node: 0.5, 2 or 500m; none takes the limit away' },
      user: userOption,
      detach: detachOption,
    },
    examples: [
      { command: 'knarr cluster update lab --memory 512M', description: 'every node of lab gets 512 MiB' },
      { command: 'knarr cluster update lab 0 --cpus 2', description: 'host-0 alone gets two cpus' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./commands.js')).clusterUpdate(args.name, args.node, options, ctx),
);

const clone = defineCommand(
  {
    name: 'clone',
    summary: "a new cluster from an existing one: new ids and addresses, each node's volume copied (a snapshot where the pool can)",
    args: {
      name: { description: 'the cluster to copy', required: true, completes: 'cluster' },
      new: { description: 'the new cluster name', required: true, completes: 'none' },
    },
    options: { user: userOption, detach: detachOption },
    examples: [{ command: 'knarr cluster clone lab lab2', description: "lab2: lab's nodes and their files, started" }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./commands.js')).clusterClone(args.name, args.new, options, ctx),
);

const migrate = defineCommand(
  {
    name: 'migrate',
    summary: 'move a node to another host, cold: stopped, its volume sent, started there with the same name, hostname and address',
    args: {
      ...nameArg,
      node: { description: 'the node, by index or hostname (0, host-0)', required: true },
    },
    options: {
      to: { flags: '--to <host>', description: "the host it goes to (up, with the cluster's image)" },
      user: userOption,
      detach: detachOption,
    },
    examples: [{ command: 'knarr cluster migrate lab host-1 --to h2', description: 'host-1 of lab runs on h2 from now on, with its files' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./commands.js')).clusterMigrate(args.name, args.node, options, ctx),
);

const list = defineCommand(
  {
    name: 'list',
    summary: 'clusters with status, size, subnet and host',
    options: { user: { flags: '--user <user>', description: "only this user's" } },
    examples: [{ command: 'knarr cluster list', description: 'every cluster' }],
    dryRun: 'reads',
  },
  async ({ options }, ctx) => (await import('./commands.js')).clusterList(options.user, ctx),
);

const show = defineCommand(
  {
    name: 'show',
    summary: 'a cluster and each node: container, hostname, ip, host, state',
    args: nameArg,
    options: { user: userOption },
    examples: [{ command: 'knarr --json cluster show lab', description: 'lab as JSON' }],
    dryRun: 'reads',
  },
  async ({ args, options }, ctx) =>
    (await import('../events/recent.js')).withRecentEvents(
      ctx,
      'cluster',
      (c) => `${c.user}/${c.name}`,
      (await import('./commands.js')).clusterShow(args.name, options, ctx),
    ),
);

const exec = defineCommand(
  {
    name: 'exec',
    summary: 'run a command in a node; exits with its status',
    args: {
      name: { description: 'cluster name', required: true, completes: 'cluster' },
      node: { description: 'node index or hostname (0, host-0)', required: true },
      command: { description: 'command and arguments, after --', variadic: true },
    },
    options: {
      interactive: { flags: '-i, --interactive', description: 'feed stdin to the command' },
      user: userOption,
    },
    examples: [
      { command: 'knarr cluster exec lab 0 -- hostname', description: 'prints host-0' },
      { command: 'tar -c data | knarr cluster exec -i lab 1 -- tar -x -C /root', description: 'a stream into a node' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./commands.js')).clusterExec(args.name, args.node, args.command, options, ctx),
);

export const cluster = defineGroup({
  name: 'cluster',
  summary: 'virtual clusters of LXC containers, driven by durable operations',
  description:
    'A cluster is a set of LXC system containers (nodes) as docklet makes them: container user-clusterid-nodeid, hostname host-N, rootfs an ' +
    "overlay of a read-only base image and a per-node volume on the pool, a per-cluster /etc/hosts bind-mounted read-only, the user's shared data " +
    "at /nfs and authorized keys at /root/.ssh, an address on the user's own /24 on the host's bridge. Every change is an operation in etcd (knarr " +
    "op), run by the host's agent or, with none, by the CLI inline. Without a placement flag every node is on the host the cluster is " +
    "created on; with --spread, --pack, --host or --tag the scheduler places them over the fleet, and each host's agent makes its own " +
    "nodes (a cluster over several hosts keeps /nfs on the fleet's shared directory, daemon --share).",
  subcommands: [create, plan, ...lifecycle, ...nodeLifecycle, update, clone, migrate, scale, list, show, exec],
});
