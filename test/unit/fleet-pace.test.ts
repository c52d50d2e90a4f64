import { describe, expect, it } from 'vitest';
import { FLEET_RENEWALS_PER_SECOND, leaseTtl, renewEveryMs, sweepEveryMs } from '../../src/core/fleet-pace.js';
import { Wakeup } from '../../src/core/streams.js';

/** Renewals a second of a fleet of n hosts whose agents were started with --ttl ttl. */
const renewals = (n: number, ttl: number) => (n * 1000) / renewEveryMs(leaseTtl(ttl, n));

describe("an idle fleet's pace", () => {
  it("keeps the operator's TTL in a small fleet, renewed every third of it", () => {
    expect(leaseTtl(10, 1)).toBe(10);
    expect(leaseTtl(10, 100)).toBe(10);
    expect(renewEveryMs(10)).toBe(3333);
    expect(renewEveryMs(2)).toBe(667);
    expect(leaseTtl(60, 1000)).toBe(60);
  });

  it('lengthens the lease as the fleet grows, so all renewals together stay within the budget, with slack to spare', () => {
    for (const n of [101, 300, 1000, 5000, 20_000]) {
      expect(renewals(n, 10)).toBeLessThanOrEqual(FLEET_RENEWALS_PER_SECOND);
      // The lease outlives its renewal by the slack (or two thirds of it): an election or a failover does not let it lapse.
      const ttl = leaseTtl(10, n);
      expect(ttl * 1000 - renewEveryMs(ttl)).toBeGreaterThanOrEqual(Math.min(10_000, (ttl * 2000) / 3 - 1));
    }
    expect(leaseTtl(10, 1000)).toBe(44);
    expect(renewEveryMs(44)).toBe(34_000);
  });

  it('sweeps every 30 s in a small fleet, more rarely in a big one, spread so agents do not align', () => {
    expect(sweepEveryMs(5, 0.5)).toBe(30_000);
    expect(sweepEveryMs(1000, 0.5)).toBe(1_500_000);
    expect(sweepEveryMs(1000, 0)).toBe(1_350_000);
    expect(sweepEveryMs(1000, 1)).toBe(1_650_000);
  });
});

describe('a Wakeup', () => {
  it('is not lost when it comes before the sleep: the next sleep returns at once', async () => {
    const w = new Wakeup();
    w.wake();
    const t = performance.now();
    await w.sleep(5000);
    expect(performance.now() - t).toBeLessThan(1000);
  });

  it('cuts a sleep short, and one wake serves one sleep only', async () => {
    const w = new Wakeup();
    setTimeout(() => w.wake(), 50);
    const t = performance.now();
    await w.sleep(5000);
    expect(performance.now() - t).toBeLessThan(1000);
    const t2 = performance.now();
    await w.sleep(200);
    expect(performance.now() - t2).toBeGreaterThanOrEqual(150);
  });
});
