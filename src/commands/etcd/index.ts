import { defineCommand, defineGroup } from '../define.js';

const dataPoolOption = { flags: '--pool <name>', description: 'pool whose knarr-etcd volume holds the data (default: the default pool, if any)' } as const;

const up = defineCommand(
  {
    name: 'up',
    summary: 'start the managed etcd and wait until healthy (idempotent)',
    options: {
      pool: dataPoolOption,
      clientPort: { flags: '--client-port <port>', description: 'client port on 127.0.0.1 (default 2379)' },
      peerPort: { flags: '--peer-port <port>', description: 'peer port on 127.0.0.1 (default 2380)' },
      advertise: {
        flags: '--advertise <ip>',
        description: 'start the first member of a cluster on this IP, client and peer over TLS, with a fleet CA and a join token',
      },
      name: { flags: '--name <name>', description: 'member name with --advertise (default: the hostname)' },
    },
    examples: [
      { command: 'knarr etcd up', description: 'start etcd with its data on the default pool' },
      { command: 'knarr etcd up --advertise 10.0.0.1', description: 'the first member of a cluster other hosts join' },
      { command: 'knarr etcd up --client-port 12379 --peer-port 12380', description: 'on other ports' },
    ],
    dryRun: 'plans',
  },
  async ({ options }, ctx) => (await import('./up.js')).etcdUp(options, ctx),
);

const down = defineCommand(
  {
    name: 'down',
    summary: 'stop the managed etcd; its data stays',
    examples: [{ command: 'knarr etcd down', description: 'stop etcd' }],
    dryRun: 'plans',
  },
  async (_input, ctx) => (await import('./down.js')).etcdDown(ctx),
);

const status = defineCommand(
  {
    name: 'status',
    summary: 'process, health and data place of the etcd in use',
    examples: [{ command: 'knarr --json etcd status', description: 'status as JSON' }],
    dryRun: 'reads',
  },
  async (_input, ctx) => (await import('./status.js')).etcdStatus(ctx),
);

