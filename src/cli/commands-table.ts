import { defineCommand, type ArgDef, type CommandDef, type OptionDef } from '../commands/define.js';
import { cluster } from '../commands/cluster/index.js';
import { daemon } from '../commands/daemon/index.js';
import { doctor } from '../commands/doctor/index.js';
import { etcd } from '../commands/etcd/index.js';
import { host } from '../commands/host/index.js';
import { image } from '../commands/image/index.js';
import { job, service } from '../commands/job/index.js';
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
  job,
  service,
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
