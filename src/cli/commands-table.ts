import { defineCommand, type ArgDef, type CommandDef, type OptionDef } from '../commands/define.js';
import { cluster } from '../commands/cluster/index.js';
import { daemon } from '../commands/daemon/index.js';
import { doctor } from '../commands/doctor/index.js';
import { etcd } from '../commands/etcd/index.js';
import { host } from '../commands/host/index.js';
import { image } from '../commands/image/index.js';
import { onboot } from '../commands/onboot/index.js';
import { op } from '../commands/op/index.js';
import { pool } from '../commands/pool/index.js';
import { settingOptions } from '../commands/setting-options.js';

export type { ArgDef, CommandDef, DryRunMode, Example, OptionDef } from '../commands/define.js';
export { longName, shortName, takesValue } from '../commands/define.js';

export const GLOBAL_OPTIONS: OptionDef[] = settingOptions();

const dotArg: ArgDef = { name: 'dot', description: 'DOT or DOT.SUBDOT', required: true };
const dotOnlyArg: ArgDef = { name: 'dot', description: 'dot name', required: true };

/** The command tree: typed nouns from their definition modules; dot, job, service, cluster, daemon and doctor (and image save) are still untyped entries. */
export const COMMANDS: CommandDef[] = [
  pool,
  etcd,
  {
    name: 'dot',
    summary: 'versioned data volumes: commit, branch, clone, mount',
    description:
      'A dot is a versioned data volume on a pool: one filesystem per branch, a snapshot per commit. DOT.SUBDOT names a subdot, a directory of the ' +
      'dot committed with it (the bare DOT is its __default__ subdot). Every command names its dot: there is no current dot. ' +
      'Records live in etcd and on disk.',
    subcommands: [
      {
        name: 'init',
        summary: 'create a dot, or a subdot of one (idempotent)',
        args: [dotArg],
        options: [{ flags: '--pool <name>', description: 'pool to keep it on (default: the default pool)' }],
        examples: [
          { command: 'knarr dot init pgdata', description: 'a dot on the default pool' },
          { command: 'knarr dot init myapp.redis', description: 'add the subdot redis to the dot myapp' },
        ],
        dryRun: 'plans',
        handler: () => import('../commands/dot/init.js').then((m) => m.dotInit),
      },
      {
        name: 'list',
        summary: 'dots on this host',
        examples: [{ command: 'knarr dot list', description: 'a table of dots with branch, head and mounts' }],
        dryRun: 'reads',
        handler: () => import('../commands/dot/list.js').then((m) => m.dotList),
      },
      {
        name: 'show',
        summary: 'branches, head, subdots and mounts of a dot',
        args: [dotOnlyArg],
        examples: [{ command: 'knarr --json dot show pgdata', description: 'everything about pgdata as JSON' }],
        dryRun: 'reads',
        handler: () => import('../commands/dot/show.js').then((m) => m.dotShow),
      },
      {
        name: 'commit',
        summary: "snapshot every subdot of the dot's active branch",
        args: [dotArg],
        options: [
          { flags: '-m, --message <text>', description: 'what changed (required)' },
          { flags: '--meta <key=value>', description: 'metadata kept with the commit', repeatable: true },
          { flags: '--author <name>', description: 'author (default $KNARR_AUTHOR, else user@host)' },
        ],
        examples: [{ command: 'knarr dot commit pgdata -m "after migration 42" --meta schema=42', description: 'commit with metadata' }],
        dryRun: 'plans',
        handler: () => import('../commands/dot/commit.js').then((m) => m.dotCommit),
      },
      {
        name: 'log',
        summary: 'commits of a branch, newest first',
        args: [dotOnlyArg],
        options: [{ flags: '--branch <name>', description: 'branch (default: the active one)' }],
        examples: [{ command: 'knarr dot log pgdata', description: 'history of the active branch' }],
        dryRun: 'reads',
        handler: () => import('../commands/dot/log.js').then((m) => m.dotLog),
      },
      {
        name: 'branch',
        summary: 'list branches, or make NEW from the active branch',
        args: [dotOnlyArg, { name: 'new', description: 'name of the branch to make' }],
        options: [{ flags: '--commit <id>', description: 'commit to branch from (default: the head)' }],
        examples: [
          { command: 'knarr dot branch pgdata', description: 'list branches' },
          { command: 'knarr dot branch pgdata experiment', description: 'branch from the head' },
        ],
        dryRun: 'plans',
        handler: () => import('../commands/dot/branch.js').then((m) => m.dotBranch),
      },
      {
        name: 'checkout',
        summary: 'make a branch the active one (mounts follow)',
        args: [dotOnlyArg, { name: 'branch', description: 'branch name', required: true }],
        examples: [{ command: 'knarr dot checkout pgdata experiment', description: 'switch to experiment' }],
        dryRun: 'plans',
        handler: () => import('../commands/dot/checkout.js').then((m) => m.dotCheckout),
      },
      {
        name: 'reset',
        summary: 'put the active branch back to a commit',
        args: [dotOnlyArg],
        options: [
          { flags: '--hard <commit>', description: 'commit (id or unique prefix) to go back to; uncommitted changes are lost' },
          { flags: '--force', description: 'also destroy the commits newer than it' },
        ],
        examples: [{ command: 'knarr dot reset pgdata --hard 0mb2x8k1', description: 'discard changes since that commit' }],
        dryRun: 'plans',
        handler: () => import('../commands/dot/reset.js').then((m) => m.dotReset),
      },
      {
        name: 'clone',
        summary: 'a new dot from a commit (copy-on-write on zfs and btrfs)',
        args: [dotOnlyArg, { name: 'new', description: 'name of the new dot', required: true }],
        options: [{ flags: '--commit <id>', description: 'commit to start from (default: the head)' }],
        examples: [{ command: 'knarr dot clone pgdata pgdata-test', description: 'a writable copy of the head' }],
        dryRun: 'plans',
        handler: () => import('../commands/dot/clone.js').then((m) => m.dotClone),
      },
      {
        name: 'mount',
        summary: 'bind-mount a dot or subdot at a path (idempotent)',
        args: [dotArg, { name: 'path', description: 'mount target; made if missing', required: true }],
        options: [
          { flags: '--branch <name>', description: 'check this branch out first' },
          { flags: '--force', description: 'mount over a directory that is not empty (hiding what it holds)' },
        ],
        examples: [{ command: 'knarr dot mount myapp.postgres /var/lib/postgresql', description: 'mount a subdot' }],
        dryRun: 'plans',
        handler: () => import('../commands/dot/mount.js').then((m) => m.dotMount),
      },
      {
        name: 'unmount',
        summary: 'unmount a subdot, or every mount of a dot',
        args: [dotArg],
        examples: [{ command: 'knarr dot unmount myapp', description: 'unmount all of myapp' }],
        dryRun: 'plans',
        handler: () => import('../commands/dot/mount.js').then((m) => m.dotUnmount),
      },
      {
        name: 'fsck',
        summary: 'find drift between the store and the disk; --repair mends it',
        description:
          'Compares every dot record and commit in etcd with what the pools hold, both ways: data deleted outside knarr, branches without a ' +
          'filesystem, commits on disk missing from the store (a crash between snapshot and record), commits in the store whose snapshot is gone, ' +
          'and dots on disk the store does not know; and what commands cut short left on the pools (snapshots without a commit record, temporary ' +
          "files, a pull's staging in knarr-incoming), which pin space. --repair adds or removes records and moves branch heads, and removes those " +
          'leftovers (they hold no commit); it never deletes a commit. Exits 1 while problems remain.',
        options: [{ flags: '--repair', description: 'mend the store from the disk where that is safe' }],
        examples: [
          { command: 'knarr dot fsck', description: 'report drift' },
          { command: 'knarr dot fsck --repair', description: 'mend it' },
        ],
        dryRun: 'plans',
        handler: () => import('../commands/dot/fsck.js').then((m) => m.dotFsck),
      },
      {
        name: 'push',
        summary: 'send the commits a remote lacks (incremental)',
        args: [dotOnlyArg, { name: 'remote', description: 'remote name, or a URL', required: true }],
        options: [{ flags: '--branch <name>', description: 'branch to push (default: the active one)' }],
        examples: [{ command: 'knarr dot push pgdata usb', description: 'push the active branch to the remote "usb"' }],
        dryRun: 'plans',
        handler: () => import('../commands/dot/push.js').then((m) => m.dotPush),
      },
      {
        name: 'pull',
        summary: 'fetch a dot or its new commits from a remote',
        args: [{ name: 'source', description: 'REMOTE/DOT[@BRANCH] (REMOTE may be a URL)', required: true }],
        options: [
          { flags: '--as <name>', description: 'local dot name (default: the remote dot name)' },
          { flags: '--pool <name>', description: 'pool for a new dot (default: the default pool)' },
          { flags: '--stash-on-divergence', description: 'keep diverged local commits on a new branch instead of refusing' },
        ],
        examples: [
          { command: 'knarr dot pull usb/pgdata', description: 'pull master of pgdata' },
          { command: 'knarr dot pull file:///mnt/usb/dots/pgdata@exp --as pgdata-exp', description: 'pull a branch from a URL under another name' },
        ],
        dryRun: 'plans',
        handler: () => import('../commands/dot/pull.js').then((m) => m.dotPull),
      },
      {
        name: 'remote',
        summary: 'named remotes: file:// directories, or ssh:// to knarr on another host',
        subcommands: [
          {
            name: 'add',
            summary: 'add a remote',
            args: [
              { name: 'name', description: 'remote name', required: true },
              { name: 'url', description: 'file:///dir or ssh://[user@]host[:port][/state-dir]', required: true },
            ],
            examples: [{ command: 'knarr dot remote add usb file:///mnt/usb/dots', description: 'a remote on a mounted disk' }],
            dryRun: 'plans',
            handler: () => import('../commands/dot/remote.js').then((m) => m.remoteAdd),
          },
          {
            name: 'rm',
            summary: 'remove a remote',
            args: [{ name: 'name', description: 'remote name', required: true }],
            examples: [{ command: 'knarr dot remote rm usb', description: 'forget the remote "usb"' }],
            dryRun: 'plans',
            handler: () => import('../commands/dot/remote.js').then((m) => m.remoteRm),
          },
          {
            name: 'list',
            summary: 'list remotes',
            examples: [{ command: 'knarr dot remote list', description: 'remotes and their URLs' }],
            dryRun: 'reads',
            handler: () => import('../commands/dot/remote.js').then((m) => m.remoteList),
          },
        ],
      },
      {
        name: 'manifest',
        summary: 'plumbing: branches and commits of a dot as a remote manifest (JSON)',
        args: [dotOnlyArg],
        examples: [{ command: 'knarr --json dot manifest pgdata', description: 'what a pull from this host would see' }],
        dryRun: 'reads',
        handler: () => import('../commands/dot/wire.js').then((m) => m.dotManifest),
      },
      {
        name: 'send',
        summary: "plumbing: write one commit's stream to stdout",
        args: [dotOnlyArg, { name: 'commit', description: 'commit id', required: true }],
        options: [{ flags: '--base <id>', description: 'make the stream incremental from this commit' }],
        examples: [{ command: 'knarr dot send pgdata 00mwthi50e044888a3 > c.zfs', description: 'a full stream of one commit' }],
        dryRun: 'reads',
        handler: () => import('../commands/dot/wire.js').then((m) => m.dotSend),
      },
      {
        name: 'receive',
        summary: "plumbing: apply one commit's stream from stdin (fast-forward only)",
        args: [dotOnlyArg],
        options: [
          { flags: '--record <json>', description: 'the commit record (JSON)' },
          { flags: '--branch <name>', description: 'branch to add it to (default master)' },
          { flags: '--base <id>', description: 'the commit the stream is incremental from' },
          { flags: '--pool <name>', description: 'pool for a new dot (default: the default pool)' },
        ],
        examples: [{ command: 'ssh host2 knarr dot send pgdata C | knarr dot receive pgdata --record "$REC"', description: 'what a pull over ssh does' }],
        dryRun: 'plans',
        handler: () => import('../commands/dot/wire.js').then((m) => m.dotReceive),
      },
      {
        name: 'rm',
        summary: 'remove a dot with all its branches and commits',
        args: [dotOnlyArg],
        options: [{ flags: '--force', description: 'unmount it first if it is mounted' }],
        examples: [{ command: 'knarr dot rm pgdata-test', description: 'remove a dot' }],
        dryRun: 'plans',
        handler: () => import('../commands/dot/rm.js').then((m) => m.dotRm),
      },
    ],
  },
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
  cluster,
  image,
  op,
  daemon,
  onboot,
  doctor,
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
