// Words that mean the same to every shell without quotes.
const SAFE_WORD = /^[A-Za-z0-9_/.:=,@%+^-]+$/;

/** One word quoted for a POSIX shell: pasted back, it is that word, whatever it holds ($, spaces, quotes, globs). */
export function shellQuote(word: string): string {
  return SAFE_WORD.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A command line an operator can paste: each word quoted as needed. */
export function shellCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

/** `knarr ARGS...` quoted for a hint. */
export function knarrCommand(...args: string[]): string {
  return shellCommand(['knarr', ...args]);
}
