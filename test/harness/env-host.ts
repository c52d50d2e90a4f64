import { writeFileSync } from 'node:fs';
import { spawnAgent, stopAgents, type AgentUnderTest } from './agent.js';
import { startDockerd, type Dockerd } from './dockerd.js';
import { startEtcd, type EtcdInstance } from './etcd.js';
import { freePort } from './ports.js';
import { tempDir, type TempDir } from './tmp.js';

/** What `knarr env show --json` says of a member. */
export interface EnvMemberShown {
  name: string;
  role: string;
  kind: string;
  host: string | null;
  address: string | null;
  state: string;
}

/** One host for environment tests: a private dockerd, an etcd, and the environment a CLI and an agent of it share. */
export interface EnvHost {
  tmp: TempDir;
  d: Dockerd;
  etcd: EtcdInstance;
  stateDir: string;
  /** The CLI's environment: the engine, the store, the agent's state directory and token. */
  env: Record<string, string>;
  /** Starts the host's agent (named name, on the same port each time) and waits until it is up. */
  startAgent(): Promise<AgentUnderTest>;
  /** The web role the environment tests share: busybox httpd serving its container's hostname on any free host port, a balancer from its second member. */
  webRole(): string;
  stop(agents: (AgentUnderTest | null)[]): Promise<void>;
}

export async function startEnvHost(prefix: string, name: string, extraEnv: Record<string, string> = {}): Promise<EnvHost> {
  const tmp = await tempDir(prefix);
  const d = await startDockerd(tmp.path);
  const etcd = await startEtcd();
  const stateDir = `${tmp.path}/state`;
  const listen = `127.0.0.1:${await freePort()}`;
  const tokenFile = `${tmp.path}/agent.token`;
  writeFileSync(tokenFile, `${name}-test-token-0123456789abcdef\n`, { mode: 0o600 });
  const env = { ...d.env, KNARR_ETCD: etcd.url, KNARR_STATE_DIR: stateDir, KNARR_AGENT_TOKEN_FILE: tokenFile, ...extraEnv };
  return {
    tmp,
    d,
    etcd,
    stateDir,
    env,
    async startAgent() {
      const agent = spawnAgent({ etcd: etcd.url, stateDir, name, listen, env: { ...d.env }, tokenFile });
      await agent.up(60_000);
      return agent;
    },
    webRole: () =>
      [
        'name: web',
        'priority: 20',
        'port: 80',
        'requires: [{role: balancer, from: 2}]',
        'job:',
        `  image: ${d.image}`,
        "  command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www']",
        '  ports: ["0:80"]',
        '',
      ].join('\n'),
    async stop(agents) {
      await stopAgents(agents);
      await d.stop();
      await etcd.stop();
      await tmp.cleanup();
    },
  };
}
