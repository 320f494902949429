/** A batch's summary and what it feeds the overhead histogram. Pure: no Redis. */
import { type CallResult, CONTRACT_VERSION, type Outcome } from '@toolq/shared';
import { createCoordinatorMetrics, createRegistry } from '@toolq/shared/internal';
import { describe, expect, it } from 'vitest';
import type { SettledCall } from '../../src/barrier.ts';
import { observeBatch, summarise } from '../../src/batch-result.ts';

const T0 = 1_700_000_000_000;

function settled(
  outcome: Outcome,
  settledAt: number,
  run?: { startedAt: number; finishedAt: number },
): SettledCall {
  const result: CallResult = {
    v: CONTRACT_VERSION,
    toolUseId: `tu_${outcome}_${settledAt}`,
    tool: 'slow',
    outcome,
    content: outcome,
    isError: outcome !== 'ok',
    attempts: 1,
    ...(run ? { enqueuedAt: T0 + 1, ...run, worker: 'w1' } : {}),
  };
  return { result, settledAt, byCoordinator: !run };
}

describe('batch overhead', () => {
  it('counts a call the coordinator timed out as its own time up to its deadline, not as overhead', async () => {
    // A 1 s call that ran and was timed out at its deadline (answered 12 ms late), beside a fast one.
    const result = summarise({
      batchName: 'b',
      startedAt: T0,
      calls: [
        { toolUseId: 'fast', deadline: T0 + 5_000 },
        { toolUseId: 'slow', deadline: T0 + 1_000 },
      ],
      settled: [
        settled('ok', T0 + 30, { startedAt: T0 + 5, finishedAt: T0 + 25 }),
        settled('timeout', T0 + 1_012),
      ],
      poolOf: () => 'default',
    });
    expect(result.wallMs).toBe(1_012);
    expect(result.slowestRunMs).toBe(1_000);
    expect(result.overheadMs).toBe(12);

    const registry = createRegistry();
    const metrics = createCoordinatorMetrics(registry);
    observeBatch(metrics, result);
    const text = await registry.metrics();
    expect(text).toMatch(/^toolq_batch_overhead_seconds_sum(\{[^}]*\})? 0\.012$/m);
  });

  it('keeps a worker’s own timing when it reported the timeout itself', () => {
    // The tool's own 300 ms timeout, enforced on the worker, well before the batch's deadline.
    const result = summarise({
      batchName: 'b',
      startedAt: T0,
      calls: [{ toolUseId: 'slow', deadline: T0 + 10_000 }],
      settled: [settled('timeout', T0 + 320, { startedAt: T0 + 10, finishedAt: T0 + 310 })],
      poolOf: () => 'default',
    });
    expect(result.slowestRunMs).toBe(300);
    expect(result.overheadMs).toBe(20);
  });

  it('still counts a batch of plain results as wall time minus the slowest run', () => {
    const result = summarise({
      batchName: 'b',
      startedAt: T0,
      calls: [
        { toolUseId: 'a', deadline: T0 + 5_000 },
        { toolUseId: 'b', deadline: T0 + 5_000 },
      ],
      settled: [
        settled('ok', T0 + 50, { startedAt: T0 + 4, finishedAt: T0 + 44 }),
        settled('error', T0 + 20, { startedAt: T0 + 3, finishedAt: T0 + 15 }),
      ],
      poolOf: () => 'default',
    });
    expect(result.slowestRunMs).toBe(40);
    expect(result.overheadMs).toBe(10);
  });
});
