/**
 * The HTTP API's response bodies as zod schemas: the source of the responses in the OpenAPI
 * document (openapi.ts), and what the tests hold real answers of a running coordinator to.
 */
import { contentBlockSchema } from '@toolq/shared';
import { toolSpecSchema } from '@toolq/shared/internal';
import { z } from 'zod';
import { callStatsSchema } from '../batch-result.ts';
import { fleetReportSchema } from '../fleet-report.ts';
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
});

export const catalogToolSchema = toolSpecSchema.extend({
  pools: z.array(z.string()),
  liveWorkers: z.number().int(),
  /** Its pool lets calls wait for a worker to start (scale from zero). */
  waitsForWorkers: z.boolean(),
  /** Flow limits in force (the definition's or an operator's override) and the pause: docs/flow-control.md. */
  limits: z.object({
    concurrency: z.number().int().nullable(),
    rate_limit: z.object({ max: z.number().int(), per_ms: z.number().int() }).nullable(),
    paused: z.boolean(),
  }),
});

export const toolsResponseSchema = z.object({ tools: z.array(catalogToolSchema) });

export const reportResponseSchema = fleetReportSchema;

/** The error answer of the document: every route's 4xx and 5xx have this body. */
export const ERROR = named('Error', errorResponseSchema);
export const error = (description: string): ApiResponse => ({ description, body: ERROR });

export const BAD_REQUEST = error(
  'The body or a parameter breaks the schema (unknown fields included), is not JSON, or has a `__proto__` key; the message names the path.',
);

export const healthResponseSchema = z.object({ ok: z.literal(true) });
export const readyResponseSchema = z.object({ ready: z.boolean() });
