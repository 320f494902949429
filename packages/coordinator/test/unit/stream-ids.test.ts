/** The order of Redis stream ids, as the run event hub compares cursors (no Redis needed). */
import { describe, expect, it } from 'vitest';
import { compareIds } from '../../src/runs/run-event-hub.ts';

describe('compareIds', () => {
  it('orders by milliseconds, then by sequence, numerically and past 2^53', () => {
    expect(compareIds('9-0', '10-0')).toBe(-1);
    expect(compareIds('10-2', '10-10')).toBe(-1);
    expect(compareIds('10-10', '10-10')).toBe(0);
    expect(compareIds('18446744073709551615-1', '18446744073709551615-0')).toBe(1);
    expect(compareIds('9007199254740993-0', '9007199254740992-0')).toBe(1);
  });

  it('takes `0` (from the start) as 0-0', () => {
    expect(compareIds('0', '0-0')).toBe(0);
    expect(compareIds('0', '1-0')).toBe(-1);
    expect(compareIds('0-1', '0')).toBe(1);
  });
});
