/**
 * A finished run's result as GET /v1/runs/{id} answers it (`result`): snake_case like the whole
 * HTTP API, mapped from the agent loop's AgentResult once, when the run finishes, and stored in
 * this form with the run so that any coordinator answers it as it is. The model's objects (a
 * call's `input`, the `messages`) are passed as they were.
 */
import { z } from 'zod';
import type { AgentResult, TokenCounts, ToolCallRecord } from '../agent/types.ts';

const tokensSchema = z.object({
  input_tokens: z.number().int(),
  output_tokens: z.number().int(),
  cache_creation_input_tokens: z.number().int(),
  cache_read_input_tokens: z.number().int(),
});

export const runResultSchema = z.object({
  status: z.string(),
  text: z.string(),
  model: z.string(),
  iterations: z.number().int(),
  calls: z.array(
    z.object({
      iteration: z.number().int(),
      tool_use_id: z.string(),
      name: z.string(),
      input: z.unknown().describe("The model's input to the tool, as it was."),
      outcome: z.string(),
      is_error: z.boolean(),
      worker: z.string().optional(),
      pool: z.string().optional(),
      attempts: z.number().int(),
      queue_wait_ms: z.number().optional(),
      run_ms: z.number().optional(),
      latency_ms: z.number(),
      dispatched_at_ms: z
        .number()
        .describe('Milliseconds after the run started when the call was dispatched.'),
      early: z.boolean().describe("Dispatched before the model's message ended (streaming)."),
    }),
  ),
  usage: z.object({
    executor: tokensSchema,
    advisor: tokensSchema,
    by_model: z.array(
      tokensSchema.extend({
        model: z.string(),
        role: z.enum(['executor', 'advisor']),
        calls: z.number().int(),
      }),
    ),
  }),
  stats: z.object({
    wall_ms: z.number(),
    model_ms: z.number(),
    tool_wall_ms: z.number(),
    tool_wait_ms: z.number(),
    tool_calls: z.number().int(),
    sum_tool_ms: z.number(),
    speedup: z.number(),
    head_start_ms: z.number(),
  }),
  messages: z
    .array(
      z.object({
        role: z.string(),
        content: z.union([z.string(), z.array(z.unknown())]).optional(),
      }),
    )
    .describe('The whole conversation, as Messages API message objects.'),
});

/** Token counts as the Messages API names them. */
export function wireTokens(t: TokenCounts) {
  return {
    input_tokens: t.inputTokens,
    output_tokens: t.outputTokens,
    cache_creation_input_tokens: t.cacheCreationInputTokens,
    cache_read_input_tokens: t.cacheReadInputTokens,
  };
}

/** A call of a run: `input` is the model's, passed as it was. */
function wireRunCall(c: ToolCallRecord) {
  return {
    iteration: c.iteration,
    tool_use_id: c.toolUseId,
    name: c.name,
    input: c.input,
    outcome: c.outcome,
    is_error: c.isError,
    ...(c.worker === undefined ? {} : { worker: c.worker }),
    ...(c.pool === undefined ? {} : { pool: c.pool }),
    attempts: c.attempts,
    ...(c.queueWaitMs === undefined ? {} : { queue_wait_ms: c.queueWaitMs }),
    ...(c.runMs === undefined ? {} : { run_ms: c.runMs }),
    latency_ms: c.latencyMs,
    dispatched_at_ms: c.dispatchedAtMs,
    early: c.early,
  };
}

export function wireRunResult(r: AgentResult): z.input<typeof runResultSchema> {
  const s = r.stats;
  return {
    status: r.status,
    text: r.text,
    model: r.model,
    iterations: r.iterations.length,
    calls: r.calls.map(wireRunCall),
    usage: {
      executor: wireTokens(r.usage.executor),
      advisor: wireTokens(r.usage.advisor),
      by_model: r.usage.byModel.map((m) => ({
        model: m.model,
        role: m.role,
        calls: m.calls,
        ...wireTokens(m),
      })),
    },
    stats: {
      wall_ms: s.wallMs,
      model_ms: s.modelMs,
      tool_wall_ms: s.toolWallMs,
      tool_wait_ms: s.toolWaitMs,
      tool_calls: s.toolCalls,
      sum_tool_ms: s.sumToolMs,
      speedup: s.speedup,
      head_start_ms: s.headStartMs,
    },
    messages: r.messages,
  };
}
