import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { execa } from 'execa';

/** Names and addresses for the links tests make, clear of everything on the machine. */

const ip = (...args: string[]) => execa('ip', args);

/** Every IPv4 prefix the machine routes or resolves through, so a new /24 overlaps none of them. */
async function takenPrefixes(): Promise<Array<[number, number]>> {
  const taken: Array<[number, number]> = [];
  const routes = JSON.parse((await ip('-j', '-4', 'route', 'show', 'table', 'all')).stdout) as Array<{ dst?: string }>;
  for (const { dst } of routes) {
    if (!dst || dst === 'default') continue;
    const [addr, len] = dst.split('/');
    const n = toInt(addr!);
    if (n !== null) taken.push([n, len === undefined ? 32 : Number(len)]);
  }
  // The default route hides the resolver's address; a bridge on its /24 would break DNS.
  let resolv = '';
  try {
    resolv = readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    /* no resolver configured */
  }
  for (const m of resolv.matchAll(/^nameserver\s+(\S+)/gm)) {
    const n = toInt(m[1]!);
    if (n !== null) taken.push([n, 32]);
  }
  return taken;
}

function toInt(addr: string): number | null {
  const p = addr.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) return null;
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

const overlaps = (a: number, alen: number, b: number, blen: number) => {
  const len = Math.min(alen, blen);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return (a & mask) >>> 0 === (b & mask) >>> 0;
};

/** A random 10.x.y.0/24 that no route, local address or resolver on this machine falls in. */
export async function pickSubnet(): Promise<string> {
  const taken = await takenPrefixes();
  for (let i = 0; i < 1000; i++) {
    const [x, y] = [randomInt(16, 250), randomInt(0, 256)];
    const net = toInt(`10.${x}.${y}.0`)!;
    if (!taken.some(([n, len]) => overlaps(net, 24, n, len))) return `10.${x}.${y}`;
  }
  throw new Error('no free 10.x.y.0/24 on this machine');
}

/** A random 10.x.0.0/16 (for a user's cluster subnets) that no route on this machine falls in. */
export async function pickNetwork(): Promise<string> {
  const taken = await takenPrefixes();
  for (let i = 0; i < 1000; i++) {
    const x = randomInt(100, 200);
    if (!taken.some(([n, len]) => overlaps(toInt(`10.${x}.0.0`)!, 16, n, len))) return `10.${x}.0.0/16`;
  }
  throw new Error('no free 10.x.0.0/16 on this machine');
}

/** A name prefix (7 chars) that no link or netns on the machine starts with, leftovers included. */
export async function pickTag(): Promise<string> {
  const links = (await ip('-o', 'link', 'show')).stdout;
  const nss = (await ip('netns', 'list')).stdout;
  for (;;) {
    const tag = `kn${randomInt(36 ** 4, 36 ** 5).toString(36)}`;
    if (!links.includes(tag) && !nss.includes(tag)) return tag;
  }
}
