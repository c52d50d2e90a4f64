import { readFile } from 'node:fs/promises';
import type { Runner } from './runner.js';
import { findExecutable } from './which.js';

/** docker's chain for the operator's own rules: FORWARD jumps to it first, and docker never flushes it. */
export const DOCKER_USER = 'DOCKER-USER';

/** The two rules that let a bridge's traffic through FORWARD: into it and out of it (node to node is both). */
export function bridgeRules(bridge: string): string[][] {
  const tag = ['-m', 'comment', '--comment', `knarr bridge ${bridge}`, '-j', 'ACCEPT'];
  return [
    ['-i', bridge, ...tag],
    ['-o', bridge, ...tag],
  ];
}

const iptables = (args: string[]) => ['iptables', '-w', ...args];

/** FORWARD's rules (-S); null when iptables cannot list them (not root, or no netfilter in this kernel): then it filters nothing knarr could open. */
async function listForward(runner: Runner): Promise<string | null> {
  const r = await runner.run(iptables(['-S', 'FORWARD']), { mutates: false, okExitCodes: [1, 2, 3, 4] });
  return r.exitCode === 0 ? r.stdout : null;
}

async function chainExists(runner: Runner, chain: string): Promise<boolean> {
  return (await runner.run(iptables(['-n', '-L', chain]), { mutates: false, okExitCodes: [1, 2] })).exitCode === 0;
}

async function ruleExists(runner: Runner, chain: string, rule: string[]): Promise<boolean> {
  return (await runner.run(iptables(['-C', chain, ...rule]), { mutates: false, okExitCodes: [1, 2] })).exitCode === 0;
}

/** Where knarr's rules go: DOCKER-USER when docker made it, else FORWARD. */
export async function forwardChain(runner: Runner): Promise<string> {
  return (await chainExists(runner, DOCKER_USER)) ? DOCKER_USER : 'FORWARD';
}

export function haveIptables(env: NodeJS.ProcessEnv): boolean {
  return findExecutable('iptables', env.PATH) !== null;
}

/**
 * ACCEPT rules for a knarr bridge at the top of DOCKER-USER (or FORWARD): dockerd sets FORWARD's
 * policy to DROP and the kernel passes bridged frames through iptables, which would cut nodes off
 * from each other. Each rule is checked first, so a re-run adds nothing.
 */
export async function allowBridge(runner: Runner, env: NodeJS.ProcessEnv, bridge: string): Promise<void> {
  if (!haveIptables(env) || (await listForward(runner)) === null) return;
  const chain = await forwardChain(runner);
  for (const rule of bridgeRules(bridge)) if (!(await ruleExists(runner, chain, rule))) await runner.run(iptables(['-I', chain, '1', ...rule]));
}

/** Removes a bridge's rules from both chains (a rule made before docker started sits in FORWARD). */
export async function forgetBridge(runner: Runner, env: NodeJS.ProcessEnv, bridge: string): Promise<void> {
  if (!haveIptables(env) || (await listForward(runner)) === null) return;
  for (const chain of [DOCKER_USER, 'FORWARD']) {
    if (!(await chainExists(runner, chain))) continue;
    for (const rule of bridgeRules(bridge)) {
      // A rule added twice by hand goes too; bounded, so a -D that does not take cannot loop.
      for (let i = 0; i < 8 && (await ruleExists(runner, chain, rule)); i++) {
        await runner.run(iptables(['-D', chain, ...rule]));
        // Under --dry-run the rule stays: one planned -D says it.
        if (runner.dryRun) break;
      }
    }
  }
}

/** What the host's firewall does to a bridge's traffic. */
export interface BridgeFirewall {
  /** FORWARD's policy drops, and bridged frames go through iptables. */
  blocking: boolean;
  /** knarr's two rules are in DOCKER-USER or FORWARD. */
  allowed: boolean;
  policy: string;
}

export async function bridgeFirewall(runner: Runner, bridge: string): Promise<BridgeFirewall | null> {
  const listed = await listForward(runner);
  if (listed === null) return null;
  const policy = /^-P FORWARD (\S+)/m.exec(listed)?.[1] ?? 'ACCEPT';
  const nf = (await readFile('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8').catch(() => '0')).trim() === '1';
  let allowed = false;
  for (const chain of [DOCKER_USER, 'FORWARD']) {
    if (allowed || !(await chainExists(runner, chain))) continue;
    let all = true;
    for (const rule of bridgeRules(bridge)) all = all && (await ruleExists(runner, chain, rule));
    allowed = all;
  }
  return { blocking: policy === 'DROP' && nf, allowed, policy };
}
