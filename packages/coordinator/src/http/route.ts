/**
 * What one route of the HTTP API is: its method and path, what it takes (zod schemas), what it
 * answers, the words of its OpenAPI entry, and its handler, all in one declaration. The table of
 * them (routes.ts) is what the server registers (registerRoutes) and what the OpenAPI document is
 * generated from (openapi.ts), so neither can name a route the other does not.
 */
import type { ServerResponse } from 'node:http';
import { type Logger, ToolqError } from '@toolq/shared';
import { describeZodIssues } from '@toolq/shared/internal';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodError, ZodObject, ZodType, z } from 'zod';
import type { Dispatcher } from '../dispatcher.ts';
import type { RunService } from '../runs/run-service.ts';
import { renamedField } from './renamed-fields.ts';

/** A schema that becomes a named component (`#/components/schemas/<name>`). */
export interface NamedSchema<S extends ZodType = ZodType> {
  name: string;
  schema: S;
}

export const named = <S extends ZodType>(name: string, schema: S): NamedSchema<S> => ({ name, schema });

/** A path parameter or a header: one value, checked on its own. */
export interface ValueSpec<S extends ZodType = ZodType> {
  schema: S;
  description: string;
  /** What a 400 calls it: `run id: …`, `Idempotency-Key header: …`. */
  label: string;
}

type Fields = Record<string, ValueSpec>;
type NoFields = Record<never, ValueSpec>;

/** The query string as one object schema (strict where unknown parameters are refused). */
export interface QuerySpec<Q extends ZodObject = ZodObject> {
  schema: Q;
  /** Each parameter's description in the document. */
  fields: { [K in keyof Q['shape']]: string };
}

export interface ApiResponse {
  description: string;
  /** JSON body; omit for a non-JSON one and give `contentType`. */
  body?: NamedSchema;
  /** Default application/json. */
  contentType?: string;
}

/** What the handlers need from the coordinator that serves them. */
export interface RouteContext {
  dispatcher: Dispatcher;
  /** Undefined without a model: the run routes then answer 503 before their handlers (runs.ts). */
  runs: RunService | undefined;
  logger: Logger | undefined;
  /** False while the dispatcher is still starting. */
  started: () => boolean;
  /** Open SSE answers: they are hijacked, so the server ends them itself on close. */
  streams: Set<ServerResponse>;
  /** The OpenAPI document of the routes served. */
  openApi: () => unknown;
}

/** Absent parts (`never`: no schema declared) are undefined. */
type Parsed<S extends ZodType> = [S] extends [never] ? undefined : z.output<S>;

/** The request as the route's schemas parsed it, and what else a handler may need. */
export interface HandlerInput<P extends Fields, Q extends ZodObject, H extends Fields, B extends ZodType> {
  params: { [K in keyof P]: z.output<P[K]['schema']> };
  query: Parsed<Q>;
  /** A header that is absent is undefined; one that is sent must pass its schema. */
  headers: { [K in keyof H]: z.output<H[K]['schema']> | undefined };
  body: Parsed<B>;
  request: FastifyRequest;
  reply: FastifyReply;
  ctx: RouteContext;
}

/** What registerRoutes hands a handler, before the route's types are put back. */
interface RawInput {
  params: Record<string, unknown>;
  query: unknown;
  headers: Record<string, unknown>;
  body: unknown;
  request: FastifyRequest;
  reply: FastifyReply;
  ctx: RouteContext;
}

interface RouteFacts {
  method: 'get' | 'post' | 'delete';
  /** In Fastify's form: `/v1/runs/:id`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: 'batches' | 'runs' | 'tools' | 'approvals' | 'operations';
  /** Reachable without the bearer token (probes); every other route answers 401 without it. */
  open?: boolean;
  /** For operators (TOOLQ_OPERATOR_TOKENS): an app token answers 403, as an operator token does elsewhere. */
  operator?: boolean;
  responses: Record<number, ApiResponse>;
  /** Throws when the route cannot serve at all; checked before the request is. */
  ready?: (ctx: RouteContext) => void;
}

export interface RouteSpec<P extends Fields, Q extends ZodObject, H extends Fields, B extends ZodType>
  extends RouteFacts {
  params?: P;
  query?: QuerySpec<Q>;
  headers?: H;
  body?: NamedSchema<B>;
  /** The answer's body (or the reply, once sent). Errors are thrown, as ToolqErrors (errors.ts). */
  handler: (input: HandlerInput<P, Q, H, B>) => Promise<unknown>;
}

/** A route of the table, its types erased; registerRoutes parses what its handler is given. */
export interface ApiRoute extends RouteFacts {
  params?: Fields;
  query?: QuerySpec;
  headers?: Fields;
  body?: NamedSchema;
  handler: (input: RawInput) => Promise<unknown>;
}

/** Declares a route; its handler's input is typed by its schemas. */
export function route<
  P extends Fields = NoFields,
  Q extends ZodObject = never,
  H extends Fields = NoFields,
  B extends ZodType = never,
>(spec: RouteSpec<P, Q, H, B>): ApiRoute {
  // The handler only ever sees what registerRoutes parsed with these same schemas.
  return spec as unknown as ApiRoute;
}

/** The problems of a single value (a header, a path parameter), without zod's path in front. */
export function valueIssue(error: ZodError): string {
  return error.issues.map((issue) => issue.message).join('; ');
}

function invalid(message: string): never {
  throw new ToolqError('INVALID_REQUEST', message);
}

/**
 * Checks the request against the route's schemas, in this order: path parameters, query, body,
 * headers. The first part that fails answers 400, named as the route's declaration names it.
 */
function parseRequest(route: ApiRoute, request: FastifyRequest) {
  const params: Record<string, unknown> = {};
  const given = (request.params ?? {}) as Record<string, unknown>;
  for (const [name, spec] of Object.entries(route.params ?? {})) {
    const parsed = spec.schema.safeParse(given[name]);
    params[name] = parsed.success ? parsed.data : invalid(`${spec.label}: ${valueIssue(parsed.error)}`);
  }
  let query: unknown;
  if (route.query) {
    const renamed = renamedField(route.query.schema, request.query);
    if (renamed) invalid(`query: ${renamed}`);
    const parsed = route.query.schema.safeParse(request.query);
    query = parsed.success ? parsed.data : invalid(`query: ${describeZodIssues(parsed.error)}`);
  }
  let body: unknown;
  if (route.body) {
    const renamed = renamedField(route.body.schema, request.body);
    if (renamed) invalid(`invalid body: ${renamed}`);
    const parsed = route.body.schema.safeParse(request.body);
    body = parsed.success ? parsed.data : invalid(`invalid body: ${describeZodIssues(parsed.error, 10)}`);
  }
  const headers: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(route.headers ?? {})) {
    const header = request.headers[name];
    if (header === undefined) continue;
    const parsed = spec.schema.safeParse(header);
    headers[name] = parsed.success ? parsed.data : invalid(`${spec.label}: ${valueIssue(parsed.error)}`);
  }
  return { params, query, body, headers };
}

/** Registers every route of `routes` on `app`; nothing else registers a route of the API. */
export function registerRoutes(app: FastifyInstance, routes: readonly ApiRoute[], ctx: RouteContext): void {
  for (const r of routes) {
    app.route({
      method: r.method.toUpperCase() as 'GET' | 'POST' | 'DELETE',
      url: r.path,
      handler: async (request, reply) => {
        r.ready?.(ctx);
        return r.handler({ ...parseRequest(r, request), request, reply, ctx });
      },
    });
  }
}
