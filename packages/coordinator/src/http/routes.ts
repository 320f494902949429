/**
 * The HTTP API's route table: every route, declared once (route.ts), in the order the OpenAPI
 * document lists them. The server registers exactly these (and the admin page, which is
 * bull-board's UI, not part of the API); the document and docs/openapi.json are generated from them.
 */
import { ToolqError } from '@toolq/shared';
import { withinRedis } from '@toolq/shared/internal';
import { z } from 'zod';
import { DEFAULT_REPORT_WINDOW, fleetReport } from '../fleet-report.ts';
import { dispatchChatToolCalls, dispatchFunctionCalls } from '../openai/dispatch.ts';
import { refreshGauges } from '../queue-gauges.ts';
import { APPROVAL_ROUTES } from './approvals.ts';
import { appOf } from './auth.ts';
import { HTTP_DEFAULTS } from './defaults.ts';
import { FLOW_ROUTES } from './flow-routes.ts';
import {
  BAD_REQUEST,
  batchResponseSchema,
  chatBatchResponseSchema,
  ERROR,
  error,
  healthResponseSchema,
  readyResponseSchema,
  reportResponseSchema,
  responsesBatchResponseSchema,
  toolsResponseSchema,
} from './responses.ts';
import { type ApiRoute, named, route } from './route.ts';
import { RUN_ROUTES } from './runs.ts';
import { batchNameSchema, toolBatchRequestSchema } from './schemas.ts';
import { wireBatch, wireCatalogTool, wireChatBatch, wireReport, wireResponsesBatch } from './wire.ts';

const TOOL_BATCH = named('ToolBatch', batchResponseSchema);
/** POST answers in the format of the calls it was sent. */
const ANY_TOOL_BATCH = named(
  'ToolBatchAnswer',
  z.union([batchResponseSchema, chatBatchResponseSchema, responsesBatchResponseSchema]),
);

const BATCH_ROUTES: ApiRoute[] = [
  route({
    method: 'post',
    path: '/v1/tool-batches',
    operationId: 'createToolBatch',
    tag: 'batches',
    summary: 'Run the tool calls of one model turn and answer their results in order',
    description:
      'Send the `tool_use` blocks as the Messages API returned them. The answer comes when every call has a result ' +
      '(or its deadline passed): one `tool_result` per block, in the order sent, failures marked `is_error`. ' +
      "Or send OpenAI's calls as returned: Chat Completions `tool_calls` (answered with `tool_messages`) or " +
      'Responses API `function_call` items as `function_calls` (answered with `function_call_outputs`); their ' +
      'errors start `Error:`. A client that disconnects cancels its calls.',
    body: named('ToolBatchRequest', toolBatchRequestSchema),
    responses: {
      200: { description: 'Every call answered, in the format of the calls sent.', body: ANY_TOOL_BATCH },
      400: BAD_REQUEST,
      409: error('A batch with this `batch_id` was dispatched already: collect it with GET.'),
      413: error('The body is larger than the limit (TOOLQ_BODY_LIMIT_BYTES).'),
      415: error('The body is not application/json.'),
      503: error('The coordinator is shutting down: send the batch to another one, or again later.'),
    },
    handler: async ({ body, request, reply, ctx }) => {
      const controller = new AbortController();
      // A client that hangs up does not keep its calls running.
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) controller.abort(new Error('the HTTP client disconnected'));
      });
      const options = {
        timeoutMs: body.timeout_ms,
        failurePolicy: body.failure_policy,
        maxRetries: body.max_retries,
        priority: body.priority,
        context: body.context,
        ...approvalOption(body),
        // Batch names are the app's own: another app may use the same name and never sees this batch.
        app: appOf(request),
        signal: controller.signal,
      };
      const { dispatcher } = ctx;
      if (body.tool_calls) {
        return wireChatBatch(await dispatchChatToolCalls(dispatcher, body.tool_calls, options, 'tool_calls'));
      }
      if (body.function_calls) {
        const items = body.function_calls;
        return wireResponsesBatch(await dispatchFunctionCalls(dispatcher, items, options, 'function_calls'));
      }
      return wireBatch(
        await dispatcher.dispatch(body.tool_uses ?? [], { ...options, batchName: body.batch_id }),
      );
    },
  }),
  route({
    method: 'get',
    path: '/v1/tool-batches/:id',
    operationId: 'getToolBatch',
    tag: 'batches',
    summary: 'Collect a batch sent with your own batch_id, from its record in Redis',
    description:
      'Answers like POST once every call has a result or its deadline has passed; works from a coordinator ' +
      'restarted with the same TOOLQ_COORDINATOR_ID.',
    params: {
      id: {
        description: 'The `batch_id` given when the batch was sent.',
        schema: batchNameSchema,
        label: 'batch id',
      },
    },
    responses: {
      200: { description: 'The batch, every call answered.', body: TOOL_BATCH },
      400: BAD_REQUEST,
      404: error('No such batch is recorded (never dispatched here, or expired).'),
    },
    handler: async ({ params, request, ctx }) => {
      // Only the lookup waits on Redis here; once found, the batch answers by its own deadlines.
      const result = await ctx.dispatcher.collect(params.id, {
        app: appOf(request),
        lookupTimeoutMs: HTTP_DEFAULTS.redisWaitMs,
      });
      if (!result) {
        throw new ToolqError('NOT_FOUND', `no batch ${params.id} is recorded (never dispatched, or expired)`);
      }
      // Who decided its held calls, from its record (a batch collected here did not wait for them itself).
      if (!result.approvals) {
        const decided = ctx.dispatcher.approvals.outcomesOfBatch(appOf(request), params.id);
        const approvals = await withinRedis(decided, HTTP_DEFAULTS.redisWaitMs).catch(() => []);
        if (approvals.length > 0) return wireBatch({ ...result, approvals });
      }
      return wireBatch(result);
    },
  }),
];

