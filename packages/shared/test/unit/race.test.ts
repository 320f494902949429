/** raceSignal and withTimeout: the one helper each for racing work against a signal or a time limit. */
import { describe, expect, it } from 'vitest';
import { raceSignal, withTimeout } from '../../src/race.ts';

const never = new Promise<never>(() => {});

describe('raceSignal', () => {
  it('settles as the work does while the signal stays quiet', async () => {
    const controller = new AbortController();
    await expect(raceSignal(Promise.resolve(1), controller.signal)).resolves.toBe(1);
    await expect(raceSignal(Promise.reject(new Error('no')), controller.signal)).rejects.toThrow('no');
  });

  it('rejects with the reason as soon as the signal aborts, or at once when it has', async () => {
    const controller = new AbortController();
    const raced = raceSignal(never, controller.signal);
    controller.abort(new Error('stop'));
    await expect(raced).rejects.toThrow('stop');
    await expect(raceSignal(never, controller.signal, () => new Error('mine'))).rejects.toThrow('mine');
  });

  it('handles a late rejection of work it no longer waits for', async () => {
    const controller = new AbortController();
    controller.abort();
    let fail!: (err: Error) => void;
    const work = new Promise<never>((_, reject) => {
      fail = reject;
    });
    await expect(raceSignal(work, controller.signal)).rejects.toBeDefined();
    fail(new Error('late')); // an unhandled rejection here would fail the run
    await new Promise((resolve) => setTimeout(resolve, 10));
  });

  it('without a signal is the work itself', () => {
    const work = Promise.resolve(2);
    expect(raceSignal(work, undefined)).toBe(work);
  });
});

describe('withTimeout', () => {
  it('settles as the work does when it is in time', async () => {
    await expect(withTimeout(Promise.resolve('ok'), 1_000, () => 'late')).resolves.toBe('ok');
    await expect(withTimeout(Promise.reject(new Error('no')), 1_000, () => 'late')).rejects.toThrow('no');
  });

  it('answers with what onTimeout returns, or rejects with what it throws', async () => {
    await expect(withTimeout(never, 5, () => 'late')).resolves.toBe('late');
    await expect(
      withTimeout(never, 5, () => {
        throw new Error('too slow');
      }),
    ).rejects.toThrow('too slow');
  });
});
