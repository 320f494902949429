import { describe, expect, it } from 'vitest';
import { DeadlineClock } from '../src/deadline-clock.ts';

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('DeadlineClock', () => {
  it('expires each item at its deadline, not before, and forgets deleted ones', async () => {
    const clock = new DeadlineClock();
    const fired: [string, number][] = [];
    const start = Date.now();
    const item = (name: string) => ({ expire: () => fired.push([name, Date.now() - start]) });
    const late = item('late');
    const gone = item('gone');
    clock.add(start + 80, late);
    clock.add(start + 30, item('early'));
    clock.add(start + 30, item('same-ms'));
    clock.add(start + 50, gone);
    clock.delete(start + 50, gone);
    await wait(150);
    expect(fired.map(([name]) => name)).toEqual(['early', 'same-ms', 'late']);
    for (const [name, at] of fired) expect(at).toBeGreaterThanOrEqual(name === 'late' ? 80 : 30);
  });

  it('lets an item add itself again for its next deadline while expiring', async () => {
    const clock = new DeadlineClock();
    let count = 0;
    const start = Date.now();
    const repeating = {
      expire: () => {
        count++;
        if (count < 3) clock.add(Date.now() + 20, repeating);
      },
    };
    clock.add(start + 10, repeating);
    // Polled, not a fixed sleep: a loaded machine runs timers late, never early.
    for (let i = 0; i < 100 && count < 3; i++) await wait(20);
    await wait(100); // and no fourth time
    expect(count).toBe(3);
  });
});
