import { peerEndpoints, VXLAN_PORT, VXLAN_VNI, type VtepRecord } from '../core/vxlan.js';
import type { Runner } from '../host/runner.js';
import { ensureVxlan, syncFloodPeers } from '../host/vxlan.js';
import type { HostRepo } from '../state/hosts.js';

export interface OverlayOptions {
  host: string;
  /** The clusters' bridge on this host. */
  bridge: string;
  /** This host's address between hosts; null (a loopback agent): no overlay. */
  vtep: string | null;
}

/** What this host publishes in its record for the others' overlay. */
export function vtepOf(opts: OverlayOptions): Omit<VtepRecord, 'host'> | undefined {
  return opts.vtep === null ? undefined : { ip: opts.vtep, vni: VXLAN_VNI, port: VXLAN_PORT };
}

/**
 * Keeps the VXLAN device on this host's cluster bridge flooding to every other host of the fleet, from
 * their records: run on every change to the hosts and on the agent's timed pass. A host with no
 * cluster bridge (no node here) gets nothing.
 */
export class Overlay {
  private running: Promise<void> | null = null;
  private again = false;
  /** The hosts whose records the last sync read: a record of another host is news. */
  private known = new Set<string>();

  constructor(
    private readonly opts: OverlayOptions,
    private readonly hosts: HostRepo,
    private readonly runner: Runner,
    private readonly log: (line: string) => void,
  ) {}

  /** Host records changed (host null: anything may have): a sync when a host came or went; a changed address waits for the timed pass. */
  hostsChanged(changes: readonly { host: string | null; deleted: boolean }[]): void {
    if (changes.some((c) => c.host === null || c.deleted || !this.known.has(c.host))) this.kick();
  }

  /** A sync now, or right after the one running: a burst of changes makes at most two. */
  kick(): void {
    if (this.opts.vtep === null) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.sync().catch((e: Error) => this.log(`overlay: ${e.message}`));
      } while (this.again);
      this.running = null;
    })();
  }

  /** Settles once no sync is running (tests and shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async sync(): Promise<void> {
    const local = this.opts.vtep;
    if (local === null) return;
    const gateways = await bridgeAddresses(this.runner, this.opts.bridge);
    if (gateways === null) return;
    const listed = await this.hosts.list();
    this.known = new Set(listed.map(({ host }) => host.name));
    const records = listed.flatMap(({ host }) => (host.vtep ? [{ host: host.name, ...host.vtep }] : []));
    const made = await ensureVxlan(this.runner, { bridge: this.opts.bridge, vni: VXLAN_VNI, port: VXLAN_PORT, local, gateways });
    const changed = await syncFloodPeers(this.runner, this.opts.bridge, peerEndpoints(records, this.opts.host, VXLAN_VNI, VXLAN_PORT), local);
    if (made !== 'kept' || changed.add.length + changed.remove.length > 0)
      this.log(
        `overlay: ${this.opts.bridge} ${made === 'kept' ? 'floods' : `${made}, floods`} ` +
          `to ${[...changed.add.map((ip) => `+${ip}`), ...changed.remove.map((ip) => `-${ip}`)].join(' ') || 'the same hosts'}`,
      );
  }
}

/** The bridge's IPv4 addresses (its subnets' gateways), or null when this host has no such bridge. */
async function bridgeAddresses(runner: Runner, bridge: string): Promise<string[] | null> {
  // ip, not /sys: an agent in a network namespace sees the root namespace's sysfs.
  const r = await runner.run(['ip', '-j', '-4', 'addr', 'show', 'dev', bridge], { mutates: false, okExitCodes: [1, 255] });
  if (r.exitCode !== 0) return null;
  const links = JSON.parse(r.stdout || '[]') as { addr_info?: { local?: string }[] }[];
  return links.flatMap((l) => (l.addr_info ?? []).flatMap((a) => (a.local ? [a.local] : [])));
}
