/**
 * The seed's performance report (per tool: calls, average, p95, max; overall success rate) and the
 * run's parallel speed-up, computed from the calls of a run.
 */
import type { IterationStats, RunStats, ToolCallRecord } from './agent/types.ts';

export interface ToolPerformance {
  tool: string;
  calls: number;
  ok: number;
  avgMs: number;
  p95Ms: number;
  maxMs: number;
}

export interface PerformanceReport {
  tools: ToolPerformance[];
  calls: number;
  succeeded: number;
  /** 0..1; 1 for a run without calls. */
  successRate: number;
}

/** What the report needs of a call (a run's ToolCallRecord, or the dispatcher's recent calls). */
export type ReportedCall = Pick<ToolCallRecord, 'name' | 'isError' | 'runMs' | 'latencyMs'>;

/** A call's own time: its run time on the worker, or how long it took to answer when it never ran. */
export function callMs(call: ReportedCall): number {
  return call.runMs ?? call.latencyMs;
}

export function performanceReport(calls: readonly ReportedCall[]): PerformanceReport {
  const byTool = new Map<string, ReportedCall[]>();
  for (const call of calls) byTool.set(call.name, [...(byTool.get(call.name) ?? []), call]);
  const tools = [...byTool].map(([tool, list]) => {
    const durations = list.map(callMs).sort((a, b) => a - b);
    return {
      tool,
      calls: list.length,
      ok: list.filter((c) => !c.isError).length,
      avgMs: round(durations.reduce((a, b) => a + b, 0) / durations.length),
      p95Ms: percentile(durations, 0.95),
      maxMs: durations.at(-1) ?? 0,
    };
  });
  const succeeded = calls.filter((c) => !c.isError).length;
  return {
    tools,
    calls: calls.length,
    succeeded,
    successRate: calls.length === 0 ? 1 : succeeded / calls.length,
  };
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil(p * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? 0;
}

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

function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
