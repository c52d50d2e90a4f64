// A private dockerd for a benchmark: own socket, data root, exec root, pid file and bridge, no iptables.
import { spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';

const ip = (...args) => spawnSync('ip', args, { encoding: 'utf8' });

/** A 10.x.y.0/24 no route on this machine falls in (the benchmark's bridge must not shadow one). */
export function freeSubnet() {
  const routes = ip('-4', 'route', 'show', 'table', 'all').stdout;
  const resolv = (() => {
    try {
      return readFileSync('/etc/resolv.conf', 'utf8');
    } catch {
      return '';
    }
  })();
  for (;;) {
    const prefix = `10.${randomInt(16, 250)}.${randomInt(0, 256)}`;
    if (!routes.includes(`${prefix}.`) && !routes.includes(`10.${prefix.split('.')[1]}.0.0/16`) && !resolv.includes(`${prefix}.`)) return prefix;
  }
}

/**
 * Starts dockerd on a bridge of its own. Never without one in the host's network namespace:
 * dockerd then deletes the host's docker0, and every container on the default network fails after.
 */
export function startDockerd(dir, env) {
  const sock = `${dir}/docker.sock`;
  const bridge = `kb${randomInt(36 ** 5)
    .toString(36)
    .padStart(5, '0')}`;
  const made = ip('link', 'add', bridge, 'type', 'bridge');
  if (made.status !== 0) throw new Error(`ip link add ${bridge}: ${made.stderr}`);
  ip('addr', 'add', `${freeSubnet()}.1/24`, 'dev', bridge);
  ip('link', 'set', bridge, 'up');
  const argv = [
    '-H',
    `unix://${sock}`,
    '--data-root',
    `${dir}/root`,
    '--exec-root',
    `${dir}/exec`,
    '--pidfile',
    `${dir}/pid`,
    `--bridge=${bridge}`,
    '--iptables=false',
    '--ip6tables=false',
  ];
  const proc = spawn('dockerd', argv, { stdio: 'ignore', env });
  return {
    sock,
    bridge,
    async stop() {
      try {
        process.kill(Number(readFileSync(`${dir}/pid`, 'utf8').trim()), 'SIGTERM');
      } catch {
        proc.kill('SIGTERM');
      }
      if (proc.exitCode === null && proc.signalCode === null) await new Promise((r) => proc.once('close', r));
      ip('link', 'del', bridge);
    },
  };
}