const backup = defineCommand(
  {
    name: 'backup',
    summary: "a snapshot of the fleet's store to a file (the managed etcd, or --etcd)",
    description:
      'Takes a consistent snapshot with etcdctl from the running managed etcd, or from the first healthy --etcd endpoint, and reads its revision ' +
      "and key count back. The file is written under a temporary name and renamed when whole, mode 0600: it holds the fleet's tokens.",
    args: { file: { required: true, description: 'snapshot file to write' } },
    options: { force: { flags: '--force', description: 'replace FILE if it exists' } },
    examples: [
      { command: 'knarr etcd backup /srv/backup/knarr-etcd.db', description: 'snapshot the store' },
      { command: 'knarr --etcd http://10.0.0.1:2379 etcd backup fleet.db', description: "snapshot a fleet's external etcd" },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./backup.js')).etcdBackup(args.file, options, ctx),
);

const restore = defineCommand(
  {
    name: 'restore',
    summary: "replace the managed etcd's data with a snapshot's (needs --yes over existing data)",
    description:
      'Unpacks the snapshot (checking its checksum) beside the current data, stops the managed etcd, puts the current data aside as ' +
      'member.before-restore-<time> in the data directory, moves the restored data in and starts etcd again. A damaged snapshot changes nothing; a ' +
      "restore cut short is finished by the next start. On a new host it brings up etcd with the snapshot's data.",
    args: { file: { required: true, description: 'snapshot file written by knarr etcd backup (or etcdctl snapshot save)' } },
    options: {
      yes: { flags: '--yes', description: 'confirm that the current data is to be replaced (it is kept aside)' },
      pool: { flags: '--pool <name>', description: 'on a host with no etcd yet: pool whose knarr-etcd volume gets the data (default: the default pool)' },
      clientPort: { flags: '--client-port <port>', description: 'client port to start etcd on (default: the last one, else 2379)' },
      peerPort: { flags: '--peer-port <port>', description: 'peer port to start etcd on (default: the last one, else 2380)' },
    },
    examples: [
      { command: 'knarr etcd restore /srv/backup/knarr-etcd.db --yes', description: "roll the fleet's store back to the snapshot" },
      { command: 'knarr --dry-run etcd restore /srv/backup/knarr-etcd.db', description: 'show the steps' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./restore.js')).etcdRestore(args.file, options, ctx),
);

const compact = defineCommand(
  {
    name: 'compact',
    summary: "drop the store's history before its current revision",
    description:
      'Compacts the history of the managed etcd (or the --etcd endpoints) up to the current revision, as etcdctl compact does; the managed ' +
      'etcd also compacts on its own, keeping an hour of history. The freed space is reused by etcd; knarr etcd defrag gives it back to the disk.',
    examples: [{ command: 'knarr etcd compact && knarr etcd defrag --disarm', description: 'free space after a NOSPACE alarm' }],
    dryRun: 'plans',
  },
  async (_input, ctx) => (await import('./maintain.js')).etcdCompact(ctx),
);

const defrag = defineCommand(
  {
    name: 'defrag',
    summary: 'give the space compaction freed back to the disk, member by member',
    description:
      'Defragments each endpoint of the managed etcd (or every --etcd endpoint) in turn, as etcdctl defrag does, and shows the database size ' +
      'before and after against its quota. A member answers nothing while it defragments. With --disarm it then clears the alarms (NOSPACE), ' +
      'as etcdctl alarm disarm does, so writes are taken again.',
    options: { disarm: { flags: '--disarm', description: 'clear the alarms (NOSPACE) after the defragmentation' } },
    examples: [{ command: 'knarr etcd defrag', description: 'defragment the store' }],
    dryRun: 'plans',
  },
  async ({ options }, ctx) => (await import('./maintain.js')).etcdDefrag(options, ctx),
);

const join = defineCommand(
  {
    name: 'join',
    summary: 'make this host a member of a managed etcd cluster (learner, then voter); idempotent',
    description:
      "Checks the CA the member at URL presents against the token's hash, signs itself a client certificate with the token's secret, reads the " +
      "fleet CA's key from etcd (sealed with the same secret), issues this member's certificates, adds it as a learner (one host at a time), " +
      'starts it and promotes it once it has caught up. Run again, or after a reboot, it restarts the member on its data.',
    args: { url: { required: true, description: "a member's client URL, https://IP:PORT" } },
    options: {
      token: { flags: '--token <token>', description: 'the join token from `knarr etcd token` on a member', required: true },
      advertise: { flags: '--advertise <ip>', description: "this host's IP for the other members (default: the address that reaches URL)" },
      name: { flags: '--name <name>', description: 'member name (default: the hostname)' },
      pool: dataPoolOption,
      clientPort: { flags: '--client-port <port>', description: 'client port (default 2379)' },
      peerPort: { flags: '--peer-port <port>', description: 'peer port (default 2380)' },
    },
    examples: [{ command: 'knarr etcd join https://10.0.0.1:2379 --token "$(cat token)"', description: 'join the cluster' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./join.js')).etcdJoin(args.url, options, ctx),
);

const members = defineCommand(
  {
    name: 'members',
    summary: "the etcd cluster's members: URLs, leader, learner, health, db size",
    examples: [{ command: 'knarr etcd members', description: 'list the members' }],
    dryRun: 'reads',
  },
  async (_input, ctx) => (await import('./members.js')).etcdMembers(ctx),
);

const remove = defineCommand(
  {
    name: 'remove',
    summary: 'remove a member from the etcd cluster (refuses to leave it below quorum)',
    args: { member: { required: true, description: 'member name or hex ID (knarr etcd members)' } },
    options: { force: { flags: '--force', description: 'remove it even if the healthy members left are below quorum' } },
    examples: [{ command: 'knarr etcd remove host3', description: 'drop member host3' }],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./remove.js')).etcdRemove(args.member, options, ctx),
);

const token = defineCommand(
  {
    name: 'token',
    summary: 'print the join token for `knarr etcd join` (the CA hash and a secret)',
    description: 'The token lets a host join the etcd cluster and so read and write the whole store: keep it as secret as a root password.',
    examples: [{ command: 'knarr etcd token', description: 'print the token' }],
    dryRun: 'reads',
  },
  async (_input, ctx) => (await import('./token.js')).etcdToken(ctx),
);

export const etcd = defineGroup({
  name: 'etcd',
  summary: 'the knarr-managed etcd: one local member, or a cluster of hosts over TLS',
  description:
    'knarr keeps fleet state in etcd. With no --etcd, commands use a local etcd that knarr runs itself, with its data on the pool (volume ' +
    'knarr-etcd) or, when there is no pool, under the state directory. It listens on 127.0.0.1 and on a unix socket in <state-dir>/etcd. ' +
    'With `etcd up --advertise IP` it is the first member of a cluster over TLS that other hosts join with `etcd join`.',
  subcommands: [up, down, status, join, members, remove, token, backup, restore, compact, defrag],
});
