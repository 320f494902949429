/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the route table (routes.ts): its
 * requests from the zod schemas that validate them, its responses from the schemas that describe
 * them (responses.ts, run-schemas.ts), so that it cannot say something the server does not do.
 * GET /openapi.json serves it and docs/openapi.json is its checked-in copy (`pnpm openapi`).
 */
import { readFileSync } from 'node:fs';
import { type ZodType, z } from 'zod';
import { error } from './responses.ts';
import type { ApiResponse, ApiRoute, NamedSchema, QuerySpec, ValueSpec } from './route.ts';

type JsonObject = Record<string, unknown>;

/** The API's version is the coordinator package's (package.json is two levels above src/http/ and dist/http/). */
const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

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
    ...Object.entries(route.params ?? {}).map(([name, p]) =>
      parameter(name, 'path', p.description, p.schema),
    ),
    ...queryParameters(route.query),
    ...Object.entries(route.headers ?? {}).map(([name, p]) =>
      parameter(name, 'header', p.description, p.schema),
    ),
  ];
  const responses: Record<string, JsonObject> = {};
  const all: Record<number, ApiResponse> = route.open
    ? route.responses
    : {
        ...route.responses,
        401: error('The bearer token is missing or wrong (when tokens are set).'),
        403: error(
          route.operator
            ? 'An app token: this route needs an operator token (TOOLQ_OPERATOR_TOKENS).'
            : 'An operator token: this route needs an app token (TOOLQ_API_TOKEN, TOOLQ_API_TOKENS).',
        ),
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

/** A path parameter (always required) or a header (never: a route checks one only when sent). */
function parameter(name: string, where: 'path' | 'header', description: string, schema: ValueSpec['schema']) {
  return { name, in: where, required: where === 'path', description, schema: inlineSchema(schema) };
}

/** One parameter per field of the query's schema, required unless it may be left out. */
function queryParameters(query: QuerySpec | undefined): JsonObject[] {
  if (!query) return [];
  const fields: Record<string, string> = query.fields;
  return Object.entries(query.schema.shape).map(([name, schema]) => ({
    name,
    in: 'query',
    required: !schema.safeParse(undefined).success,
    description: fields[name],
    schema: inlineSchema(schema),
  }));
}

/** The whole document for `routes`. */
export function buildOpenApiDocument(routes: readonly ApiRoute[]): JsonObject {
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
      version: VERSION,
      description:
        "Runs the tool calls of an LLM agent as jobs on a queue: send a model turn's tool_use blocks, get their " +
        'tool_result blocks back in order. With tokens set, every route but the probes needs ' +
        '`Authorization: Bearer <token>`: an app token (TOOLQ_API_TOKEN, TOOLQ_API_TOKENS) for the API, an ' +
        'operator token (TOOLQ_OPERATOR_TOKENS) for /metrics and the queue admin page; the other kind answers 403. ' +
        'Without tokens the server listens on loopback only and serves only requests whose Host is localhost, ' +
        '127.0.0.1 or [::1] (or TOOLQ_ALLOWED_HOSTS). Every error is `{"error": {"code", "message"}}`. ' +
        'Every field of every body and query is snake_case; a field sent in camelCase (`timeoutMs`) is a 400 ' +
        'that names the field to use (`timeout_ms`).',
    },
    tags: [
      { name: 'batches', description: 'Tool batches: the tool_use blocks of one model turn.' },
      { name: 'runs', description: "Agent runs on the coordinator's tools." },
      { name: 'tools', description: 'The tool catalog and its performance.' },
      { name: 'approvals', description: 'Calls waiting for a person to approve or deny them.' },
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

/** The checked-in copy's text (docs/openapi.json): stable key order, 2-space indent, final newline. */
export function openApiText(document: JsonObject): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}
