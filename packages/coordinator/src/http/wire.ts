/**
 * The library's objects as the HTTP API writes them: every field of every body is snake_case (the
 * Messages API's convention), while the TypeScript API keeps camelCase. Each mapping is written
 * out, not derived by renaming keys, so that what is the caller's own data (a tool's input, a
 * message's content, a tool's input_schema) crosses unchanged. A run's result is mapped when it is
 * stored (runs/run-result.ts).
 */
import type { z } from 'zod';
import type { BatchResult, CallStats } from '../batch-result.ts';
import type { CatalogTool } from '../catalog.ts';
import type { FleetReport } from '../fleet-report.ts';
import type { ChatToolBatch, OpenAIBatchStats, ResponsesToolBatch } from '../openai/dispatch.ts';
import { wireApprovalOutcome } from './approval-wire.ts';
import type {
  batchResponseSchema,
  catalogToolSchema,
  chatBatchResponseSchema,
  reportResponseSchema,
  responsesBatchResponseSchema,
} from './responses.ts';

export function wireCallStats(c: CallStats) {
  return {
    tool_use_id: c.toolUseId,
    tool: c.tool,
    ...(c.pool === undefined ? {} : { pool: c.pool }),
    outcome: c.outcome,
    ...(c.worker === undefined ? {} : { worker: c.worker }),
    attempts: c.attempts,
    ...(c.queueWaitMs === undefined ? {} : { queue_wait_ms: c.queueWaitMs }),
    ...(c.runMs === undefined ? {} : { run_ms: c.runMs }),
    latency_ms: c.latencyMs,
  };
}

/** POST /v1/tool-batches and GET /v1/tool-batches/{id}. */
export function wireBatch(result: BatchResult): z.input<typeof batchResponseSchema> {
  return {
    batch_id: result.batchName,
    tool_results: result.toolResults,
    stats: {
      wall_ms: result.wallMs,
      slowest_run_ms: result.slowestRunMs,
      overhead_ms: result.overheadMs,
      calls: result.calls.map(wireCallStats),
    },
    ...(result.approvals ? { approvals: result.approvals.map(wireApprovalOutcome) } : {}),
  };
}

/** The stats of a batch of OpenAI tool calls, as for tool_use blocks. */
function wireOpenAIStats(result: OpenAIBatchStats) {
  return {
    wall_ms: result.wallMs,
    slowest_run_ms: result.slowestRunMs,
    overhead_ms: result.overheadMs,
    calls: result.calls.map(wireCallStats),
  };
}

/** POST /v1/tool-batches with `tool_calls`. */
export function wireChatBatch(result: ChatToolBatch): z.input<typeof chatBatchResponseSchema> {
  return { batch_id: result.batchName, tool_messages: result.toolMessages, stats: wireOpenAIStats(result) };
}

/** POST /v1/tool-batches with `function_calls`. */
export function wireResponsesBatch(result: ResponsesToolBatch): z.input<typeof responsesBatchResponseSchema> {
  return {
    batch_id: result.batchName,
    function_call_outputs: result.outputs,
    stats: wireOpenAIStats(result),
  };
}

/** One tool of GET /v1/tools: `input_schema` is the tool's own JSON Schema, passed as declared. */
export function wireCatalogTool(t: CatalogTool): z.input<typeof catalogToolSchema> {
  return {
    name: t.name,
    description: t.description,
    input_schema: t.input_schema,
    timeout_ms: t.timeoutMs,
    ...(t.retry ? { retry: { attempts: t.retry.attempts, backoff_ms: t.retry.backoffMs } } : {}),
    ...(t.approval === undefined ? {} : { approval: t.approval }),
    pools: t.pools,
    live_workers: t.liveWorkers,
    waits_for_workers: t.waitsForWorkers,
    limits: t.limits,
  };
}

/** GET /v1/report. */
export function wireReport(r: FleetReport): z.input<typeof reportResponseSchema> {
  return {
    window: r.window,
    tools: r.tools.map((t) => ({
      tool: t.tool,
      calls: t.calls,
      ok: t.ok,
      ...(t.unknown !== undefined ? { unknown: t.unknown } : {}),
      ...(t.notStarted !== undefined ? { not_started: t.notStarted } : {}),
      avg_ms: t.avgMs,
      p95_ms: t.p95Ms,
      max_ms: t.maxMs,
    })),
    calls: r.calls,
    succeeded: r.succeeded,
    not_started: r.notStarted,
    success_rate: r.successRate,
  };
}
