/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the zod schemas that validate the
 * requests (schemas.ts) and describe the responses (responses.ts), so that it cannot say
 * something the server does not do. A route is one entry of API_ROUTES; GET /openapi.json serves
 * the document and docs/openapi.json is its checked-in copy (`pnpm openapi` rewrites it).
 */
import type { FastifyInstance } from 'fastify';
import { type ZodType, z } from 'zod';
import {
  batchResponseSchema,
  errorResponseSchema,
  healthResponseSchema,
  readyResponseSchema,
  reportResponseSchema,
  toolsResponseSchema,
} from './responses.ts';
import {
  eventIdSchema,
  idempotencyKeySchema,
  runCancelResponseSchema,
  runCreatedResponseSchema,
  runEventSchema,
  runIdSchema,
  runListQuerySchema,
  runListResponseSchema,
  runRequestSchema,
  runResponseSchema,
} from './run-schemas.ts';
import { batchIdSchema, toolBatchRequestSchema } from './schemas.ts';

/** A schema that becomes a named component (`#/components/schemas/<name>`). */
export interface NamedSchema {
  name: string;
  schema: ZodType;
}

export interface ApiResponse {
  description: string;
  /** JSON body; omit for a non-JSON one and give `contentType`. */
  body?: NamedSchema;
  /** Default application/json. */
  contentType?: string;
}

export interface ApiRoute {
  method: 'get' | 'post' | 'delete';
  /** In Fastify's form: `/v1/runs/:id`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: 'batches' | 'runs' | 'tools' | 'operations';
  /** Reachable without the bearer token (probes); every other route answers 401 without it. */
  open?: boolean;
  params?: Record<string, { description: string; schema: ZodType }>;
  query?: Record<string, { description: string; schema: ZodType; required?: boolean }>;
  headers?: Record<string, { description: string; schema: ZodType; required?: boolean }>;
  body?: NamedSchema;
  responses: Record<number, ApiResponse>;
}

const json = (name: string, schema: ZodType): NamedSchema => ({ name, schema });
const ERROR = json('Error', errorResponseSchema);
const error = (description: string): ApiResponse => ({ description, body: ERROR });

const BAD_REQUEST = error(
  'The body or a parameter breaks the schema (unknown fields included), is not JSON, or has a `__proto__` key; the message names the path.',
);

