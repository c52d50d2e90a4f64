import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { knarrCommand, shellCommand, shellQuote } from '../../src/core/shell.js';

describe('shell quoting for hints and --dry-run lines', () => {
  it('leaves plain words alone and quotes the rest', () => {
    expect(shellCommand(['mkdir', '-p', '/var/lib/knarr'])).toBe('mkdir -p /var/lib/knarr');
    expect(shellQuote('/x/no such $(touch p)')).toBe(`'/x/no such $(touch p)'`);
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote('')).toBe(`''`);
    expect(knarrCommand('pool', 'status', 'a;b')).toBe(`knarr pool status 'a;b'`);
  });
  it.each(['/x/no such $(touch p)', 'a\'b"c`d`', '*', '~root', 'a\nb', '$HOME', '-n', '!x', ''])(
    'pasted into sh, %j is one word that stays as it is',
    async (word) => {
      const r = await execa('sh', ['-c', `printf '%s\\0' ${shellQuote(word)}`]);
      expect(r.stdout).toBe(`${word}\0`);
    },
  );
});
