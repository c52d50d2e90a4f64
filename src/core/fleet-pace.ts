/**
 * How often an agent renews its lease and sweeps the fleet, so that an idle fleet costs etcd about the same whatever
 * its size (as Nomad caps its heartbeats at max_heartbeats_per_second and lengthens the TTL as the fleet grows).
 */

/** The fleet's lease renewals per second at most, all agents together. */
export const FLEET_RENEWALS_PER_SECOND = 30;
/** How late a renewal may be (an etcd election, a failover) before the lease lapses, once the TTL is grown. */
export const RENEWAL_SLACK_SECONDS = 10;
/** The backstop full pass over jobs and operations, at most this often per agent... */
export const SWEEP_MIN_MS = 30_000;
/** ...and no more often than once per this much time per host in the fleet (about nine reads a pass). */
export const SWEEP_MS_PER_HOST = 1500;

/** The lease TTL (s) for a fleet of `hosts`: the operator's, or longer when renewing it every TTL/3 would exceed the fleet's renewals. */
export function leaseTtl(configured: number, hosts: number): number {
  const every = hosts / FLEET_RENEWALS_PER_SECOND;
  return every <= configured / 3 ? configured : Math.max(configured, Math.ceil(every + RENEWAL_SLACK_SECONDS));
}

/** How often (ms) a lease of ttl seconds is renewed: every third of it, or with a fixed slack once that is the rarer. */
export function renewEveryMs(ttl: number): number {
  return Math.max(200, Math.round(Math.max(ttl / 3, ttl - RENEWAL_SLACK_SECONDS) * 1000));
}

/** How often (ms) an agent makes its backstop pass in a fleet of `hosts`, spread by random (0..1) so agents do not align. */
export function sweepEveryMs(hosts: number, random: number): number {
  return Math.round(Math.max(SWEEP_MIN_MS, hosts * SWEEP_MS_PER_HOST) * (0.9 + 0.2 * random));
}
