import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { OpArgs } from '../../src/core/op-args.js';
import { newOp } from '../../src/core/ops.js';
import { createArgs } from '../../src/commands/cluster/ops/create.js';
import { hostInitArgs } from '../../src/commands/cluster/ops/host-init.js';
import { imageSaveArgs } from '../../src/commands/cluster/ops/image-save.js';
import { scaleArgs } from '../../src/commands/cluster/ops/scale.js';
import { clusterRefArgs } from '../../src/commands/cluster/ops/shared.js';

const op = (kind: string, args: Record<string, unknown>) => newOp(7, kind, args, 'h1');

describe('cluster operation arguments, read from etcd', () => {
  it('a create record as the command writes it parses into typed values', () => {
    const args = createArgs(
      op('cluster.create', { user: 'alice', name: 'lab', size: 3, image: 'base', memory: 0, cpu: 500, pool: 'nodes', host: 'h1', authorizedKeys: '' }),
    );
    expect(args).toEqual({ user: 'alice', name: 'lab', size: 3, image: 'base', host: 'h1', pool: 'nodes', memory: 0, cpu: 500, authorizedKeys: '' });
  });
  it('limits default to none, and the optional fields may be absent', () => {
    const args = createArgs(op('cluster.create', { user: 'alice', name: 'lab', size: 1, image: 'base', host: 'h1' }));
    expect([args.memory, args.cpu, args.pool, args.authorizedKeys]).toEqual([0, 0, undefined, undefined]);
  });
  it('a missing or mistyped field fails naming the kind, the field and the operation', () => {
    const missing = () => clusterRefArgs(op('cluster.start', { name: 'lab' }));
    expect(missing).toThrow(ValidationError);
    expect(missing).toThrow(/cluster\.start argument user: missing in operation op-000007/);
    expect(() => scaleArgs(op('cluster.scale', { user: 'alice', name: 'lab', size: '3' }))).toThrow(/cluster\.scale argument size: "3" is not a whole number/);
    expect(() => scaleArgs(op('cluster.scale', { user: 'alice', name: 'lab', size: 1.5 }))).toThrow(/size: 1.5 is not a whole number/);
    expect(() => imageSaveArgs(op('image.save', { user: 'alice', name: 'lab', node: 0 }))).toThrow(/image\.save argument image: missing/);
    expect(() => createArgs(op('cluster.create', { user: 'alice', name: 7, size: 1, image: 'base', host: 'h1' }))).toThrow(/argument name: 7 is not a string/);
  });
  it('the error tells the operator how to get rid of the operation', () => {
    try {
      new OpArgs(op('cluster.stop', {})).string('user');
      expect.unreachable();
    } catch (e) {
      expect((e as ValidationError).hint).toMatch(/knarr op cancel op-000007/);
      expect((e as ValidationError).field).toBe('cluster.stop argument user');
    }
  });
  it('image save keeps the host optional; host init reads any mode but new as recovery', () => {
    expect(imageSaveArgs(op('image.save', { user: 'a', name: 'lab', node: 1, image: 'snap' }))).toEqual({
      user: 'a',
      name: 'lab',
      pool: undefined,
      node: 1,
      image: 'snap',
      host: undefined,
    });
    expect(hostInitArgs(op('host.init', { mode: 'new' }))).toEqual({ mode: 'new' });
    expect(hostInitArgs(op('host.init', {}))).toEqual({ mode: 'recovery' });
  });
});
