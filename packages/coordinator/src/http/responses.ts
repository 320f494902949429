/**
 * The HTTP API's response bodies as zod schemas: the source of the responses in the OpenAPI
 * document (openapi.ts), and what the tests hold real answers of a running coordinator to. Every
 * field is snake_case (wire.ts maps the library's camelCase objects to these).
 */
import { contentBlockSchema, outcomeSchema } from '@toolq/shared';
import { approvalSettingSchema } from '@toolq/shared/internal';
import { z } from 'zod';
import { fleetReportSchema } from '../fleet-report.ts';
import { approvalOutcomeSchema } from './approval-wire.ts';
import { type ApiResponse, named } from './route.ts';

/** Every error, whatever the route: `{"error": {"code", "message"}}`. */
export const errorResponseSchema = z.object({
  error: z.object({
    /** A stable, machine-readable code, e.g. INVALID_REQUEST, UNAUTHORIZED, NOT_FOUND, BATCH_EXISTS. */
    code: z.string(),
    /** What is wrong and where, for a human. */
    message: z.string(),
  }),
});

export const toolResultSchema = z.object({
  type: z.literal('tool_result'),
  tool_use_id: z.string(),
  content: z.union([z.string(), z.array(contentBlockSchema)]),
  is_error: z.literal(true).optional(),
});

/** What happened to one call of a batch (`stats.calls`), in the order of the tool_use blocks. */
export const callStatsSchema = z.object({
  tool_use_id: z.string(),
  tool: z.string(),
  pool: z
    .string()
    .optional()
    .describe('The pool the call was queued on; absent when it never reached a queue.'),
  outcome: outcomeSchema,
  worker: z.string().optional().describe('The worker that ran it.'),
  attempts: z.number().int(),
  queue_wait_ms: z.number().optional().describe('Enqueue → start on a worker.'),
  run_ms: z.number().optional().describe('Start → end on the worker.'),
  latency_ms: z.number().describe('Dispatch → answer known to the coordinator.'),
});

/** POST /v1/tool-batches and GET /v1/tool-batches/{id}. */
export const batchResponseSchema = z.object({
  batch_id: z.string(),
  /** One per tool_use, in the order sent: append them as one user message. */
  tool_results: z.array(toolResultSchema),
  stats: z.object({
    wall_ms: z.number(),
    slowest_run_ms: z.number(),
    overhead_ms: z.number(),
    calls: z.array(callStatsSchema),
  }),
  approvals: z
    .array(approvalOutcomeSchema)
    .optional()
    .describe('The decisions on the calls that waited for approval: who, when, why (docs/approvals.md).'),
});

const batchStatsSchema = batchResponseSchema.shape.stats;

/** POST /v1/tool-batches with `tool_calls`: OpenAI Chat Completions tool messages, in order. */
export const chatBatchResponseSchema = z.object({
  batch_id: z.string(),
  tool_messages: z
    .array(z.object({ role: z.literal('tool'), tool_call_id: z.string(), content: z.string() }))
    .describe(
      'One per tool call, in the order sent: append them after the assistant message. An error (OpenAI tool messages have no error flag) starts `Error:`.',
    ),
  stats: batchStatsSchema,
});

const functionCallOutputContentSchema = z.union([
  z.object({ type: z.literal('input_text'), text: z.string() }),
  z.object({ type: z.literal('input_image'), image_url: z.string() }),
]);

/** POST /v1/tool-batches with `function_calls`: OpenAI Responses function_call_output items, in order. */
export const responsesBatchResponseSchema = z.object({
  batch_id: z.string(),
  function_call_outputs: z
    .array(
      z.object({
        type: z.literal('function_call_output'),
        call_id: z.string(),
        output: z.union([z.string(), z.array(functionCallOutputContentSchema)]),
      }),
    )
    .describe(
      "One per function_call, in the order sent: put them in the next request's `input`. An error starts `Error:`.",
    ),
  stats: batchStatsSchema,
});

export const catalogToolSchema = z.object({
  name: z.string(),
  description: z.string(),
  input_schema: z
    .record(z.string(), z.unknown())
    .describe("The tool's JSON Schema, exactly as the tool declares it."),
  timeout_ms: z.number().describe("The tool's own deadline per call."),
  retry: z
    .object({ attempts: z.number().int(), backoff_ms: z.number() })
    .optional()
    .describe('How the tool may be re-run with `failure_policy: "retry"`.'),
  approval: approvalSettingSchema
    .optional()
    .describe("Which calls wait for a person's approval: always, or when the input matches a rule."),
  pools: z.array(z.string()),
  live_workers: z.number().int(),
  waits_for_workers: z
    .boolean()
    .describe('Its pool lets calls wait for a worker to start (scale from zero).'),
  /** Flow limits in force (the definition's or an operator's override) and the pause: docs/flow-control.md. */
  limits: z.object({
    concurrency: z.number().int().nullable(),
    rate_limit: z.object({ max: z.number().int(), per_ms: z.number().int() }).nullable(),
    paused: z.boolean(),
  }),
});

export const toolsResponseSchema = z.object({ tools: z.array(catalogToolSchema) });

export const reportResponseSchema = z.object({
  window: fleetReportSchema.shape.window,
  tools: z.array(
    z.object({
      tool: z.string(),
      calls: z.number().int(),
      ok: z.number().int(),
      unknown: z
        .number()
        .int()
        .optional()
        .describe(
          'Calls answered outcome unknown (at-most-once calls interrupted after they started; docs/delivery.md), among the failures. Absent when none.',
        ),
      not_started: z
        .number()
        .int()
        .optional()
        .describe(
          'Calls answered not_started (flow-controlled calls that never ran: a cap, a rate limit, a 429 hold or a pause kept them past their deadline; docs/flow-control.md). Not failures: the failures are calls - ok - not_started. Absent when none.',
        ),
      avg_ms: z.number(),
      p95_ms: z.number(),
      max_ms: z.number(),
    }),
  ),
  calls: z.number().int(),
  succeeded: z.number().int(),
  not_started: z
    .number()
    .int()
    .describe('Calls answered not_started, among `calls`: neither successes nor failures.'),
  success_rate: z
    .number()
    .describe('succeeded / (calls - not_started), 0..1; 1 when every call (or none) was not started.'),
});

/** The error answer of the document: every route's 4xx and 5xx have this body. */
export const ERROR = named('Error', errorResponseSchema);
export const error = (description: string): ApiResponse => ({ description, body: ERROR });

export const BAD_REQUEST = error(
  'The body or a parameter breaks the schema (unknown fields included), is not JSON, or has a `__proto__` key; the message names the path.',
);

export const healthResponseSchema = z.object({ ok: z.literal(true) });
export const readyResponseSchema = z.object({ ready: z.boolean() });
