import { SETTINGS, longFlag, type SettingArea, type SettingDef } from '../core/settings.js';

export const AREAS: Record<SettingArea, string> = {
  global: 'Global',
  pool: 'Pools',
  etcd: 'The managed etcd',
  cluster: 'LXC clusters',
  scheduler: 'Scheduler',
  jobs: "Jobs on other hosts (the agents' API)",
  dots: 'Dots and ssh:// remotes',
  daemon: 'The agent (knarr daemon)',
};

/** Where the setting's flag is: a global one, or the command's. */
export function flagText(s: SettingDef): string {
  if (s.flag === undefined) return '';
  const neg = s.kind === 'boolean' ? `, --no-${longFlag(s)!.slice(2)}` : '';
  return `${s.command ? `${s.command} ` : ''}${s.flag}${neg}`;
}

const cell = (t: string) => t.replace(/\|/g, '\\|');
const code = (t: string) => (t === '' ? '' : `\`${cell(t)}\``);

/** docs/configuration.md: every setting of the table, by area. */
export function configurationDoc(): string {
  const lines = [
    '<!-- generated from the settings table (src/core/settings.ts) by `npm run gen`; do not edit -->',
    '# Configuration',
    '',
    'Every setting is resolved once per command, in this order: **flag, then `KNARR_*` environment variable, then the YAML config file, then the default.**',
    'The config file is `/etc/knarr/config.yaml` when it exists, or the one named by `--config` / `KNARR_CONFIG` (which must exist).',
    '',
    '- Boolean variables take `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`; anything else is a usage error naming the variable.',
    '- A boolean flag has a `--no-` form that switches off what the environment or the file switched on (`KNARR_DRY_RUN=1 knarr --no-dry-run ...`).',
    '- `--json` (or `KNARR_JSON=1`) wins over an output format given at the same level or below; `--no-json` sets `KNARR_JSON` aside.',
    '- A bad value is a usage error (exit 2) naming where it came from: the flag, the variable, or the file and key.',
    '- An empty variable counts as unset, except `KNARR_ETCD`: an empty `--etcd` or `KNARR_ETCD` is an error (an unset variable in a script must ' +
      'not quietly start a new, empty local store). Endpoints are `http(s)://HOST:PORT`: a path, a query or a `user:password@` is refused (give ' +
      '`--etcd-user` and a password file).',
    '- A relative path is taken from the current directory, except a file path in the config file (`etcdCa`, `etcdCert`, `etcdKey`, ' +
      '`etcdPasswordFile`, or under `daemon:`, `jobs:` or `dots:`), which is ' +
      "taken from the file's directory.",
    '- Unknown keys and wrong types in the file are usage errors naming the file and key.',
    '',
  ];
  for (const [area, title] of Object.entries(AREAS) as [SettingArea, string][]) {
    const rows = SETTINGS.filter((s) => s.area === area);
    if (rows.length === 0) continue;
    lines.push(`## ${title}`, '', '| config key | flag | environment | default | meaning |', '|---|---|---|---|---|');
    for (const s of rows) {
      const choices = s.choices ? ` (one of: ${s.choices.join(', ')})` : '';
      lines.push(`| ${s.inFile === false ? '' : code(s.key)} | ${code(flagText(s))} | ${code(s.env)} | ${cell(s.defaultText)} | ${cell(s.help + choices)} |`);
    }
    lines.push('');
  }
  lines.push(
    '## Variables of other tools',
    '',
    'knarr passes its environment to the commands it runs; it reads these variables itself:',
    '',
    '| variable | meaning |',
    '|---|---|',
    "| `DOCKER_HOST` | a `unix://` socket: the engine of `knarr job` (no agent), of `knarr daemon`, and of `knarr doctor`'s check; `tcp://`, " +
      "`ssh://` and other schemes are refused (exit 2), never replaced by the local socket: a job reaches another host's engine through that " +
      "host's agent. knarr speaks the engine's newest API version up to 1.47, and needs 1.41 (docker 20.10) or newer |",
    '| `PATH` | where the outside tools (zfs, etcd, lxc-*, iptables, ...) are found |',
    '| `NO_COLOR` | no colour in errors on a terminal |',
    '| `CI`, `TERM=dumb` | no spinner or progress line on stderr |',
    '',
    '## Example file',
    '',
    '```yaml',
    ...exampleYaml(),
    '```',
    '',
  );
  return lines.join('\n');
}

/** The config file with every key at its default (commented out when it has none). */
function exampleYaml(): string[] {
  const out: string[] = ['# /etc/knarr/config.yaml'];
  let section = '';
  for (const s of SETTINGS) {
    if (s.inFile === false) continue;
    const [head, sub] = s.key.includes('.') ? s.key.split('.') : [null, s.key];
    if (head !== null && head !== section) out.push(`${head}:`);
    section = head ?? '';
    const indent = head === null ? '' : '  ';
    const value = s.default === undefined ? null : Array.isArray(s.default) ? `[${s.default.join(', ')}]` : String(s.default);
    out.push(value === null ? `${indent}# ${sub}:  (default: ${s.defaultText})` : `${indent}${sub}: ${value}`);
  }
  return out;
}
