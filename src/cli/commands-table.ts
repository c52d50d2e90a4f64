import { longFlag, SETTINGS } from '../core/settings.js';
import { defineCommand, type CommandDef, type OptionDef } from '../commands/define.js';
import { dot } from '../commands/dot/index.js';
import { etcd } from '../commands/etcd/index.js';
import { host } from '../commands/host/index.js';
import { image } from '../commands/image/index.js';
import { onboot } from '../commands/onboot/index.js';
import { op } from '../commands/op/index.js';
import { pool } from '../commands/pool/index.js';

export type { ArgDef, CommandDef, DryRunMode, Example, OptionDef } from '../commands/define.js';
export { longName, shortName, takesValue } from '../commands/define.js';

/** The flags of the settings table that command takes (without one: the global flags); a boolean also gets its --no- form. */
function settingOptions(command?: string): OptionDef[] {
  return SETTINGS.filter((s) => s.flag !== undefined && s.command === command).flatMap((s): OptionDef[] => {
    const shown = s.kind === 'boolean' || s.choices ? '' : ` (default ${s.defaultText})`;
    const opt: OptionDef = {
      flags: s.flag!,
      description: `${s.help}${shown}`,
      env: s.env,
      ...(s.choices ? { choices: s.choices } : {}),
      ...(s.repeatable ? { repeatable: true } : {}),
    };
    if (s.kind !== 'boolean') return [opt];
    return [
      opt,
      {
        flags: `--no-${longFlag(s)!.slice(2)}`,
        description: `switch ${longFlag(s)} off when ${s.env}${s.inFile === false ? '' : ' or the config file'} switched it on`,
      },
    ];
  });
}

export const GLOBAL_OPTIONS: OptionDef[] = settingOptions();

