import { ExternalCommandError } from '../core/errors.js';
import { gatewayGuardArgv, guardTable, planFloodPeers, vxlanDevice, VXLAN_MTU } from '../core/vxlan.js';
import type { Runner } from './runner.js';

/** The all-zero MAC: the flood entry's, where the kernel sends broadcasts and unknown unicast. */
const FLOOD_MAC = '00:00:00:00:00:00';

export interface VxlanSpec {
  bridge: string;
  vni: number;
  port: number;
  /** This host's underlay address: the VXLAN packets' source. */
  local: string;
  /** The subnet gateways on the bridge, each answered only by this host's bridge. */
  gateways: readonly string[];
}

interface LinkInfo {
  master?: string;
  operstate?: string;
  mtu?: number;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number } };
}

async function linkInfo(runner: Runner, dev: string): Promise<LinkInfo | null> {
  const r = await runner.run(['ip', '-d', '-j', 'link', 'show', 'dev', dev], { mutates: false, okExitCodes: [1, 255] });
  if (r.exitCode !== 0) return null;
  return (JSON.parse(r.stdout) as LinkInfo[])[0] ?? null;
}

/**
 * The bridge's VXLAN device as spec says, on the bridge and up, and its gateway guard; a device made
 * with other settings (another VNI, port or address) is made again. Says what it did.
 */
export async function ensureVxlan(runner: Runner, spec: VxlanSpec): Promise<'made' | 'remade' | 'kept'> {
  const dev = vxlanDevice(spec.bridge);
  const info = await linkInfo(runner, dev);
  const data = info?.linkinfo?.info_data;
  const same = info !== null && info.linkinfo?.info_kind === 'vxlan' && data?.id === spec.vni && data?.local === spec.local && data?.port === spec.port;
  if (info !== null && !same) await runner.run(['ip', 'link', 'del', dev], { okExitCodes: [1] });
  if (!same) {
    const argv = ['ip', 'link', 'add', dev, 'type', 'vxlan', 'id', String(spec.vni), 'local', spec.local, 'dstport', String(spec.port)];
    const added = await runner.run(argv, { okExitCodes: [2] });
    // Two agents' passes at once: the one that lost the race finds it made.
    if (added.exitCode === 2 && !/File exists/.test(added.stderr)) throw new ExternalCommandError(argv, 2, added.stderr);
  }
  if (!same || info?.mtu !== VXLAN_MTU) await runner.run(['ip', 'link', 'set', dev, 'mtu', String(VXLAN_MTU)]);
  if (!same || info?.master !== spec.bridge) await runner.run(['ip', 'link', 'set', dev, 'master', spec.bridge]);
  if (!same || info?.operstate === 'DOWN') await runner.run(['ip', 'link', 'set', dev, 'up']);
  if (spec.gateways.length > 0) await runner.run(gatewayGuardArgv(dev, spec.gateways));
  return info === null ? 'made' : same ? 'kept' : 'remade';
}

/** The endpoints the device floods to now. */
export async function floodPeers(runner: Runner, bridge: string): Promise<string[]> {
  const r = await runner.run(['bridge', '-j', 'fdb', 'show', 'dev', vxlanDevice(bridge)], { mutates: false, okExitCodes: [1, 255] });
  if (r.exitCode !== 0 || !r.stdout.trim()) return [];
  const entries = JSON.parse(r.stdout) as { mac?: string; dst?: string }[];
  return entries.filter((e) => e.mac === FLOOD_MAC && e.dst).map((e) => e.dst!);
}

/** Flood entries for exactly the wanted endpoints (this host's own left out); returns what changed. */
export async function syncFloodPeers(runner: Runner, bridge: string, wanted: readonly string[], self: string): Promise<{ add: string[]; remove: string[] }> {
  const dev = vxlanDevice(bridge);
  const plan = planFloodPeers(await floodPeers(runner, bridge), wanted, self);
  // append, not add: one all-zero MAC has an entry per endpoint. Exit 2 is an entry already there (or gone).
  for (const ip of plan.add) await runner.run(['bridge', 'fdb', 'append', FLOOD_MAC, 'dev', dev, 'dst', ip], { okExitCodes: [2] });
  for (const ip of plan.remove) await runner.run(['bridge', 'fdb', 'del', FLOOD_MAC, 'dev', dev, 'dst', ip], { okExitCodes: [2] });
  return plan;
}

/** The bridge's VXLAN device and its guard go (no multi-host cluster left here); safe to repeat. */
export async function dropVxlan(runner: Runner, bridge: string): Promise<void> {
  const dev = vxlanDevice(bridge);
  await runner.run(['nft', 'delete', 'table', 'bridge', guardTable(dev)], { okExitCodes: [1] });
  if ((await linkInfo(runner, dev)) !== null) await runner.run(['ip', 'link', 'del', dev], { okExitCodes: [1] });
}
