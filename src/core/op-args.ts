import { ValidationError } from './errors.js';
import type { OpRecord } from './ops.js';

/**
 * Reads an operation's arguments (an untyped record from etcd) one field at a time, each checked for
 * its type, so a handler builds a typed object and a record it cannot use fails naming the field.
 */
export class OpArgs {
  constructor(private readonly op: Pick<OpRecord, 'id' | 'kind' | 'args'>) {}

  string(key: string): string {
    const v = this.optionalString(key);
    return v === undefined ? this.fail(key, 'a string') : v;
  }

  /** Absent (or null) is undefined. */
  optionalString(key: string): string | undefined {
    const v = this.op.args[key];
    if (v === undefined || v === null) return undefined;
    return typeof v === 'string' ? v : this.fail(key, 'a string');
  }

  integer(key: string): number {
    const v = this.optionalInteger(key);
    return v === undefined ? this.fail(key, 'a whole number') : v;
  }

  /** Absent (or null) is undefined. */
  optionalInteger(key: string): number | undefined {
    const v = this.op.args[key];
    if (v === undefined || v === null) return undefined;
    return typeof v === 'number' && Number.isInteger(v) ? v : this.fail(key, 'a whole number');
  }

  private fail(key: string, want: string): never {
    const found = this.op.args[key];
    throw new ValidationError(
      `${this.op.kind} argument ${key}`,
      `${found === undefined ? 'missing' : `${JSON.stringify(found)} is not ${want}`} in operation ${this.op.id}`,
      {
        hint: `it was written by another knarr version or by hand; cancel it with: knarr op cancel ${this.op.id}`,
      },
    );
  }
}
