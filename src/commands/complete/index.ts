import { defineCommand, NAME_KINDS } from '../define.js';

/** `knarr __complete KIND [CONTEXT]`: the names shell completion offers, one a line; hidden from help and docs. */
export const complete = defineCommand(
  {
    name: '__complete',
    summary: 'names for shell completion, one a line (nothing on any error)',
    hidden: true,
    args: {
      kind: { description: `what to name: ${NAME_KINDS.join(', ')}`, required: true, completes: 'none' },
      context: { description: 'the dot of a branch, the cluster of a node', completes: 'none' },
    },
    dryRun: 'reads',
  },
  async ({ args }, ctx) => (await import('./names.js')).completeNames(args.kind, args.context, ctx),
);
