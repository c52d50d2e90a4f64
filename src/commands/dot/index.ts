import { defineCommand, defineGroup } from '../define.js';

const dotArg = { description: 'DOT or DOT.SUBDOT', required: true } as const;
const dotOnlyArg = { description: 'dot name', required: true } as const;
const newDotPoolOption = { flags: '--pool <name>', description: 'pool for a new dot (default: the default pool)' } as const;

const init = defineCommand(
  {
    name: 'init',
    summary: 'create a dot, or a subdot of one (idempotent)',
    args: { dot: dotArg },
    options: { pool: { flags: '--pool <name>', description: 'pool to keep it on (default: the default pool)' } },
    examples: [
      { command: 'knarr dot init pgdata', description: 'a dot on the default pool' },
      { command: 'knarr dot init myapp.redis', description: 'add the subdot redis to the dot myapp' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./init.js')).dotInit(args.dot, options, ctx),
);

const list = defineCommand(
  {
    name: 'list',
    summary: 'dots on this host',
    examples: [{ command: 'knarr dot list', description: 'a table of dots with branch, head and mounts' }],
    dryRun: 'reads',
  },
  async (_input, ctx) => (await import('./list.js')).dotList(ctx),
);

const show = defineCommand(
  {
    name: 'show',
    summary: 'branches, head, subdots and mounts of a dot',
    args: { dot: dotOnlyArg },
    examples: [{ command: 'knarr --json dot show pgdata', description: 'everything about pgdata as JSON' }],
    dryRun: 'reads',
  },
  async ({ args }, ctx) =>
    (await import('../events/recent.js')).withRecentEvents(ctx, 'dot', args.dot, (await import('./show.js')).dotShow(args.dot, ctx), true),
);

const commit = defineCommand(
  {
    name: 'commit',
    summary: "snapshot every subdot of the dot's active branch",
    args: { dot: dotArg },
    options: {
      message: { flags: '-m, --message <text>', description: 'what changed (required)' },
      meta: { flags: '--meta <key=value>', description: 'metadata kept with the commit', repeatable: true },
      author: { flags: '--author <name>', description: 'author (default $KNARR_AUTHOR, else user@host)' },
    },
    examples: [{ command: 'knarr dot commit pgdata -m "after migration 42" --meta schema=42', description: 'commit with metadata' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./commit.js')).dotCommit(args.dot, options, ctx),
);

const log = defineCommand(
  {
    name: 'log',
    summary: 'commits of a branch, newest first',
    args: { dot: dotOnlyArg },
    options: { branch: { flags: '--branch <name>', description: 'branch (default: the active one)' } },
    examples: [{ command: 'knarr dot log pgdata', description: 'history of the active branch' }],
    dryRun: 'reads',
  },
  async ({ args, options }, ctx) => (await import('./log.js')).dotLog(args.dot, options, ctx),
);

const branch = defineCommand(
  {
    name: 'branch',
    summary: 'list branches, or make NEW from the active branch',
    args: { dot: dotOnlyArg, new: { description: 'name of the branch to make' } },
    options: { commit: { flags: '--commit <id>', description: 'commit to branch from (default: the head)' } },
    examples: [
      { command: 'knarr dot branch pgdata', description: 'list branches' },
      { command: 'knarr dot branch pgdata experiment', description: 'branch from the head' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./branch.js')).dotBranch(args.dot, args.new, options, ctx),
);

const checkout = defineCommand(
  {
    name: 'checkout',
    summary: 'make a branch the active one (mounts follow)',
    args: { dot: dotOnlyArg, branch: { description: 'branch name', required: true } },
    options: {
      force: { flags: '--force', description: 'switch although the active branch has uncommitted changes (they stay on it)' },
    },
    examples: [{ command: 'knarr dot checkout pgdata experiment', description: 'switch to experiment' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./checkout.js')).dotCheckout(args.dot, args.branch, options, ctx),
);

const reset = defineCommand(
  {
    name: 'reset',
    summary: 'put the active branch back to a commit',
    args: { dot: dotOnlyArg },
    options: {
      hard: { flags: '--hard <commit>', description: 'commit (id or unique prefix) to go back to; uncommitted changes are lost' },
      force: { flags: '--force', description: 'also discard uncommitted changes and destroy the commits newer than it' },
    },
    examples: [{ command: 'knarr dot reset pgdata --hard 0mb2x8k1', description: 'discard changes since that commit' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./reset.js')).dotReset(args.dot, options, ctx),
);

const status = defineCommand(
  {
    name: 'status',
    summary: 'uncommitted changes of the active branch: files added, changed, removed',
    description:
      "Compares each subdot of the dot's active branch with its head commit (a dot with no commit lists everything as added). " +
      'Type, mode, owner, size and mtime are compared; a file that matches in all of them is read and compared byte for byte unless its ' +
      'ctime shows it was not written since the commit was taken, so a change hidden by setting the mtime back is still found.',
    args: { dot: dotOnlyArg },
    examples: [{ command: 'knarr dot status pgdata', description: 'what a commit would take' }],
    dryRun: 'reads',
  },
  async ({ args }, ctx) => (await import('./status.js')).dotStatus(args.dot, ctx),
);

const diff = defineCommand(
  {
    name: 'diff',
    summary: 'files added, changed, removed between commits, or a commit and the files now',
    args: {
      dot: dotOnlyArg,
      c1: { description: 'commit (id or unique prefix) to compare from (default: the head)' },
      c2: { description: 'commit to compare to (default: the active branch now)' },
    },
    examples: [
      { command: 'knarr dot diff pgdata', description: 'like dot status' },
      { command: 'knarr dot diff pgdata 0mb2x8k1 0mb2x9q7', description: 'what changed from one commit to the next' },
    ],
    dryRun: 'reads',
  },
  async ({ args }, ctx) => (await import('./status.js')).dotDiff(args.dot, args.c1, args.c2, ctx),
);

const clone = defineCommand(
  {
    name: 'clone',
    summary: 'a new dot from a commit (copy-on-write on zfs and btrfs)',
    args: { dot: dotOnlyArg, new: { description: 'name of the new dot', required: true } },
    options: { commit: { flags: '--commit <id>', description: 'commit to start from (default: the head)' } },
    examples: [{ command: 'knarr dot clone pgdata pgdata-test', description: 'a writable copy of the head' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./clone.js')).dotClone(args.dot, args.new, options, ctx),
);

const mount = defineCommand(
  {
    name: 'mount',
    summary: 'bind-mount a dot or subdot at a path (idempotent)',
    args: { dot: dotArg, path: { description: 'mount target; made if missing', required: true } },
    options: {
      branch: { flags: '--branch <name>', description: 'check this branch out first' },
      force: {
        flags: '--force',
        description:
          'mount over a directory that is not empty (hiding what it holds); with --branch, switch although the active branch has uncommitted changes',
      },
    },
    examples: [{ command: 'knarr dot mount myapp.postgres /var/lib/postgresql', description: 'mount a subdot' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./mount.js')).dotMount(args.dot, args.path, options, ctx),
);

const unmount = defineCommand(
  {
    name: 'unmount',
    summary: 'unmount a subdot, or every mount of a dot',
    args: { dot: dotArg },
    examples: [{ command: 'knarr dot unmount myapp', description: 'unmount all of myapp' }],
    dryRun: 'plans',
  },
  async ({ args }, ctx) => (await import('./mount.js')).dotUnmount(args.dot, ctx),
);

const fsck = defineCommand(
  {
    name: 'fsck',
    summary: 'find drift between the store and the disk; --repair mends it',
    description:
      'Compares every dot record and commit in etcd with what the pools hold, both ways: data deleted outside knarr, branches without a ' +
      'filesystem, commits on disk missing from the store (a crash between snapshot and record), commits in the store whose snapshot is gone, ' +
      'and dots on disk the store does not know; and what commands cut short left on the pools (snapshots without a commit record, temporary ' +
      "files, a pull's staging in knarr-incoming), which pin space. --repair adds or removes records and moves branch heads, and removes those " +
      'leftovers (they hold no commit); it never deletes a commit. Exits 1 while problems remain.',
    options: { repair: { flags: '--repair', description: 'mend the store from the disk where that is safe' } },
    examples: [
      { command: 'knarr dot fsck', description: 'report drift' },
      { command: 'knarr dot fsck --repair', description: 'mend it' },
    ],
    dryRun: 'plans',
  },
  async ({ options }, ctx) => (await import('./fsck.js')).dotFsck(options, ctx),
);

const push = defineCommand(
  {
    name: 'push',
    summary: 'send the commits a remote lacks (incremental)',
    args: { dot: dotOnlyArg, remote: { description: 'remote name, a URL, or a hub remote as REMOTE/USER/NAME', required: true } },
    options: {
      branch: { flags: '--branch <name>', description: 'branch to push (default: the active one)' },
      private: { flags: '--private', description: 'a dot this push creates on a hub is private: pulled only with a token' },
    },
    examples: [
      { command: 'knarr dot push pgdata usb', description: 'push the active branch to the remote "usb"' },
      { command: 'knarr dot push pgdata hub/ann/postgres --private', description: "push to ann's account on a hub as postgres, kept private" },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./push.js')).dotPush(args.dot, args.remote, options, ctx),
);

const pull = defineCommand(
  {
    name: 'pull',
    summary: 'fetch a dot or its new commits from a remote',
    args: { source: { description: 'REMOTE/DOT[@BRANCH], REMOTE/USER/DOT[@BRANCH] (a hub) or URL/DOT[@BRANCH]', required: true } },
    options: {
      as: { flags: '--as <name>', description: 'local dot name (default: the remote dot name)' },
      pool: newDotPoolOption,
      stashOnDivergence: { flags: '--stash-on-divergence', description: 'keep diverged local commits on a new branch instead of refusing' },
    },
    examples: [
      { command: 'knarr dot pull usb/pgdata', description: 'pull master of pgdata' },
      { command: 'knarr dot pull file:///mnt/usb/dots/pgdata@exp --as pgdata-exp', description: 'pull a branch from a URL under another name' },
      { command: 'knarr dot pull hub/justincormack/postgres', description: 'pull a dot from an account on a hub remote' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./pull.js')).dotPull(args.source, options, ctx),
);

const remoteAdd = defineCommand(
  {
    name: 'add',
    summary: 'add a remote',
    args: {
      name: { description: 'remote name', required: true },
      url: { description: 'file:///dir, ssh://[user@]host[:port][/state-dir] or https://hub[:port][/user]', required: true },
    },
    options: {
      tokenFile: { flags: '--token-file <file>', description: "a hub's token: the file holding it (read at each use, never stored)" },
      caFile: { flags: '--ca-file <file>', description: "a hub's https: the PEM CA file to trust" },
    },
    examples: [
      { command: 'knarr dot remote add usb file:///mnt/usb/dots', description: 'a remote on a mounted disk' },
      { command: 'knarr dot remote add hub https://hub.example:7946 --token-file /etc/knarr/hub.token', description: 'a hub, with a token to push' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./remote.js')).remoteAdd(args.name, args.url, options, ctx),
);

const remoteRm = defineCommand(
  {
    name: 'rm',
    summary: 'remove a remote',
    args: { name: { description: 'remote name', required: true, completes: 'remote' } },
    examples: [{ command: 'knarr dot remote rm usb', description: 'forget the remote "usb"' }],
    dryRun: 'plans',
  },
  async ({ args }, ctx) => (await import('./remote.js')).remoteRm(args.name, ctx),
);

const remoteList = defineCommand(
  {
    name: 'list',
    summary: 'list remotes',
    examples: [{ command: 'knarr dot remote list', description: "remotes, their URLs and a hub's token and CA files" }],
    dryRun: 'reads',
  },
  async (_input, ctx) => (await import('./remote.js')).remoteList(ctx),
);

const remote = defineGroup({
  name: 'remote',
  summary: 'named remotes: file:// directories, ssh:// to knarr on another host, or https:// hubs',
  subcommands: [remoteAdd, remoteRm, remoteList],
});

const manifest = defineCommand(
  {
    name: 'manifest',
    summary: 'plumbing: branches and commits of a dot as a remote manifest (JSON)',
    args: { dot: dotOnlyArg },
    examples: [{ command: 'knarr --json dot manifest pgdata', description: 'what a pull from this host would see' }],
    dryRun: 'reads',
  },
  async ({ args }, ctx) => (await import('./wire.js')).dotManifest(args.dot, ctx),
);

const send = defineCommand(
  {
    name: 'send',
    summary: "plumbing: write one commit's stream to stdout",
    args: { dot: dotOnlyArg, commit: { description: 'commit id', required: true } },
    options: {
      base: { flags: '--base <id>', description: 'make the stream incremental from this commit' },
      sealed: { flags: '--sealed', description: 'frame the stream with its size and checksum, for a receive --sealed (what a pull over ssh asks for)' },
    },
    examples: [{ command: 'knarr dot send pgdata 00mwthi50e044888a3 > c.zfs', description: 'a full stream of one commit' }],
    dryRun: 'reads',
  },
  async ({ args, options }, ctx) => (await import('./wire.js')).dotSend(args.dot, args.commit, options, ctx),
);

const receive = defineCommand(
  {
    name: 'receive',
    summary: "plumbing: apply one commit's stream from stdin (fast-forward only)",
    args: { dot: dotOnlyArg },
    options: {
      record: { flags: '--record <json>', description: 'the commit record (JSON)' },
      branch: { flags: '--branch <name>', description: 'branch to add it to (default master)' },
      base: { flags: '--base <id>', description: 'the commit the stream is incremental from' },
      sealed: {
        flags: '--sealed',
        description: 'stdin is a sealed stream (dot send --sealed): refused, with nothing recorded, unless its size and checksum match',
      },
      pool: newDotPoolOption,
    },
    examples: [{ command: 'ssh host2 knarr dot send pgdata C | knarr dot receive pgdata --record "$REC"', description: 'what a pull over ssh does' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./wire.js')).dotReceive(args.dot, options, ctx),
);

const rm = defineCommand(
  {
    name: 'rm',
    summary: 'remove a dot with all its branches and commits',
    args: { dot: dotOnlyArg },
    options: { force: { flags: '--force', description: 'unmount it first if it is mounted' } },
    examples: [{ command: 'knarr dot rm pgdata-test', description: 'remove a dot' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./rm.js')).dotRm(args.dot, options, ctx),
);

export const dot = defineGroup({
  name: 'dot',
  summary: 'versioned data volumes: commit, branch, clone, mount',
  description:
    'A dot is a versioned data volume on a pool: one filesystem per branch, a snapshot per commit. DOT.SUBDOT names a subdot, a directory of the ' +
    'dot committed with it (the bare DOT is its __default__ subdot). Every command names its dot: there is no current dot. ' +
    'Records live in etcd and on disk.',
  subcommands: [
    init,
    list,
    show,
    status,
    diff,
    commit,
    log,
    branch,
    checkout,
    reset,
    clone,
    mount,
    unmount,
    fsck,
    push,
    pull,
    remote,
    manifest,
    send,
    receive,
    rm,
  ],
});
