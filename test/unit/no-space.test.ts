import { describe, expect, it } from 'vitest';
import { ExitCode, ExternalCommandError, NoSpaceError } from '../../src/core/errors.js';
import { isNoSpace, spaceGuard } from '../../src/host/storage/common.js';

describe('a full pool as an error', () => {
  it("knows ENOSPC from node and the tools' words for it, and nothing else", () => {
    expect(isNoSpace(Object.assign(new Error('write failed'), { code: 'ENOSPC' }))).toBe(true);
    expect(isNoSpace(new ExternalCommandError(['btrfs', 'subvolume', 'snapshot'], 1, 'ERROR: cannot snapshot: No space left on device'))).toBe(true);
    expect(isNoSpace(new ExternalCommandError(['zfs', 'recv'], 1, 'cannot receive new filesystem stream: out of space'))).toBe(true);
    expect(isNoSpace(new ExternalCommandError(['zfs', 'recv'], 1, 'cannot receive: I/O error'))).toBe(false);
    expect(isNoSpace(Object.assign(new Error('gone'), { code: 'ENOENT' }))).toBe(false);
    expect(isNoSpace(undefined)).toBe(false);
  });

  it('spaceGuard names the pool with exit 5 and passes other errors through as they are', async () => {
    const full = spaceGuard('fast', async () => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    });
    await expect(full).rejects.toBeInstanceOf(NoSpaceError);
    await expect(full).rejects.toMatchObject({ exitCode: ExitCode.prerequisite, message: expect.stringMatching(/^pool fast is out of space: ENOSPC/) });
    const other = new Error('something else');
    await expect(spaceGuard('fast', async () => Promise.reject(other))).rejects.toBe(other);
    expect(await spaceGuard('fast', async () => 42)).toBe(42);
  });
});