/** The command tree: typed nouns from their definition modules; dot, job, service, cluster, daemon and doctor (and image save) are still untyped entries. */
export const COMMANDS: CommandDef[] = [
  pool,
  etcd,
  dot,
  {
    name: 'job',
    summary: 'docker jobs across the fleet: foreground (with -i pipes) or daemonized',
    description:
      "Jobs run on docker engines. With no agent in the fleet, on this host's engine (DOCKER_HOST or /var/run/docker.sock): the embedded default. " +
      "When agents (knarr daemon) serve the fleet, the scheduler places each job (knarr job plan shows why) and the job runs through that host's " +
      'agent. -i pipes stdin to the job and its stdout back, binary-safe with end-of-file passed through, so knarr job run -i A | knarr job run -i B ' +
      "chains jobs, on one host or two. Daemonized jobs (ports, -d, or daemonize: true) are kept running by their host's agent: their intent and " +
      'actual state live in etcd, each port is a service, a crashed job restarts per its policy, and a job whose host goes down moves to another ' +
      'host unless it is fixed there.',
    subcommands: [
      {
        name: 'run',
        summary: 'run a job in the foreground; exits with its exit code',
        args: [
          { name: 'image', description: 'image (or give it in -f)' },
          { name: 'command', description: 'command and arguments, after --', variadic: true },
        ],
        options: [
          { flags: '-i, --interactive', description: 'pipe stdin to the job (end-of-file included)' },
          { flags: '-f, --file <file>', description: 'job spec, YAML or JSON' },
          { flags: '--name <name>', description: 'job name (default run-<random>)' },
          { flags: '-e, --env <NAME=VALUE>', description: 'environment variable', repeatable: true },
          { flags: '--network <mode>', description: "docker network mode (default: the engine's)" },
          { flags: '--host <host>', description: 'pin the job to this fleet host' },
          { flags: '--tag <tag>', description: 'run only on hosts with this tag', repeatable: true },
          { flags: '-p, --port <HOST:CONTAINER>', description: 'publish a port (makes the job daemonized)', repeatable: true },
          { flags: '--volume <SOURCE:TARGET>', description: 'dot:DOT[.SUBDOT]:/path or /host/path:/path, :ro for read-only', repeatable: true },
          { flags: '--link <service>', description: "reach this service through the host's ambassador", repeatable: true },
          { flags: '--restart <policy>', description: 'no, always or on-failure[:N] (daemonized jobs)' },
          { flags: '--cpu <cpu>', description: 'cpu to reserve: 0.5, 2 or 500m' },
          { flags: '--memory <size>', description: 'memory to reserve and limit to: 256M, 2G' },
          { flags: '--fixed', description: 'the job stays on the host it first ran on (default with volumes or --static)' },
          { flags: '--static', description: 'left alone by job restart --all (and fixed)' },
          { flags: '-d, --detach', description: 'daemonize the job (as daemonize: true)' },
        ],
        examples: [
          { command: 'echo hello | knarr job run -i busybox -- tr a-z A-Z | knarr job run -i busybox -- wc -c', description: 'a pipeline of jobs' },
          { command: "knarr job run busybox -- sh -c 'exit 3'; echo $?", description: 'knarr exits 3' },
          { command: 'knarr job run -f job.yaml', description: 'a job from a spec file' },
        ],
        dryRun: 'plans',
        handler: () => import('../commands/job/run.js').then((m) => m.jobRun),
      },
      {
        name: 'plan',
        summary: 'the host the scheduler would choose, and why each other host lost',
        args: [
          { name: 'image', description: 'image (or give it in -f)' },
          { name: 'command', description: 'command and arguments, after --', variadic: true },
        ],
        options: [
          { flags: '-f, --file <file>', description: 'job spec, YAML or JSON' },
          { flags: '--name <name>', description: 'job name' },
          { flags: '--host <host>', description: 'pin the job to this fleet host' },
          { flags: '--tag <tag>', description: 'run only on hosts with this tag', repeatable: true },
          { flags: '-p, --port <HOST:CONTAINER>', description: 'a port the job publishes', repeatable: true },
          { flags: '--volume <SOURCE:TARGET>', description: 'a volume: dot volumes need a host that has the dot', repeatable: true },
          { flags: '--cpu <cpu>', description: 'cpu to reserve: 0.5, 2 or 500m' },
          { flags: '--memory <size>', description: 'memory to reserve: 256M, 2G' },
          { flags: '--fixed', description: 'the job stays on the host it first ran on' },
          {
            flags: '--strategy <strategy>',
            description: "spread or binpack (default: the config file's scheduler.strategy, else spread)",
            choices: ['spread', 'binpack'],
          },
        ],
        examples: [{ command: 'knarr job plan -f job.yaml', description: 'where job.yaml would run' }],
        dryRun: 'reads',
        handler: () => import('../commands/job/plan.js').then((m) => m.jobPlan),
      },
      {
        name: 'list',
        summary: 'daemonized jobs: intent and actual state',
        examples: [{ command: 'knarr job list', description: 'jobs of the fleet' }],
        dryRun: 'reads',
        handler: () => import('../commands/job/manage.js').then((m) => m.jobList),
      },
      {
        name: 'show',
        summary: 'a daemonized job: spec, host, state',
        args: [{ name: 'job', description: 'job name', required: true }],
        examples: [{ command: 'knarr --json job show web', description: 'web as JSON' }],
        dryRun: 'reads',
        handler: () => import('../commands/job/manage.js').then((m) => m.jobShow),
      },
      {
        name: 'logs',
        summary: 'output of a daemonized job (-f to follow)',
        args: [{ name: 'job', description: 'job name', required: true }],
        options: [{ flags: '-f, --follow', description: 'keep printing new output' }],
        examples: [{ command: 'knarr job logs web -f', description: "follow web's output" }],
        dryRun: 'reads',
        handler: () => import('../commands/job/manage.js').then((m) => m.jobLogs),
      },
      {
        name: 'stop',
        summary: 'stop a daemonized job (its intent stays)',
        args: [{ name: 'job', description: 'job name', required: true }],
        examples: [{ command: 'knarr job stop web', description: 'stop web' }],
        dryRun: 'plans',
        handler: () => import('../commands/job/manage.js').then((m) => m.jobStop),
      },
      {
        name: 'rm',
        summary: 'remove a daemonized job, its container and services',
        args: [{ name: 'job', description: 'job name', required: true }],
        examples: [{ command: 'knarr job rm web', description: 'remove web' }],
        dryRun: 'plans',
        handler: () => import('../commands/job/manage.js').then((m) => m.jobRm),
      },
      {
        name: 'restart',
        summary: "make jobs' containers anew (--all: every job that is not static)",
        args: [{ name: 'job', description: 'job names', variadic: true }],
        options: [{ flags: '--all', description: 'every daemonized job except static ones' }],
        examples: [
          { command: 'knarr job restart web', description: 'restart web (starts it if stopped)' },
          { command: 'knarr job restart --all', description: 'after a code push' },
        ],
        dryRun: 'plans',
        handler: () => import('../commands/job/manage.js').then((m) => m.jobRestart),
      },
      {
        name: 'history',
        summary: 'where a job was placed, started, moved and exited (kept after rm)',
        args: [{ name: 'job', description: 'job name', required: true }],
        examples: [{ command: 'knarr job history web', description: "web's past" }],
        dryRun: 'reads',
        handler: () => import('../commands/job/manage.js').then((m) => m.jobHistory),
      },
    ],
  },
  {
    name: 'service',
    summary: 'services: the ports of daemonized jobs',
    subcommands: [
      {
        name: 'list',
        summary: 'each service and where it is reached',
        examples: [{ command: 'knarr service list', description: "the fleet's services" }],
        dryRun: 'reads',
        handler: () => import('../commands/job/manage.js').then((m) => m.serviceList),
      },
    ],
  },
  host,
  {
    name: 'cluster',
    summary: 'virtual clusters of LXC containers, driven by durable operations',
    description:
      'A cluster is a set of LXC system containers (nodes) as docklet makes them: container user-clusterid-nodeid, hostname host-N, rootfs an ' +
      "overlay of a read-only base image and a per-node volume on the pool, a per-cluster /etc/hosts bind-mounted read-only, the user's shared data " +
      "at /nfs and authorized keys at /root/.ssh, an address on the user's own /24 on the host's bridge. Every change is an operation in etcd (knarr " +
      "op), run by the host's agent or, with none, by the CLI inline. Nodes are placed on the host the cluster is created on.",
    subcommands: [
      {
        name: 'create',
        summary: 'create and start a cluster of N nodes',
        args: [{ name: 'name', description: 'cluster name', required: true }],
        options: [
          { flags: '--size <n>', description: 'number of nodes (1 to 64)' },
          { flags: '--image <image>', description: 'base image (default base; see knarr image import)' },
          { flags: '--user <user>', description: 'owner (default $KNARR_USER, else your login name)' },
          { flags: '--memory <size>', description: 'memory limit per node, e.g. 256M' },
          { flags: '--cpus <n>', description: 'cpu limit per node: 0.5, 2 or 500m' },
          { flags: '--pool <pool>', description: "pool for the nodes' volumes (btrfs, lvm or dir)" },
          { flags: '--authorized-keys <file>', description: 'public keys for /root/.ssh/authorized_keys (never a private key)' },
          { flags: '--detach', description: 'print the operation id and return at once' },
        ],
        examples: [{ command: 'knarr cluster create lab --size 3 --memory 256M', description: 'three nodes host-0..host-2' }],
        dryRun: 'plans',
        handler: () => import('../commands/cluster/commands.js').then((m) => m.clusterCreate),
      },
      ...(['start', 'stop', 'delete'] as const).map((verb) => ({
        name: verb,
        summary:
          verb === 'delete'
            ? "remove every node, volume and address of a cluster (the user's /nfs data stays)"
            : `${verb} every node of a cluster (volumes are kept)`,
        args: [{ name: 'name', description: 'cluster name', required: true }],
        options: [
          { flags: '--user <user>', description: 'owner (default $KNARR_USER, else your login name)' },
          { flags: '--detach', description: 'print the operation id and return at once' },
        ],
        examples: [{ command: `knarr cluster ${verb} lab`, description: `${verb} lab` }],
        dryRun: 'plans' as const,
        handler: () =>
          import('../commands/cluster/commands.js').then((m) => (verb === 'start' ? m.clusterStart : verb === 'stop' ? m.clusterStop : m.clusterDelete)),
      })),
      {
        name: 'scale',
        summary: 'add or remove nodes; the others keep their data',
        args: [{ name: 'name', description: 'cluster name', required: true }],
        options: [
          { flags: '--size <n>', description: 'the new number of nodes' },
          { flags: '--user <user>', description: 'owner (default $KNARR_USER, else your login name)' },
          { flags: '--detach', description: 'print the operation id and return at once' },
        ],
        examples: [{ command: 'knarr cluster scale lab --size 5', description: 'grow lab to five nodes' }],
        dryRun: 'plans',
        handler: () => import('../commands/cluster/commands.js').then((m) => m.clusterScale),
      },
      {
        name: 'list',
        summary: 'clusters with status, size, subnet and host',
        options: [{ flags: '--user <user>', description: "only this user's" }],
        examples: [{ command: 'knarr cluster list', description: 'every cluster' }],
        dryRun: 'reads',
        handler: () => import('../commands/cluster/commands.js').then((m) => m.clusterList),
      },
      {
        name: 'show',
        summary: 'a cluster and each node: container, hostname, ip, host, state',
        args: [{ name: 'name', description: 'cluster name', required: true }],
        options: [{ flags: '--user <user>', description: 'owner (default $KNARR_USER, else your login name)' }],
        examples: [{ command: 'knarr --json cluster show lab', description: 'lab as JSON' }],
        dryRun: 'reads',
        handler: () => import('../commands/cluster/commands.js').then((m) => m.clusterShow),
      },
      {
        name: 'exec',
        summary: 'run a command in a node; exits with its status',
        args: [
          { name: 'name', description: 'cluster name', required: true },
          { name: 'node', description: 'node index or hostname (0, host-0)', required: true },
          { name: 'command', description: 'command and arguments, after --', variadic: true },
        ],
        options: [
          { flags: '-i, --interactive', description: 'feed stdin to the command' },
          { flags: '--user <user>', description: 'owner (default $KNARR_USER, else your login name)' },
        ],
        examples: [
          { command: 'knarr cluster exec lab 0 -- hostname', description: 'prints host-0' },
          { command: 'tar -c data | knarr cluster exec -i lab 1 -- tar -x -C /root', description: 'a stream into a node' },
        ],
        dryRun: 'plans',
        handler: () => import('../commands/cluster/commands.js').then((m) => m.clusterExec),
      },
    ],
  },
  image,
  op,
  {
    name: 'daemon',
    summary: 'the agent: registers this host, serves the token-protected API',
    description:
      'Registers this host in etcd under a lease (a host whose lease lapses is down) with its address, tags, capacity, load and docker endpoint, ' +
      'keeps them fresh, and serves an HTTP API on --listen where every request needs the bearer token from --token-file (made, 0600, when missing). ' +
      "Every flag can also be set in the environment (KNARR_DAEMON_*) or the config file's daemon: section (flag, then environment, then file). " +
      'SIGTERM drains (no new foreground jobs or operations; the running ones get --drain-timeout to end, a second SIGTERM cuts it short), gives the ' +
      'lease back and exits 0; SIGHUP reloads the config file, the token file and the TLS certificate, applying tags and prune at once (tags set ' +
      'with knarr host tag stay) and naming any other changed setting as needing a restart; a bad file changes nothing. At each start it joins the ' +
      "fleet through docklet's handshake (waiting, init, work, ok), proving the shared data directory with --share, and prepares for --mode recovery " +
      "or new; then it keeps this host's daemonized jobs as their intents say, runs this host's operations, and forwards " +
      'linked services (the ambassador).',
    options: settingOptions('daemon'),
    examples: [{ command: 'knarr daemon --tags ssd,zone=eu --listen 10.0.0.5:7946', description: 'run the agent' }],
    dryRun: 'refuses',
    handler: () => import('../commands/daemon.js').then((m) => m.daemon),
  },
  onboot,
  {
    name: 'doctor',
    summary: 'check host prerequisites; --fix installs and starts what is missing',
    description:
      'Checks zfs, btrfs, lvm, lxc, a reachable dockerd, etcd, overlayfs, loop devices and cgroups, naming the Debian package for each. ' +
      'Exits 5 when something is missing.',
    options: [{ flags: '--fix', description: 'apt-get install the missing packages and start zfs-fuse and dockerd if needed' }],
    examples: [
      { command: 'knarr doctor', description: 'report what is present' },
      { command: 'knarr doctor --fix', description: 'install and start what is missing' },
    ],
    dryRun: 'plans',
    handler: () => import('../commands/doctor.js').then((m) => m.doctor),
  },
  defineCommand(
    {
      name: 'completion',
      summary: 'print a shell completion script',
      args: { shell: { description: 'bash, zsh or fish', required: true, choices: ['bash', 'zsh', 'fish'] } },
      examples: [
        { command: 'knarr completion bash > /etc/bash_completion.d/knarr', description: 'install bash completion' },
        { command: 'knarr completion fish > ~/.config/fish/completions/knarr.fish', description: 'install fish completion' },
      ],
      dryRun: 'reads',
    },
    async ({ args }) => (await import('./completion-command.js')).completion(args.shell),
  ),
];

/** Every leaf command with its path, for generators and tests. */
export function leafCommands(defs: CommandDef[] = COMMANDS, prefix: string[] = []): { path: string[]; def: CommandDef }[] {
  return defs.flatMap((d) => (d.subcommands ? leafCommands(d.subcommands, [...prefix, d.name]) : [{ path: [...prefix, d.name], def: d }]));
}
