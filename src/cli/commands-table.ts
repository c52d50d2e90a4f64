import { defineCommand, type CommandDef, type OptionDef } from '../commands/define.js';
import { cluster } from '../commands/cluster/index.js';
import { complete } from '../commands/complete/index.js';
import { daemon } from '../commands/daemon/index.js';
import { doctor } from '../commands/doctor/index.js';
import { dot } from '../commands/dot/index.js';
import { env } from '../commands/env/index.js';
import { etcd } from '../commands/etcd/index.js';
import { events } from '../commands/events/index.js';
import { host } from '../commands/host/index.js';
import { hub } from '../commands/hub/index.js';
import { image } from '../commands/image/index.js';
import { job, ps, service } from '../commands/job/index.js';
import { onboot } from '../commands/onboot/index.js';
import { op } from '../commands/op/index.js';
import { pool } from '../commands/pool/index.js';
import { settingOptions } from '../commands/setting-options.js';

export type { ArgDef, CommandDef, Completes, DryRunMode, Example, NameKind, OptionDef } from '../commands/define.js';
export { completes, longName, shortName, takesValue } from '../commands/define.js';

export const GLOBAL_OPTIONS: OptionDef[] = settingOptions();

/** The command tree: each noun from its definition module (src/commands/<noun>/index.ts). */
export const COMMANDS: CommandDef[] = [
  pool,
  etcd,
  dot,
  hub,
  job,
  ps,
  service,
  host,
  cluster,
  env,
  image,
  op,
  events,
  daemon,
  onboot,
  doctor,
  defineCommand(
    {
      name: 'completion',
      summary: 'print a shell completion script',
      description:
        'Prints the bash, zsh or fish script that completes commands, options and their values, paths where a path goes, and the names of ' +
        'your pools, dots, branches, remotes, jobs, clusters, nodes, images, operations and hosts, which it asks knarr for (with the --etcd, ' +
        '--state-dir and --fleet given on the line; nothing when etcd does not answer within a second or so).',
      args: { shell: { description: 'bash, zsh or fish', required: true, choices: ['bash', 'zsh', 'fish'] } },
      examples: [
        { command: 'knarr completion bash > /etc/bash_completion.d/knarr', description: 'install bash completion' },
        { command: 'knarr completion zsh > /usr/local/share/zsh/site-functions/_knarr', description: 'install zsh completion' },
        { command: 'knarr completion fish > ~/.config/fish/completions/knarr.fish', description: 'install fish completion' },
      ],
      dryRun: 'reads',
    },
    async ({ args }) => (await import('./completion-command.js')).completion(args.shell),
  ),
  complete,
];

/** The commands help, completion, man pages and docs show: all but the hidden ones. */
export function visible(defs: CommandDef[] = COMMANDS): CommandDef[] {
  return defs.filter((d) => !d.hidden).map((d) => (d.subcommands ? { ...d, subcommands: visible(d.subcommands) } : d));
}

/** Every leaf command with its path (hidden ones too: the dry-run walk runs them), for generators and tests. */
export function leafCommands(defs: CommandDef[] = COMMANDS, prefix: string[] = []): { path: string[]; def: CommandDef }[] {
  return defs.flatMap((d) => (d.subcommands ? leafCommands(d.subcommands, [...prefix, d.name]) : [{ path: [...prefix, d.name], def: d }]));
}
