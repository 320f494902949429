/** The run's parallel speed-up and time split, from its iterations and calls. */
import { callMs, round } from '../performance-report.ts';
import type { IterationStats, RunStats, ToolCallRecord } from './types.ts';

export function runStats(input: {
  wallMs: number;
  iterations: readonly IterationStats[];
  calls: readonly ToolCallRecord[];
}): RunStats {
  const sum = (pick: (it: IterationStats) => number) => input.iterations.reduce((n, it) => n + pick(it), 0);
  const toolWallMs = sum((it) => it.toolWallMs);
  const sumToolMs = input.calls.reduce((n, c) => n + callMs(c), 0);
  return {
    wallMs: input.wallMs,
    modelMs: sum((it) => it.modelMs),
    toolWallMs,
    toolWaitMs: sum((it) => it.toolWaitMs),
    toolCalls: input.calls.length,
    sumToolMs,
    speedup: toolWallMs > 0 ? round(sumToolMs / toolWallMs, 2) : 1,
    headStartMs: sum((it) => it.headStartMs),
  };
}
