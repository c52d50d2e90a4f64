import { defineCommand, defineGroup } from '../define.js';

const opArg = (description: string) => ({ op: { description, required: true } }) as const;

const list = defineCommand(
  {
    name: 'list',
    summary: 'operations, oldest first',
    options: { active: { flags: '--active', description: 'only those not ended' } },
    examples: [{ command: 'knarr op list --active', description: 'what is queued or running' }],
    dryRun: 'reads',
  },
  async ({ options }, ctx) => (await import('../op.js')).opList(options, ctx),
);

const show = defineCommand(
  {
    name: 'show',
    summary: 'one operation, whole',
    args: opArg('operation id (op-000042)'),
    examples: [{ command: 'knarr --json op show op-000042', description: 'as JSON' }],
    dryRun: 'reads',
  },
  async ({ args }, ctx) => (await import('../events/recent.js')).withRecentEvents(ctx, 'op', args.op, (await import('../op.js')).opShow(args.op, ctx)),
);

const wait = defineCommand(
  {
    name: 'wait',
    summary: 'wait until an operation ends; exit 0 if done, 1 if it failed or was cancelled',
    args: opArg('operation id'),
    options: { timeout: { flags: '--timeout <seconds>', description: 'give up waiting after this long' } },
    examples: [{ command: 'knarr op wait op-000042', description: 'wait for it' }],
    dryRun: 'reads',
  },
  async ({ args, options }, ctx) => (await import('../op.js')).opWait(args.op, options, ctx),
);

const cancel = defineCommand(
  {
    name: 'cancel',
    summary: 'cancel: a queued operation ends, a running one stops at its next step and is undone',
    args: opArg('operation id'),
    examples: [{ command: 'knarr op cancel op-000042', description: 'cancel it' }],
    dryRun: 'plans',
  },
  async ({ args }, ctx) => (await import('../op.js')).opCancel(args.op, ctx),
);

const run = defineCommand(
  {
    name: 'run',
    summary: "run this host's pending operations here (what --detach starts with no agent)",
    args: opArg('operation id'),
    examples: [{ command: 'knarr op run op-000042', description: 'run it in this process' }],
    dryRun: 'refuses',
  },
  async ({ args }, ctx) => (await import('../op.js')).opRun(args.op, ctx),
);

const gc = defineCommand(
  {
    name: 'gc',
    summary: 'remove operations that ended (done, failed, cancelled) and job history older than an age',
    description:
      "Queued and running operations always stay, and so does each job's newest start in its history (where a fixed job belongs). Under --dry-run " +
      'it lists what would go and removes nothing. Agents do the same on their own with the opRetention setting (KNARR_OP_RETENTION, ' +
      'default 7d; 0 keeps everything).',
    options: { olderThan: { flags: '--older-than <age>', description: 'how old what goes is: 90s, 30m, 12h, 7d, 2w (default 7d)' } },
    examples: [
      { command: 'knarr op gc --older-than 30d', description: 'remove what ended more than 30 days ago' },
      { command: 'knarr --dry-run op gc', description: 'list what is older than 7 days' },
    ],
    dryRun: 'plans',
  },
  async ({ options }, ctx) => (await import('../op.js')).opGc(options, ctx),
);

export const op = defineGroup({
  name: 'op',
  summary: 'durable operations: what cluster commands do, step by step',
  description:
    'Every fleet-level change is written to etcd as an operation (id, kind, arguments, host, status queued/running/done/failed/cancelled, progress, ' +
    "error, times) before anything runs. The host's agent claims and runs it; with no agent, the CLI runs its own host's operations inline. One " +
    'interrupted by a crash is resumed (its steps are idempotent) by the next runner on that host, or undone if it was cancelled.',
  subcommands: [list, show, wait, cancel, run, gc],
});