/** Every route of the HTTP API. Adding a route to the server means adding its entry here. */
export const API_ROUTES: ApiRoute[] = [
  {
    method: 'post',
    path: '/v1/tool-batches',
    operationId: 'createToolBatch',
    tag: 'batches',
    summary: 'Run the tool_use blocks of one model turn and answer their tool_result blocks in order',
    description:
      'Send the `tool_use` blocks as the Messages API returned them. The answer comes when every call has a result ' +
      '(or its deadline passed): one `tool_result` per block, in the order sent, failures marked `is_error`. ' +
      'A client that disconnects cancels its calls.',
    body: json('ToolBatchRequest', toolBatchRequestSchema),
    responses: {
      200: { description: 'Every call answered.', body: json('ToolBatch', batchResponseSchema) },
      400: BAD_REQUEST,
      409: error('A batch with this `batch_id` was dispatched already: collect it with GET.'),
      413: error('The body is larger than the limit (TOOLQ_BODY_LIMIT_BYTES).'),
      415: error('The body is not application/json.'),
      503: error('The coordinator is shutting down: send the batch to another one, or again later.'),
    },
  },
  {
    method: 'get',
    path: '/v1/tool-batches/:id',
    operationId: 'getToolBatch',
    tag: 'batches',
    summary: 'Collect a batch sent with your own batch_id, from its record in Redis',
    description:
      'Answers like POST once every call has a result or its deadline has passed; works from a coordinator ' +
      'restarted with the same TOOLQ_COORDINATOR_ID.',
    params: { id: { description: 'The `batch_id` given when the batch was sent.', schema: batchIdSchema } },
    responses: {
      200: { description: 'The batch, every call answered.', body: json('ToolBatch', batchResponseSchema) },
      400: BAD_REQUEST,
      404: error('No such batch is recorded (never dispatched here, or expired).'),
    },
  },
  {
    method: 'get',
    path: '/v1/tools',
    operationId: 'listTools',
    tag: 'tools',
    summary: 'The tool catalog: every tool the workers advertise, with its input schema and live workers',
    responses: { 200: { description: 'The catalog.', body: json('ToolList', toolsResponseSchema) } },
  },
  {
    method: 'get',
    path: '/v1/report',
    operationId: 'getReport',
    tag: 'tools',
    summary: "The fleet's performance report over a window (every coordinator and worker, from Redis)",
    query: {
      window: {
        description: 'How far back: 30s, 15m, 2h, 1d (at most the call log retention, 24 h). Default 15m.',
        schema: z.string(),
      },
    },
    responses: {
      200: { description: 'Per tool and overall.', body: json('Report', reportResponseSchema) },
      400: { description: 'A window that is not a duration, or out of range.', body: ERROR },
    },
  },
  {
    method: 'post',
    path: '/v1/runs',
    operationId: 'createRun',
    tag: 'runs',
    summary: "Start a durable agent run on the fleet's tools",
    description:
      'Answers 202 with the run id at once; the run goes on on any coordinator. A repeated ' +
      '`Idempotency-Key` with the same body answers the same run (header `idempotent-replayed: true`).',
    headers: {
      'idempotency-key': {
        description:
          'Your key for this request (printable ASCII, e.g. a UUID): a retry creates no second run.',
        schema: idempotencyKeySchema,
      },
    },
    body: json('RunRequest', runRequestSchema),
    responses: {
      202: { description: 'Started.', body: json('RunCreated', runCreatedResponseSchema) },
      400: BAD_REQUEST,
      409: error('The Idempotency-Key was used with another request.'),
      503: error('No model is configured (ANTHROPIC_API_KEY or ANTHROPIC_BASE_URL).'),
    },
  },
  {
    method: 'get',
    path: '/v1/runs',
    operationId: 'listRuns',
    tag: 'runs',
    summary: "The caller's runs, newest first",
    query: {
      limit: { description: 'Runs per page (1-100, default 20).', schema: runListQuerySchema.shape.limit },
      cursor: {
        description: 'The `next_cursor` of the page before.',
        schema: runListQuerySchema.shape.cursor,
      },
    },
    responses: {
      200: { description: 'A page of runs.', body: json('RunList', runListResponseSchema) },
      400: BAD_REQUEST,
    },
  },
  {
    method: 'get',
    path: '/v1/runs/:id',
    operationId: 'getRun',
    tag: 'runs',
    summary: 'How a run is going, and its result once it has one',
    params: { id: { description: 'The `run_id` POST /v1/runs answered.', schema: runIdSchema } },
    responses: {
      200: { description: 'The run.', body: json('Run', runResponseSchema) },
      400: BAD_REQUEST,
      404: error("No such run (unknown, expired, or another app's)."),
    },
  },
  {
    method: 'delete',
    path: '/v1/runs/:id',
    operationId: 'cancelRun',
    tag: 'runs',
    summary: 'Cancel a run',
    params: { id: { description: 'The run to cancel.', schema: runIdSchema } },
    responses: {
      200: { description: 'Cancelled.', body: json('RunCancelled', runCancelResponseSchema) },
      400: BAD_REQUEST,
      404: error("No such run (unknown, expired, or another app's)."),
      409: error('The run has finished already.'),
    },
  },
  {
    method: 'get',
    path: '/v1/runs/:id/events',
    operationId: 'streamRunEvents',
    tag: 'runs',
    summary: "The run's event log, then its live events (Server-Sent Events)",
    description:
      'Each event: `id:` (send it back as `Last-Event-ID` to resume), `event:` its type, `data:` a RunEvent as JSON. ' +
      'The stream ends after `done`, `failed` or `cancelled`.',
    params: { id: { description: 'The run.', schema: runIdSchema } },
    query: { last_event_id: { description: 'Resume after this event id.', schema: eventIdSchema } },
    headers: {
      'last-event-id': {
        description: 'Resume after this event id (wins over the query).',
        schema: eventIdSchema,
      },
    },
    responses: {
      200: {
        description: 'An SSE stream whose `data:` lines are RunEvent objects.',
        body: json('RunEvent', runEventSchema),
        contentType: 'text/event-stream',
      },
      400: BAD_REQUEST,
      404: error("No such run (unknown, expired, or another app's)."),
    },
  },
  {
    method: 'get',
    path: '/openapi.json',
    operationId: 'getOpenApi',
    tag: 'operations',
    summary: 'This document',
    responses: { 200: { description: 'OpenAPI 3.1.' } },
  },
  {
    method: 'get',
    path: '/healthz',
    operationId: 'getHealth',
    tag: 'operations',
    open: true,
    summary: 'The process is up',
    responses: { 200: { description: 'Up.', body: json('Health', healthResponseSchema) } },
  },
  {
    method: 'get',
    path: '/readyz',
    operationId: 'getReady',
    tag: 'operations',
    open: true,
    summary: 'Redis answers and the reply reader runs',
    responses: {
      200: { description: 'Ready.', body: json('Ready', readyResponseSchema) },
      503: { description: 'Not ready.', body: json('Ready', readyResponseSchema) },
    },
  },
  {
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    tag: 'operations',
    open: true,
    summary: 'Prometheus metrics',
    responses: {
      200: { description: 'Prometheus text exposition format.', contentType: 'text/plain; version=0.0.4' },
    },
  },
];

