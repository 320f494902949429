/** DispatchOptions.batchName, and batchId, its old name, still taken. */
import { describe, expect, it } from 'vitest';
import { assertDispatchable, batchNameOf } from '../../src/dispatch/options.ts';

const uses = [{ id: 'toolu_1' }];

describe('the caller’s batch name', () => {
  it('is batchName, or batchId as it was called before', () => {
    expect(batchNameOf({ batchName: 'turn-1' })).toBe('turn-1');
    expect(batchNameOf({ batchId: 'turn-1' })).toBe('turn-1');
    expect(batchNameOf({})).toBeUndefined();
  });

  it('may be given under both names only when they agree', () => {
    expect(() => assertDispatchable(uses, 'default', { batchName: 'a', batchId: 'a' })).not.toThrow();
    expect(() => assertDispatchable(uses, 'default', { batchName: 'a', batchId: 'b' })).toThrow(
      /give one of them/,
    );
  });

  it('must be a key part under either name', () => {
    expect(() => assertDispatchable(uses, 'default', { batchName: 'a b' })).toThrow(/batchName/);
    expect(() => assertDispatchable(uses, 'default', { batchId: 'a:b' })).toThrow(/batchName/);
  });
});
