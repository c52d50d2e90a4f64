import { readdir, readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { subnetGateway } from '../core/cluster.js';
import { ExternalCommandError } from '../core/errors.js';
import { forgetBridge } from './firewall.js';
import type { Runner } from './runner.js';
import { dropVxlan } from './vxlan.js';
import { vxlanDevice } from '../core/vxlan.js';

/** The host's bridge, up, with the subnet's gateway address on it; read from the kernel first, so a bridge in place costs no process. */
export async function ensureBridge(runner: Runner, bridge: string, subnet: string): Promise<void> {
  const flags = Number((await readFile(`/sys/class/net/${bridge}/flags`, 'utf8').catch(() => '0')).trim());
  const hasGateway = (networkInterfaces()[bridge] ?? []).some((a) => a.family === 'IPv4' && a.address === subnetGateway(subnet));
  // IFF_UP is bit 0 of the interface flags.
  if (hasGateway && (flags & 1) === 1 && !runner.dryRun) return;
  const gateway = `${subnetGateway(subnet)}/24`;
  const show = await runner.run(['ip', '-o', 'addr', 'show', 'dev', bridge], { mutates: false, okExitCodes: [1, 255] });
  if (show.exitCode !== 0) {
    const argv = ['ip', 'link', 'add', bridge, 'type', 'bridge'];
    const added = await runner.run(argv, { okExitCodes: [2] });
    // Two creates at once on a host with no bridge yet: the one that lost the race finds it made.
    if (added.exitCode === 2 && !/File exists/.test(added.stderr)) throw new ExternalCommandError(argv, 2, added.stderr);
  }
  if (!show.stdout.includes(` ${gateway} `)) await runner.run(['ip', 'addr', 'add', gateway, 'dev', bridge], { okExitCodes: [2] });
  await runner.run(['ip', 'link', 'set', bridge, 'up']);
}

/** The bridge goes, with its firewall rules and its VXLAN device, unless something else is attached to it. */
export async function dropBridgeIfIdle(runner: Runner, env: NodeJS.ProcessEnv, bridge: string): Promise<void> {
  const ports = await readdir(`/sys/class/net/${bridge}/brif`).catch(() => null);
  const overlay = vxlanDevice(bridge);
  if (ports?.some((p) => p !== overlay)) return;
  await forgetBridge(runner, env, bridge);
  if (ports?.includes(overlay)) await dropVxlan(runner, bridge);
  if (ports !== null) await runner.run(['ip', 'link', 'del', bridge], { okExitCodes: [1] });
}
