/**
 * The seed's performance report (per tool: calls, average, p95, max; overall success rate), from a
 * run's calls or the dispatcher's recent calls. Owned by the core and importing nothing of the agent
 * loop, so that the dispatcher can keep its recent calls without depending on the loop's types.
 * The fleet's report (fleet-report.ts) and the HTTP answer of GET /v1/report are this shape too.
 */
import { z } from 'zod';

export const toolPerformanceSchema = z.object({
  tool: z.string(),
  calls: z.number().int(),
  ok: z.number().int(),
  /**
   * Calls answered outcome `unknown` (at-most-once calls interrupted after they started: they may
   * or may not have taken effect; docs/delivery.md), counted among the failures. Absent when none.
   */
  unknown: z.number().int().optional(),
  /**
   * Calls answered `not_started` (flow-controlled calls that never ran: a cap, a rate limit, a
   * 429 hold or a pause kept them waiting past their deadline; docs/flow-control.md). Counted
   * apart, not among the failures: the failures are `calls - ok - notStarted`. Absent when none.
   */
  notStarted: z.number().int().optional(),
  avgMs: z.number(),
  p95Ms: z.number(),
  maxMs: z.number(),
});
export type ToolPerformance = z.infer<typeof toolPerformanceSchema>;

export const performanceReportSchema = z.object({
  tools: z.array(toolPerformanceSchema),
  calls: z.number().int(),
  succeeded: z.number().int(),
  /** Calls answered `not_started`, among `calls`: neither successes nor failures. */
  notStarted: z.number().int(),
  /** succeeded / (calls - notStarted), 0..1; 1 when every call (or none) was not started. */
  successRate: z.number(),
});
export type PerformanceReport = z.infer<typeof performanceReportSchema>;

/** What the report needs of a call (a run's ToolCallRecord, or the dispatcher's recent calls). */
export interface ReportedCall {
  name: string;
  isError: boolean;
  /** The call's outcome; `unknown` and `not_started` ones are counted apart. */
  outcome?: string;
  /** Run time on the worker. */
  runMs?: number;
  /** Dispatch → answer. */
  latencyMs: number;
}

/** A call's own time: its run time on the worker, or how long it took to answer when it never ran. */
export function callMs(call: ReportedCall): number {
  return call.runMs ?? call.latencyMs;
}

export function performanceReport(calls: readonly ReportedCall[]): PerformanceReport {
  const byTool = new Map<string, ReportedCall[]>();
  for (const call of calls) byTool.set(call.name, [...(byTool.get(call.name) ?? []), call]);
  const tools = [...byTool].map(([tool, list]) => {
    const durations = list.map(callMs).sort((a, b) => a - b);
    const unknown = list.filter((c) => c.outcome === 'unknown').length;
    const notStarted = list.filter((c) => c.outcome === 'not_started').length;
    return {
      tool,
      calls: list.length,
      ok: list.filter((c) => !c.isError).length,
      ...(unknown > 0 ? { unknown } : {}),
      ...(notStarted > 0 ? { notStarted } : {}),
      avgMs: round(durations.reduce((a, b) => a + b, 0) / durations.length),
      p95Ms: percentile(durations, 0.95),
      maxMs: durations.at(-1) ?? 0,
    };
  });
  const succeeded = calls.filter((c) => !c.isError).length;
  const notStarted = calls.filter((c) => c.outcome === 'not_started').length;
  return {
    tools,
    calls: calls.length,
    succeeded,
    notStarted,
    successRate: rate(succeeded, calls.length, notStarted),
  };
}

/** Not-started calls neither succeeded nor failed: the rate is over the calls that were answered otherwise. */
export function rate(succeeded: number, calls: number, notStarted: number): number {
  return calls - notStarted <= 0 ? 1 : succeeded / (calls - notStarted);
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil(p * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? 0;
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