type JsonObject = Record<string, unknown>;

/** `/v1/runs/:id` → `/v1/runs/{id}`. */
const openApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/**
 * JSON Schema 2020-12 (OpenAPI 3.1's dialect) for named schemas, sharing what they share.
 * Requests are described as sent (`input`), responses as answered (`output`).
 */
function components(named: readonly NamedSchema[], io: 'input' | 'output'): Record<string, JsonObject> {
  const registry = z.registry<{ id: string }>();
  for (const { name, schema } of named) if (!registry.has(schema)) registry.add(schema, { id: name });
  const { schemas } = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    io,
    uri: (id) => `#/components/schemas/${id}`,
  }) as { schemas: Record<string, JsonObject> };
  return Object.fromEntries(Object.entries(schemas).map(([id, schema]) => [id, withoutIds(schema)]));
}

/** Drops `$schema` and `$id` (the document's dialect applies; a fragment is not a valid `$id`). */
function withoutIds(schema: JsonObject): JsonObject {
  const { $schema: _s, $id: _i, ...rest } = schema;
  return rest;
}

function inlineSchema(schema: ZodType): JsonObject {
  return withoutIds(z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input' }) as JsonObject);
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

function operation(route: ApiRoute): JsonObject {
  const parameters = [
    ...Object.entries(route.params ?? {}).map(([name, p]) => ({
      name,
      in: 'path',
      required: true,
      description: p.description,
      schema: inlineSchema(p.schema),
    })),
    ...(['query', 'header'] as const).flatMap((where) =>
      Object.entries((where === 'query' ? route.query : route.headers) ?? {}).map(([name, p]) => ({
        name,
        in: where,
        required: p.required ?? false,
        description: p.description,
        schema: inlineSchema(p.schema),
      })),
    ),
  ];
  const responses: Record<string, JsonObject> = {};
  const all: Record<number, ApiResponse> = route.open
    ? route.responses
    : {
        ...route.responses,
        401: error('The bearer token is missing or wrong (when TOOLQ_API_TOKEN is set).'),
      };
  for (const [status, r] of Object.entries(all).sort(([a], [b]) => Number(a) - Number(b))) {
    const contentType = r.contentType ?? 'application/json';
    responses[status] = {
      description: r.description,
      content: { [contentType]: { schema: r.body ? ref(r.body.name) : { type: 'string' } } },
    };
  }
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    tags: [route.tag],
    ...(route.open ? { security: [] } : {}),
    ...(parameters.length ? { parameters } : {}),
    ...(route.body
      ? { requestBody: { required: true, content: { 'application/json': { schema: ref(route.body.name) } } } }
      : {}),
    responses,
  };
}

/** The whole document for `routes` (default: every route of the API). */
export function buildOpenApiDocument(routes: readonly ApiRoute[] = API_ROUTES): JsonObject {
  const requests = routes.flatMap((r) => (r.body ? [r.body] : []));
  const answers = routes.flatMap((r) => Object.values(r.responses).flatMap((x) => (x.body ? [x.body] : [])));
  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const route of routes) {
    const path = openApiPath(route.path);
    paths[path] = { ...paths[path], [route.method]: operation(route) };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'toolq coordinator',
      version: '1.0.0',
      description:
        "Runs the tool calls of an LLM agent as jobs on a queue: send a model turn's tool_use blocks, get their " +
        'tool_result blocks back in order. With TOOLQ_API_TOKEN set, every route but the probes needs ' +
        '`Authorization: Bearer <token>`; without it the server listens on loopback only. Every error is ' +
        '`{"error": {"code", "message"}}`.',
    },
    tags: [
      { name: 'batches', description: 'Tool batches: the tool_use blocks of one model turn.' },
      { name: 'runs', description: "Agent runs on the coordinator's tools." },
      { name: 'tools', description: 'The tool catalog and its performance.' },
      { name: 'operations', description: 'Probes, metrics and this document.' },
    ],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { ...components(answers, 'output'), ...components(requests, 'input') },
    },
  };
}

/** GET /openapi.json: the document, built once. */
export function registerOpenApi(app: FastifyInstance): void {
  let document: JsonObject | undefined;
  app.get('/openapi.json', async () => {
    document ??= buildOpenApiDocument();
    return document;
  });
}

/** The checked-in copy's text (docs/openapi.json): stable key order, 2-space indent, final newline. */
export function openApiText(document: JsonObject = buildOpenApiDocument()): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}
