import { ValidationError } from './errors.js';

const NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]*$/;

/** Names ZFS reserves for vdev keywords; refused for every driver so a pool can move between them. */
const RESERVED_POOL_NAMES = new Set(['mirror', 'raidz', 'raidz1', 'raidz2', 'raidz3', 'spare', 'log', 'cache', 'draid']);

const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9_.:=-]{0,63}$/;

/** A host tag: a letter or digit, then letters, digits and _ . : = -, at most 64 characters. */
export function isTag(s: string): boolean {
  return TAG_RE.test(s);
}

/** What whitespace or control character a name holds, said as an operator would ("a newline"), or null. */
export function whitespaceIn(value: string): string | null {
  const m = /[\s\x00-\x1f\x7f]/.exec(value);
  if (!m) return null;
  if (m[0] === '\n' || m[0] === '\r') return 'a newline';
  if (m[0] === '\t') return 'a tab';
  if (m[0] === ' ') return 'a space';
  return /[\x00-\x1f\x7f]/.test(m[0]) ? 'a control character' : 'a space';
}

/**
 * Checks a name used as a pool, volume, host or fleet identifier.
 * The message names the field and says how to fix it, in one line.
 */
export function validateName(field: string, value: string, maxLength = 64): string {
  const shown = JSON.stringify(value);
  if (value === '') throw new ValidationError(field, 'must not be empty; use letters, digits, "-", "_" or "."');
  if (value.length > maxLength) {
    throw new ValidationError(field, `${shown} is ${value.length} characters long; use at most ${maxLength}`);
  }
  if (value.startsWith('-')) throw new ValidationError(field, `${shown} starts with "-"; start with a letter`);
  if (value.includes('/')) throw new ValidationError(field, `${shown} contains "/"; use "-" or "_" instead`);
  if (value.includes('..')) throw new ValidationError(field, `${shown} contains ".."; use a single "." or "-"`);
  const blank = whitespaceIn(value);
  if (blank) throw new ValidationError(field, `${shown} contains ${blank}; use "-" or "_" instead`);
  if (!NAME_RE.test(value)) {
    throw new ValidationError(field, `${shown} is not a valid name; start with a letter and use only letters, digits, "-", "_" or "."`);
  }
  return value;
}

export function validatePoolName(field: string, value: string): string {
  validateName(field, value, 64);
  if (RESERVED_POOL_NAMES.has(value.toLowerCase()) || /^c[0-9]/.test(value)) {
    throw new ValidationError(field, `${JSON.stringify(value)} is reserved by ZFS; choose another pool name`);
  }
  return value;
}

/** An absolute path without NUL or newline; relative paths are resolved by the caller first. */
export function validatePath(field: string, value: string): string {
  if (value === '') throw new ValidationError(field, 'must not be empty; give an absolute path');
  if (!value.startsWith('/')) throw new ValidationError(field, `${JSON.stringify(value)} is not an absolute path`);
  if (/[\0\n]/.test(value)) throw new ValidationError(field, 'contains a NUL or newline character');
  return value;
}

export const HUB_USER_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** A hub account name: lower-case letters, digits, "_" and "-", at most 63, as the hub stores it. */
export function validateHubUser(field: string, user: string): string {
  if (!HUB_USER_RE.test(user))
    throw new ValidationError(
      field,
      `${JSON.stringify(user)} is not a hub user name; use 1 to 63 lower-case letters, digits, "_" or "-", starting with a letter or digit`,
    );
  return user;
}

export const HOST_RE = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A host name with a "." as the first segment of HOST/USER/DOT (dothub.com): a hub, unless a recorded remote has that name. */
export function looksLikeHubHost(text: string): boolean {
  return text.includes('.') && HOST_RE.test(text);
}
