import type { CommandDef } from '../define.js';
import { settingFlags, settingOptions } from '../setting-options.js';

export const daemon: CommandDef = {
  name: 'daemon',
  summary: 'the agent: registers this host, serves the token-protected API',
  description:
    'Registers this host in etcd under a lease (a host whose lease lapses is down) with its address, tags, capacity, load and docker endpoint, ' +
    'keeps them fresh, and serves an HTTP API on --listen where every request needs the bearer token from --token-file (made, 0600, when missing). ' +
    "Every flag can also be set in the environment (KNARR_DAEMON_*) or the config file's daemon: section (flag, then environment, then file). " +
    'SIGTERM drains (no new foreground jobs or operations; the running ones get --drain-timeout to end, a second SIGTERM cuts it short), gives the ' +
    'lease back and exits 0, its daemonized jobs running on and staying placed here for --restart-grace so an agent started again adopts ' +
    'them (--leave-on-stop: they move at once); SIGHUP reloads the config file, the token file and the TLS certificate, applying ' +
    'tags and prune at once (tags set ' +
    'with knarr host tag stay) and naming any other changed setting as needing a restart; a bad file changes nothing. At each start it joins the ' +
    "fleet through docklet's handshake (waiting, init, work, ok), proving the shared data directory with --share, and prepares for --mode recovery " +
    "or new; then it keeps this host's daemonized jobs as their intents say, runs this host's operations, and forwards " +
    'linked services (the ambassador).',
  options: settingOptions('daemon'),
  examples: [{ command: 'knarr daemon --tags ssd,zone=eu --listen 10.0.0.5:7946', description: 'run the agent' }],
  dryRun: 'refuses',
  // Its flags are the settings table's: the table's parsers check them, and resolveDaemonSettings joins them with env and the file.
  run: async (raw, ctx) => (await import('../daemon.js')).daemon(ctx, settingFlags('daemon', raw.opts)),
};
