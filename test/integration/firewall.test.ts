import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allowBridge, bridgeFirewall, forgetBridge } from '../../src/host/firewall.js';
import { Runner } from '../../src/host/runner.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { haveTools, integration, whichSync } from '../harness/tools.js';

const run = integration('bridge firewall rules', process.getuid?.() === 0 && haveTools('iptables', 'ip'), 'needs root, iptables and ip (iproute2)');
const dockerChain =
  run &&
  integration(
    "bridge rules in docker's chain",
    (await execa('iptables', ['-w', '-n', '-L', 'DOCKER-USER'], { reject: false })).exitCode === 0,
    'no DOCKER-USER chain: the system dockerd is not running',
  );
const tag = () =>
  `kf${randomInt(36 ** 5)
    .toString(36)
    .padStart(5, '0')}`;

describe.skipIf(!run)("knarr's ACCEPT rules for a bridge (real iptables)", () => {
  let tmp: TempDir;
  let ns: string;
  let nsEnv: NodeJS.ProcessEnv;
  const runner = (env: NodeJS.ProcessEnv, dryRun = false) => new Runner({ dryRun, verbose: false, env, log: () => {} });
  const rulesIn = async (argv: string[], bridge: string) =>
    (await execa(argv[0]!, [...argv.slice(1), '-w', '-S'])).stdout.split('\n').filter((l) => l.includes(`knarr bridge ${bridge}`));

  beforeAll(async () => {
    tmp = await tempDir('knarr-fw-');
    // A network namespace has its own firewall: FORWARD, no DOCKER-USER. knarr's iptables is pointed into it through PATH.
    ns = tag();
    await execa('ip', ['netns', 'add', ns]);
    mkdirSync(`${tmp.path}/bin`);
    writeFileSync(`${tmp.path}/bin/iptables`, `#!/bin/sh\nexec ip netns exec ${ns} ${whichSync('iptables')} "$@"\n`);
    chmodSync(`${tmp.path}/bin/iptables`, 0o755);
    nsEnv = { ...process.env, PATH: `${tmp.path}/bin:${process.env.PATH}` };
  });
  afterAll(async () => {
    if (ns) await execa('ip', ['netns', 'del', ns], { reject: false });
    await tmp?.cleanup();
  });

  it.skipIf(!dockerChain)("on a host with docker's DOCKER-USER chain: two rules there, made once, shown and not made under --dry-run, gone after", async () => {
    const bridge = tag();
    const dry = runner(process.env, true);
    await allowBridge(dry, process.env, bridge);
    expect(dry.planned).toEqual(['-i', '-o'].map((d) => `iptables -w -I DOCKER-USER 1 ${d} ${bridge} -m comment --comment 'knarr bridge ${bridge}' -j ACCEPT`));
    expect(await rulesIn(['iptables'], bridge)).toEqual([]);
    try {
      const r = runner(process.env);
      await allowBridge(r, process.env, bridge);
      await allowBridge(r, process.env, bridge);
      expect((await rulesIn(['iptables'], bridge)).sort()).toEqual(
        ['-i', '-o'].map((d) => `-A DOCKER-USER ${d} ${bridge} -m comment --comment "knarr bridge ${bridge}" -j ACCEPT`),
      );
      expect(await bridgeFirewall(r, bridge)).toMatchObject({ allowed: true });
      const dryForget = runner(process.env, true);
      await forgetBridge(dryForget, process.env, bridge);
      expect(dryForget.planned).toHaveLength(2);
      expect(await rulesIn(['iptables'], bridge)).toHaveLength(2);
    } finally {
      await forgetBridge(runner(process.env), process.env, bridge);
    }
    expect(await rulesIn(['iptables'], bridge)).toEqual([]);
  });

  it('without docker (no DOCKER-USER), in FORWARD; doctor-style reading sees them', async () => {
    const bridge = tag();
    const r = runner(nsEnv);
    await execa('ip', ['netns', 'exec', ns, 'iptables', '-w', '-P', 'FORWARD', 'DROP']);
    expect(await bridgeFirewall(r, bridge)).toMatchObject({ allowed: false, policy: 'DROP' });
    await allowBridge(r, nsEnv, bridge);
    await allowBridge(r, nsEnv, bridge);
    expect((await rulesIn(['ip', 'netns', 'exec', ns, 'iptables'], bridge)).sort()).toEqual(
      ['-i', '-o'].map((d) => `-A FORWARD ${d} ${bridge} -m comment --comment "knarr bridge ${bridge}" -j ACCEPT`),
    );
    expect(await bridgeFirewall(r, bridge)).toMatchObject({ allowed: true, policy: 'DROP' });
    await forgetBridge(r, nsEnv, bridge);
    expect(await rulesIn(['ip', 'netns', 'exec', ns, 'iptables'], bridge)).toEqual([]);
  });
});
