/** What a dispatch answers: the ordered tool_result blocks and what happened to each call. */
import { type McpToolResult, outcomeSchema, type ToolResultBlock, toToolResultBlock } from '@toolq/shared';
import type { CoordinatorMetrics } from '@toolq/shared/internal';
import { z } from 'zod';
import type { ApprovalOutcome } from './approvals/approval-options.ts';
import type { SettledCall } from './barrier.ts';

/** What happened to one call (the HTTP API writes it in snake_case: http/wire.ts). */
export const callStatsSchema = z.object({
  toolUseId: z.string(),
  tool: z.string(),
  /** Pool the call was queued on; absent when it never reached a queue (unknown tool, no worker). */
  pool: z.string().optional(),
  outcome: outcomeSchema,
  /** Worker that ran it. */
  worker: z.string().optional(),
  attempts: z.number().int(),
  /** Enqueue → start on a worker. */
  queueWaitMs: z.number().optional(),
  /** Start → end on the worker. */
  runMs: z.number().optional(),
  /** Dispatch → answer known to the coordinator. */
  latencyMs: z.number(),
});
export type CallStats = z.infer<typeof callStatsSchema>;

export interface BatchResult {
  /** The caller's name for the batch (`batch_id` over HTTP); its uid when the caller gave none. */
  batchName: string;
  /** @deprecated The same as `batchName` (its name before). */
  batchId: string;
  /** In the order of the tool_use blocks, one per block. */
  toolResults: ToolResultBlock[];
  /**
   * By call, the MCP content of the calls that answered with it (tools returning `mcpResult()`,
   * MCP servers' tools), for callers that speak MCP; absent when no call did.
   */
  mcpResults?: (McpToolResult | undefined)[];
  calls: CallStats[];
  wallMs: number;
  /**
   * Own time of the slowest call: its run on its worker, or for a call that timed out without a
   * worker's timing, the time from the dispatch to its deadline (0 when none ran).
   */
  slowestRunMs: number;
  /** wallMs − slowestRunMs: what the queue, the network and the barrier cost. */
  overheadMs: number;
  /** The decisions on the calls that waited for approval (approvals/): who, when, why. */
  approvals?: ApprovalOutcome[];
}

export function summarise(input: {
  batchName: string;
  startedAt: number;
  /**
   * By index: the caller's own tool_use ids and each call's deadline (the barrier's calls; not the
   * caller's objects, kept no longer).
   */
  calls: readonly { toolUseId: string; deadline: number }[];
  settled: readonly SettledCall[];
  poolOf: (index: number) => string | undefined;
}): BatchResult {
  const endedAt = Math.max(input.startedAt, ...input.settled.map((s) => s.settledAt));
  const calls: CallStats[] = input.settled.map(({ result, settledAt }, index) => {
    const stats: CallStats = {
      toolUseId: result.toolUseId,
      tool: result.tool,
      outcome: result.outcome,
      attempts: result.attempts,
      latencyMs: settledAt - input.startedAt,
    };
    const pool = input.poolOf(index);
    if (pool) stats.pool = pool;
    if (result.worker) stats.worker = result.worker;
    if (result.startedAt && result.enqueuedAt)
      stats.queueWaitMs = Math.max(0, result.startedAt - result.enqueuedAt);
    if (result.startedAt && result.finishedAt) stats.runMs = result.finishedAt - result.startedAt;
    return stats;
  });
  const wallMs = endedAt - input.startedAt;
  const slowestRunMs = Math.max(
    0,
    ...calls.map((c, i) => ownTimeMs(c, input.calls[i]?.deadline, input.startedAt)),
  );
  return {
    batchName: input.batchName,
    batchId: input.batchName,
    // The caller's ids, not the worker's echo of them: a tool_result must match its tool_use exactly.
    toolResults: input.settled.map(({ result }, i) =>
      toToolResultBlock({ ...result, toolUseId: input.calls[i]?.toolUseId ?? result.toolUseId }),
    ),
    ...(input.settled.some(({ result }) => result.mcp)
      ? { mcpResults: input.settled.map(({ result }) => result.mcp) }
      : {}),
    calls,
    wallMs,
    slowestRunMs,
    overheadMs: Math.max(0, wallMs - slowestRunMs),
  };
}

/**
 * How long a call itself took, which the overhead is not. A call the coordinator timed out has no
 * run time (its worker never answered), yet it took its whole budget: counting 0 made the time up
 * to its deadline "overhead" (a 1 s timeout read as ~1 s of overhead, and fired the overhead
 * alert). Its own time runs until its deadline; only the lateness past it is overhead.
 */
function ownTimeMs(call: CallStats, deadline: number | undefined, startedAt: number): number {
  if (call.runMs !== undefined) return call.runMs;
  if (call.outcome === 'timeout' && deadline !== undefined) return Math.max(0, deadline - startedAt);
  return 0;
}

export const UNKNOWN_TOOL_LABEL = '_unknown';

export function observeBatch(metrics: CoordinatorMetrics, result: BatchResult): void {
  for (const call of result.calls) {
    // Unknown names come from callers: one label value for all of them keeps the series bounded.
    const tool = call.outcome === 'unknown_tool' ? UNKNOWN_TOOL_LABEL : call.tool;
    metrics.calls.inc({ tool, pool: call.pool ?? 'none', outcome: call.outcome });
  }
  metrics.batchSize.observe(result.calls.length);
  metrics.batchDuration.observe(result.wallMs / 1000);
  metrics.batchOverhead.observe(result.overheadMs / 1000);
}
