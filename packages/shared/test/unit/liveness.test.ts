/**
 * A worker's liveness entry: its thread's beat, its event loop's last run, and its BullMQ
 * consumers (queue → BullMQ worker id), by which a dead worker's unnoted jobs are found. Entries
 * of older workers carry the two times only; a tool queue's name holds `=` itself.
 */
import { describe, expect, it } from 'vitest';
import { formatLiveness, parseLiveness } from '../../src/liveness.ts';

const ID = '22281194-f8e3-4c90-8c8b-1c5a552167b5';

describe('the liveness entry', () => {
  it('reads back what it wrote, consumers of pool, lane and tool queues included', () => {
    const consumers = new Map([
      ['default', ID],
      ['default.t19e7735c12', 'c4b5d5bb-8847-4bf1-95cd-a1bb5fbff02d'],
      ['tool=pay_x', 'a0a0a0a0-8847-4bf1-95cd-a1bb5fbff02d'],
    ]);
    const raw = formatLiveness({ beatAt: 1_700_000_000_123.4, loopAt: 1_700_000_000_100, consumers });
    expect(raw).toBe(
      `1700000000123 1700000000100 default=${ID} default.t19e7735c12=c4b5d5bb-8847-4bf1-95cd-a1bb5fbff02d tool=pay_x=a0a0a0a0-8847-4bf1-95cd-a1bb5fbff02d`,
    );
    expect(parseLiveness(raw)).toEqual({ beatAt: 1_700_000_000_123, loopAt: 1_700_000_000_100, consumers });
  });

  it("reads an older worker's entry (two times, no consumers)", () => {
    expect(parseLiveness('1700000000123 1700000000100')).toEqual({
      beatAt: 1_700_000_000_123,
      loopAt: 1_700_000_000_100,
    });
  });

  it('skips what is not an entry, and pairs without a queue or an id', () => {
    expect(parseLiveness('')).toBeUndefined();
    expect(parseLiveness('soon later')).toBeUndefined();
    expect(parseLiveness(`1 2 =${ID} default= default=${ID}`)).toEqual({
      beatAt: 1,
      loopAt: 2,
      consumers: new Map([['default', ID]]),
    });
  });
});
