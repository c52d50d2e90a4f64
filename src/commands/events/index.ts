import { EVENT_KINDS } from '../../core/events.js';
import { defineCommand } from '../define.js';

export const events = defineCommand(
  {
    name: 'events',
    summary: 'what happened in the fleet: jobs, hosts, operations, dots, clusters (-f to follow)',
    description:
      'Jobs started, moved to another host and exited; hosts up and down; operations queued, their steps and their end; dot commits, branches, ' +
      'clones, pushes and pulls; clusters created, scaled and deleted. The fleet keeps its last 1000 events in etcd. With -f, new events are ' +
      'printed as they happen until interrupted (exit 0); --json then prints one JSON object a line.',
    options: {
      follow: { flags: '-f, --follow', description: 'keep printing new events as they happen' },
      host: { flags: '--host <host>', description: 'only events on this host' },
      kind: { flags: '--kind <kind>', description: 'only events of this kind', choices: EVENT_KINDS },
      since: { flags: '--since <age>', description: 'only events newer than this: 90s, 30m, 12h, 7d, or an ISO time' },
      tail: { flags: '-n, --tail <count>', description: 'only the last COUNT events (default 50; 0 for all kept)' },
    },
    examples: [
      { command: 'knarr events', description: 'the last 50 events' },
      { command: 'knarr events -f --kind job', description: 'follow what happens to jobs' },
      { command: 'knarr events --host h1 --since 1h', description: 'what happened on h1 in the last hour' },
    ],
    dryRun: 'reads',
  },
  async ({ options }, ctx) => (await import('./list.js')).eventsList(options, ctx),
);
