import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { validateName, validatePoolName } from '../../src/core/names.js';
import { formatSize, parseSize } from '../../src/core/size.js';

describe('validateName', () => {
  it.each(['knarr', 'a', 'Data-1', 'my_pool.v2'])('accepts %s', (n) => {
    expect(validateName('--name', n)).toBe(n);
  });
  it.each([
    ['', /must not be empty/],
    ['a/b', /contains "\/"/],
    ['a..b', /contains "\.\."/],
    ['a b', /contains a space/],
    ['a\nb', /"a\\nb" contains a newline/],
    ['a\tb', /contains a tab/],
    ['a\u0007b', /contains a control character/],
    ['-a', /starts with "-"/],
    ['1abc', /start with a letter/],
    ['a@b', /not a valid name/],
    ['x'.repeat(65), /65 characters long; use at most 64/],
  ])('refuses %j', (n, msg) => {
    expect(() => validateName('--name', n)).toThrow(msg);
    try {
      validateName('--name', n);
    } catch (e) {
      expect(e).toBeInstanceOf(ValidationError);
      expect((e as ValidationError).field).toBe('--name');
      expect((e as Error).message.startsWith('--name: ')).toBe(true);
    }
  });
  it('refuses names ZFS reserves', () => {
    expect(() => validatePoolName('--name', 'mirror')).toThrow(/reserved by ZFS/);
    expect(() => validatePoolName('--name', 'c0t0d0')).toThrow(/reserved by ZFS/);
  });
});

describe('sizes', () => {
  it.each([
    ['512M', 512 * 1024 ** 2],
    ['2G', 2 * 1024 ** 3],
    ['1.5g', 1.5 * 1024 ** 3],
    ['4096', 4096],
    ['10 KiB', 10240],
  ])('parses %s', (text, bytes) => expect(parseSize('--size', text)).toBe(bytes));
  it.each(['0', '-1', '-1G', '0.0M', 'abc', '5Q', ''])('refuses %j', (text) => {
    expect(() => parseSize('--size', text)).toThrow(/^--size: /);
  });
  it('formats binary sizes', () => {
    expect(formatSize(0)).toBe('0B');
    expect(formatSize(1536)).toBe('1.5K');
    expect(formatSize(1031798784)).toBe('984M');
    expect(formatSize(null)).toBe('-');
  });
});
