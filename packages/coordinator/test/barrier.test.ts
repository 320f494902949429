import { type CallResult, CONTRACT_VERSION } from '@toolq/shared';
import { describe, expect, it } from 'vitest';
import { Barrier, type BarrierCall, type BarrierLimits } from '../src/barrier.ts';

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function calls(n: number, timeoutMs: number | ((index: number) => number)): BarrierCall[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, index) => {
    const ms = typeof timeoutMs === 'number' ? timeoutMs : timeoutMs(index);
    return { index, toolUseId: `toolu_${index}`, tool: 'diag_echo', deadline: now + ms, timeoutMs: ms };
  });
}

function ok(index: number, isError = false): CallResult {
  return {
    v: CONTRACT_VERSION,
    toolUseId: `toolu_${index}`,
    tool: 'diag_echo',
    outcome: isError ? 'error' : 'ok',
    content: isError ? 'boom' : 'fine',
    isError,
    attempts: 1,
  };
}

/** Limits that count the barrier's onDone calls. */
function counting(): { limits: BarrierLimits; done: Barrier[] } {
  const done: Barrier[] = [];
  return { limits: { maxResultBytes: 1_000_000, onDone: (b) => done.push(b) }, done };
}

describe('Barrier', () => {
  it('tells onDone once, when the last call is answered, and holds every answer in order', () => {
    const { limits, done } = counting();
    const barrier = new Barrier('b1', calls(3, 60_000), 'continue', limits);
    expect(() => barrier.answers).toThrow(/still waits for 3/);
    barrier.settle(2, ok(2));
    barrier.settle(0, ok(0));
    expect(done).toEqual([]);
    expect(barrier.settle(0, ok(0, true))).toBe(false); // the first answer wins
    barrier.settle(1, ok(1));
    expect(done).toEqual([barrier]);
    expect(barrier.answers.map((a) => a.result.toolUseId)).toEqual(['toolu_0', 'toolu_1', 'toolu_2']);
  });

  it('abort policy: a failure cancels the rest and onDone is told once', () => {
    const { limits, done } = counting();
    const barrier = new Barrier('b2', calls(4, 60_000), 'abort', limits);
    barrier.settle(1, ok(1, true));
    expect(done).toEqual([barrier]);
    expect(barrier.answers.map((a) => a.result.outcome)).toEqual([
      'cancelled',
      'error',
      'cancelled',
      'cancelled',
    ]);
  });

  it('a barrier without calls is done at once and tells no one', () => {
    const { limits, done } = counting();
    const barrier = new Barrier('b3', [], 'continue', limits);
    expect(barrier.isDone).toBe(true);
    expect(barrier.answers).toEqual([]);
    expect(done).toEqual([]);
  });

  it('times out each call at its own deadline, earliest first', async () => {
    const { limits, done } = counting();
    const barrier = new Barrier(
      'b4',
      calls(2, (i) => (i === 0 ? 600 : 40)),
      'continue',
      limits,
    );
    // Polled, not a fixed sleep: a loaded machine runs timers late, never early.
    for (let i = 0; i < 100 && !barrier.isSettled(1); i++) await wait(10);
    expect(barrier.isSettled(0)).toBe(false);
    for (let i = 0; i < 300 && done.length === 0; i++) await wait(10);
    expect(barrier.answers.map((a) => a.result.outcome)).toEqual(['timeout', 'timeout']);
    expect(done).toEqual([barrier]);
  });
});
