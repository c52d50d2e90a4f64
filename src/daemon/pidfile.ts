import { readFile } from 'node:fs/promises';
import { hostId } from '../host/identity.js';

/** What the agent notes in its pid file. */
export interface AgentPidFile {
  pid: number;
  name: string;
  address: string;
  fleet: string;
}

/** The local agent from its pid file, if its process still runs. */
export async function localAgent(pidFile: string): Promise<AgentPidFile | null> {
  try {
    const info = JSON.parse(await readFile(pidFile, 'utf8')) as AgentPidFile;
    process.kill(info.pid, 0);
    return info;
  } catch {
    return null;
  }
}

/** This host's name in the fleet: its running agent's (--name), else the hostname. */
export async function thisHost(stateDir: string): Promise<string> {
  return (await localAgent(`${stateDir}/agent.json`))?.name ?? hostId();
}