const TOOL_ROUTES: ApiRoute[] = [
  route({
    method: 'get',
    path: '/v1/tools',
    operationId: 'listTools',
    tag: 'tools',
    summary: 'The tool catalog: every tool the workers advertise, with its input schema and live workers',
    responses: { 200: { description: 'The catalog.', body: named('ToolList', toolsResponseSchema) } },
    handler: async ({ ctx }) => {
      await withinRedis(ctx.dispatcher.catalog.refresh(), HTTP_DEFAULTS.redisWaitMs);
      return { tools: ctx.dispatcher.catalog.list().map(wireCatalogTool) };
    },
  }),
  route({
    method: 'get',
    path: '/v1/report',
    operationId: 'getReport',
    tag: 'tools',
    summary:
      "The caller's app's performance report over a window (its calls on every coordinator, from Redis)",
    // Other parameters are ignored; fleetReport checks the window's form and range.
    query: {
      schema: z.object({ window: z.string().optional() }),
      fields: {
        window: 'How far back: 30s, 15m, 2h, 1d (at most the call log retention, 24 h). Default 15m.',
      },
    },
    responses: {
      200: { description: 'Per tool and overall.', body: named('Report', reportResponseSchema) },
      400: { description: 'A window that is not a duration, or out of range.', body: ERROR },
    },
    // An app sees its own calls only: other apps' tools and volumes are theirs.
    // Operators' tokens do not reach the app API (auth.ts): they read the whole fleet through
    // /metrics and `toolq-report`.
    handler: async ({ query, request, ctx }) =>
      wireReport(
        await withinRedis(
          fleetReport(ctx.dispatcher.callLog, query.window ?? DEFAULT_REPORT_WINDOW, appOf(request)),
          HTTP_DEFAULTS.redisWaitMs,
        ),
      ),
  }),
];

const OPS_ROUTES: ApiRoute[] = [
  route({
    method: 'get',
    path: '/openapi.json',
    operationId: 'getOpenApi',
    tag: 'operations',
    summary: 'This document',
    responses: { 200: { description: 'OpenAPI 3.1.' } },
    handler: async ({ ctx }) => ctx.openApi(),
  }),
  route({
    method: 'get',
    path: '/healthz',
    operationId: 'getHealth',
    tag: 'operations',
    open: true,
    summary: 'The process is up',
    responses: { 200: { description: 'Up.', body: named('Health', healthResponseSchema) } },
    handler: async () => ({ ok: true }),
  }),
  route({
    method: 'get',
    path: '/readyz',
    operationId: 'getReady',
    tag: 'operations',
    open: true,
    summary: 'Redis answers and the reply reader runs',
    responses: {
      200: { description: 'Ready.', body: named('Ready', readyResponseSchema) },
      503: { description: 'Not ready.', body: named('Ready', readyResponseSchema) },
    },
    handler: async ({ reply, ctx }) => {
      const why = await ctx.dispatcher.readiness();
      const reason = ctx.started()
        ? why
        : `the coordinator is still starting: ${why ?? 'loading the tool catalog'}`;
      return reply.code(reason ? 503 : 200).send(reason ? { ready: false, reason } : { ready: true });
    },
  }),
  route({
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    tag: 'operations',
    // The fleet's numbers (tools, pools, models, queue depths) are the operators', not any app's.
    operator: true,
    summary: 'Prometheus metrics (an operator token, when tokens are set)',
    responses: {
      200: { description: 'Prometheus text exposition format.', contentType: 'text/plain; version=0.0.4' },
    },
    handler: async ({ reply, ctx }) => {
      const { dispatcher } = ctx;
      await withinRedis(refreshGauges(dispatcher), HTTP_DEFAULTS.redisWaitMs).catch(() => undefined);
      reply.header('content-type', dispatcher.registry.contentType);
      return dispatcher.registry.metrics();
    },
  }),
];

/** Every route of the HTTP API. Adding a route to the server means adding its entry here. */
export const API_ROUTES: readonly ApiRoute[] = [
  ...BATCH_ROUTES,
  ...TOOL_ROUTES,
  ...FLOW_ROUTES,
  ...RUN_ROUTES,
  ...APPROVAL_ROUTES,
  ...OPS_ROUTES,
];

/** The paths reachable without a token: the auth hook and the start-up gate let them through. */
export const OPEN_PATHS: ReadonlySet<string> = new Set(API_ROUTES.filter((r) => r.open).map((r) => r.path));

/** The API's paths for operators only (the admin page, outside the table, is too). */
export const OPERATOR_PATHS: ReadonlySet<string> = new Set(
  API_ROUTES.filter((r) => r.operator).map((r) => r.path),
);

/** A request's approval fields as dispatch()'s option. */
export function approvalOption(body: { approval_tools?: string[]; approval_timeout_ms?: number }) {
  if (body.approval_tools === undefined && body.approval_timeout_ms === undefined) return {};
  return {
    approval: {
      ...(body.approval_tools ? { tools: body.approval_tools } : {}),
      ...(body.approval_timeout_ms === undefined ? {} : { timeoutMs: body.approval_timeout_ms }),
    },
  };
}
