import { ValidationError } from './errors.js';

/**
 * One layer-2 network for the clusters across hosts, as flannel's vxlan backend: a VXLAN device on
 * every host's cluster bridge, and for every other host a flood entry (head-end replication, no
 * multicast), so a node's broadcast reaches every host and replies are learned per MAC.
 */

/** IANA's VXLAN port. */
export const VXLAN_PORT = 4789;
/** The fleet's one VNI for the cluster bridges: ours alone on these hosts. */
export const VXLAN_VNI = 7946;
/** A 1500-byte underlay less VXLAN's 50 bytes: the nodes' eth0 has the same MTU. */
export const VXLAN_MTU = 1450;

/** What each host publishes for the others: where its VXLAN endpoint is. */
export interface VtepRecord {
  host: string;
  /** The host's underlay address, as the other hosts reach it. */
  ip: string;
  vni: number;
  port: number;
}

/** The bridge's VXLAN device: its name plus "vx", within the kernel's 15 characters. */
export function vxlanDevice(bridge: string): string {
  return `${bridge.slice(0, 13)}vx`;
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function validateVtepIp(field: string, v: string): string {
  if (!IPV4_RE.test(v)) throw new ValidationError(field, `${JSON.stringify(v)} is not an IPv4 address: give the host's address on the network between hosts`);
  if (v.startsWith('127.') || v === '0.0.0.0')
    throw new ValidationError(field, `${v} is not reachable from other hosts: give the host's address on the network between hosts`);
  return v;
}

/** The flood entries to add and remove so a host sends to exactly the other hosts' endpoints. */
export function planFloodPeers(current: readonly string[], wanted: readonly string[], self: string): { add: string[]; remove: string[] } {
  const want = new Set(wanted.filter((ip) => ip !== self));
  const have = new Set(current);
  return { add: [...want].filter((ip) => !have.has(ip)).sort(), remove: [...have].filter((ip) => !want.has(ip)).sort() };
}

/** The other hosts' endpoints on this VNI and port: a host on another one could not decode ours. */
export function peerEndpoints(records: readonly VtepRecord[], self: string, vni: number, port: number): string[] {
  return [...new Set(records.filter((r) => r.host !== self && r.vni === vni && r.port === port).map((r) => r.ip))].sort();
}

/** The nft table that guards one VXLAN device (nft names take letters, digits and "_"). */
export function guardTable(device: string): string {
  return `knarr_${device.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/**
 * The nft command (one argv, one transaction) that keeps each host's own gateway answering its own
 * nodes: ARP about a gateway address never crosses the VXLAN device, either way.
 */
export function gatewayGuardArgv(device: string, gateways: readonly string[]): string[] {
  if (gateways.length === 0) throw new Error('gatewayGuardArgv: no gateway to guard');
  const table = guardTable(device);
  const set = gateways.length === 1 ? [gateways[0]!] : ['{', [...gateways].sort().join(', '), '}'];
  const chain = (hook: string) => ['add', 'chain', 'bridge', table, hook, '{', 'type', 'filter', 'hook', hook, 'priority', '0', ';', '}', ';'];
  const rule = (hook: string, dir: 'iifname' | 'oifname', field: 'saddr' | 'daddr') => [
    'add',
    'rule',
    'bridge',
    table,
    hook,
    dir,
    device,
    'arp',
    field,
    'ip',
    ...set,
    'drop',
  ];
  return [
    'nft',
    // Made then emptied, so the one command serves a host with or without the table.
    ...['add', 'table', 'bridge', table, ';', 'delete', 'table', 'bridge', table, ';', 'add', 'table', 'bridge', table, ';'],
    ...chain('forward'),
    ...chain('input'),
    ...chain('output'),
    ...rule('forward', 'oifname', 'daddr'),
    ';',
    ...rule('forward', 'iifname', 'daddr'),
    ';',
    ...rule('input', 'iifname', 'daddr'),
    ';',
    ...rule('output', 'oifname', 'saddr'),
  ];
}
