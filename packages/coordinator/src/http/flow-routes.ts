/**
 * Operators' routes of flow control (docs/flow-control.md): a tool's limits, changed at run time,
 * and its pause. They need an operator token (TOOLQ_OPERATOR_TOKENS); an app token answers 403.
 */
import { TOOL_NAME_PATTERN } from '@toolq/shared/internal';
import { z } from 'zod';
import { BAD_REQUEST, error } from './responses.ts';
import { type ApiRoute, named, route } from './route.ts';

const toolParam = {
  name: {
    description: 'The tool name, as GET /v1/tools lists it.',
    schema: z.string().regex(TOOL_NAME_PATTERN, `must be a tool name (${TOOL_NAME_PATTERN})`),
    label: 'tool name',
  },
};

const rateLimitBody = z
  .object({
    max: z.number().int().min(1, 'must be at least 1 call per window').max(1_000_000),
    per_ms: z
      .number({ error: 'a rate limit needs its window: per_ms, in milliseconds' })
      .int()
      .min(1, 'must be a window of at least 1 ms')
      .max(86_400_000, 'must be at most 86400000 ms (a day)'),
  })
  .strict();

export const limitsResponseSchema = z.object({
  tool: z.string(),
  /** Most calls running at once, fleet-wide; null: no cap. */
  concurrency: z.number().int().nullable(),
  /** Most calls starting in any window of per_ms milliseconds; null: no limit. */
  rate_limit: z.object({ max: z.number().int(), per_ms: z.number().int() }).nullable(),
  paused: z.boolean(),
});

export const limitsRequestSchema = z
  .object({
    concurrency: z
      .number()
      .int('must be a whole number of calls')
      .min(1, 'must be at least 1 (to stop the tool, pause it)')
      .max(100_000)
      .nullable()
      .optional(),
    rate_limit: rateLimitBody.nullable().optional(),
  })
  .strict()
  .refine((body) => body.concurrency !== undefined || body.rate_limit !== undefined, {
    error: 'give concurrency, rate_limit or both (null removes a limit)',
  });

const LIMITS = named('ToolLimits', limitsResponseSchema);
const OPERATOR_ONLY = error('An app token: these routes need an operator token (TOOLQ_OPERATOR_TOKENS).');
const UNKNOWN = error('No worker advertises the tool and it has no limits set.');

export const FLOW_ROUTES: ApiRoute[] = [
  route({
    method: 'get',
    path: '/v1/tools/:name/limits',
    operationId: 'getToolLimits',
    tag: 'tools',
    operator: true,
    summary:
      "A tool's flow limits in force (its definition's, or an operator's override) and whether it is paused",
    params: toolParam,
    responses: {
      200: { description: 'The limits.', body: LIMITS },
      400: BAD_REQUEST,
      403: OPERATOR_ONLY,
      404: UNKNOWN,
    },
    handler: async ({ params, ctx }) => ctx.dispatcher.flow.get(params.name),
  }),
  route({
    method: 'put',
    path: '/v1/tools/:name/limits',
    operationId: 'putToolLimits',
    tag: 'tools',
    operator: true,
    summary:
      "Overrides a tool's limits fleet-wide (null removes one); applies within a second, survives restarts",
    params: toolParam,
    body: named('ToolLimitsChange', limitsRequestSchema),
    responses: {
      200: { description: 'The limits now in force.', body: LIMITS },
      400: BAD_REQUEST,
      403: OPERATOR_ONLY,
      404: UNKNOWN,
    },
    handler: async ({ params, body, ctx }) =>
      ctx.dispatcher.flow.put(params.name, {
        ...(body.concurrency !== undefined ? { concurrency: body.concurrency } : {}),
        ...(body.rate_limit !== undefined
          ? { rateLimit: body.rate_limit && { max: body.rate_limit.max, perMs: body.rate_limit.per_ms } }
          : {}),
      }),
  }),
  route({
    method: 'post',
    path: '/v1/tools/:name/pause',
    operationId: 'pauseTool',
    tag: 'tools',
    operator: true,
    summary: 'No call of the tool starts anywhere in the fleet until it is resumed (running calls finish)',
    params: toolParam,
    responses: {
      200: { description: 'The tool, paused.', body: LIMITS },
      400: BAD_REQUEST,
      403: OPERATOR_ONLY,
      404: UNKNOWN,
    },
    handler: async ({ params, ctx }) => ctx.dispatcher.flow.setPaused(params.name, true),
  }),
  route({
    method: 'post',
    path: '/v1/tools/:name/resume',
    operationId: 'resumeTool',
    tag: 'tools',
    operator: true,
    summary: 'Calls of a paused tool start again',
    params: toolParam,
    responses: {
      200: { description: 'The tool, resumed.', body: LIMITS },
      400: BAD_REQUEST,
      403: OPERATOR_ONLY,
      404: UNKNOWN,
    },
    handler: async ({ params, ctx }) => ctx.dispatcher.flow.setPaused(params.name, false),
  }),
];
