import { readFileSync } from 'node:fs';

export interface Mount {
  id: string;
  target: string;
  fstype: string;
  source: string;
}

/** Mounts straight from the kernel (proc(5)), independently of knarr's own parser; octal escapes undone. */
export function kernelMounts(): Mount[] {
  const unescapeOctal = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(' - '))
    .map((l) => {
      const [left, right] = l.split(' - ') as [string, string];
      const f = left.split(' ');
      const r = right.split(' ');
      return { id: f[0]!, target: unescapeOctal(f[4]!), fstype: r[0]!, source: unescapeOctal(r[1]!) };
    });
}
