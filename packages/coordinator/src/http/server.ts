/**
 * The coordinator's HTTP API (Fastify): tool batches for apps that do not speak BullMQ, agent
 * runs, the tool catalog, Prometheus metrics, health and readiness. This file is the server around
 * them (body parsing, errors, auth, the start-up gate); the routes are the table in routes.ts.
 */
import type { ServerResponse } from 'node:http';
import { type Logger, ToolqError } from '@toolq/shared';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import secureJson from 'secure-json-parse';
import { registerApprovalPage } from '../approvals/approval-page.ts';
import type { Dispatcher } from '../dispatcher.ts';
import { registerMcp } from '../mcp-server/endpoint.ts';
import type { McpService } from '../mcp-server/service.ts';
import type { RunService } from '../runs/run-service.ts';
import { ADMIN_PATH, registerAdmin } from './admin.ts';
import {
  type Access,
  assertSafeListen,
  BearerTokens,
  isOpenPath,
  registerAuth,
  registerHostCheck,
} from './auth.ts';
import { HTTP_DEFAULTS } from './defaults.ts';
import { toHttpError } from './errors.ts';
import { JsonShapeScanner } from './json-shape.ts';
import { buildOpenApiDocument } from './openapi.ts';
import { type RouteContext, registerRoutes } from './route.ts';
import { API_ROUTES, OPEN_PATHS, OPERATOR_PATHS } from './routes.ts';
import { registerRunHooks } from './runs.ts';
import { MAX_TOOL_USES_PER_BATCH } from './schemas.ts';

export interface HttpServerOptions {
  dispatcher: Dispatcher;
  /** Bearer token (the app `default`); required for /v1/* when set. Default: none (loopback only). */
  apiToken?: string;
  /** App name → bearer token (TOOLQ_API_TOKENS); each app sees only its own runs and batches. */
  apiTokens?: ReadonlyMap<string, string>;
  /** Operator name → bearer token (TOOLQ_OPERATOR_TOKENS): the admin page and /metrics, nothing else. */
  operatorTokens?: ReadonlyMap<string, string>;
  /** Host names served without tokens besides localhost, 127.0.0.1 and [::1] (TOOLQ_ALLOWED_HOSTS). */
  allowedHosts?: readonly string[];
  /** Largest request body. Default 10 MiB. */
  bodyLimitBytes?: number;
  /** How long a client may take to send a request's headers and body (slow senders hold sockets). Default 30 s. */
  requestTimeoutMs?: number;
  logger?: Logger;
  /** The fleet as an MCP server on /mcp; without it there is no /mcp. */
  mcp?: McpService | undefined;
  /** Durable agent runs (/v1/runs*); without it those routes answer 503. */
  runs?: RunService | undefined;
  /** Retries and removals on /admin/queues (TOOLQ_ADMIN_WRITE). Default false: read-only. */
  adminWrite?: boolean;
  /**
   * False while the dispatcher is still starting (the server listens first, so that /healthz and
   * a /readyz that says why answer while Redis cannot be reached). Default: started.
   */
  isStarted?: () => boolean;
}

export function buildHttpServer(options: HttpServerOptions): FastifyInstance {
  const { dispatcher } = options;
  const requestTimeout = options.requestTimeoutMs ?? HTTP_DEFAULTS.requestTimeoutMs;
  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimitBytes ?? HTTP_DEFAULTS.bodyLimitBytes,
    // Let in-flight batches finish on close; idle keep-alive sockets need not hold shutdown up.
    forceCloseConnections: 'idle',
    // Node checks these every connectionsCheckingInterval (30 s by default): a body sent one byte
    // every few seconds is cut off within a second of the limit instead.
    requestTimeout,
    http: { headersTimeout: Math.min(10_000, requestTimeout), connectionsCheckingInterval: 1_000 },
  });

  // The JSON parser Fastify itself uses (secure-json-parse, refusing prototype poisoning), called
  // here so that its message (where the JSON breaks, which key is refused) reaches the client;
  // after a scan that refuses absurd shapes before anything is parsed.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      // Stops at the first byte that breaks a limit: a refused body costs no parsing at all.
      new JsonShapeScanner({ maxDepth: HTTP_DEFAULTS.maxBodyDepth, maxItems: MAX_TOOL_USES_PER_BATCH }).scan(
        body as Buffer,
      );
      done(null, parseJsonBody((body as Buffer).toString('utf8')));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  // While closing, answers end their connection: a kept-alive socket would otherwise hold the
  // shutdown for Fastify's keep-alive timeout (72 s) after the last in-flight batch.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  app.setErrorHandler((error, _request, reply) => {
    const { status, body, internal, retryAfterS } = toHttpError(error);
    if (internal) options.logger?.error({ err: (error as Error).message }, 'request failed');
    // A client refused before its body was read has no reason to keep the socket.
    if (status === 400 || status === 413 || status === 415) reply.header('connection', 'close');
    if (retryAfterS !== undefined) reply.header('retry-after', String(retryAfterS));
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler((request) => {
    throw new ToolqError('NOT_FOUND', `no route ${request.method} ${request.url}`);
  });

  const tokens = new BearerTokens(options);
  // First of all hooks: a rebound name learns nothing, not even whether it needs a token.
  registerHostCheck(app, tokens, options.allowedHosts ?? []);
  registerAuth(app, tokens, accessOf);
  const started = options.isStarted ?? (() => true);
  app.addHook('onRequest', async (request) => {
    // /metrics copes with Redis being away by itself, and a starting coordinator is worth seeing.
    if (started() || isOpenPath(request, OPEN_PATHS) || isOpenPath(request, OPERATOR_PATHS)) return;
    // No probe per request: during an outage each would wait in the connection's queue. Its own
    // code (not REDIS_UNAVAILABLE, which can come after a batch's first jobs were enqueued): refused
    // before anything ran, so a client may send even a write again.
    throw new ToolqError(
      'STARTING',
      'the coordinator is still starting: connecting to Redis and loading the tool catalog (GET /readyz says why it is not ready)',
    );
  });

  let document: unknown;
  const context: RouteContext = {
    dispatcher,
    runs: options.runs,
    logger: options.logger,
    started,
    streams: new Set<ServerResponse>(),
    // Built once, on the first request for it.
    openApi: () => {
      document ??= buildOpenApiDocument(API_ROUTES);
      return document;
    },
  };
  registerRunHooks(app, context);
  registerRoutes(app, API_ROUTES, context);
  registerAdmin(app, { dispatcher, write: options.adminWrite ?? false });
  if (options.mcp) registerMcp(app, options.mcp);
  registerApprovalPage(app);

  return app;
}

/**
 * What a request needs, by the route it matched (`routeOptions.url`, the route's own pattern):
 * the raw URL may spell a path in ways the router decodes (`/%61dmin/queues`), the pattern not.
 * A request that matched nothing needs a token, of either kind, and then is a 404.
 */
function accessOf(request: FastifyRequest): Access {
  const path = request.routeOptions.url;
  if (path === undefined) return 'token';
  if (OPEN_PATHS.has(path)) return 'open';
  if (OPERATOR_PATHS.has(path) || path === ADMIN_PATH || path.startsWith(`${ADMIN_PATH}/`)) return 'operator';
  return 'app';
}

function parseJsonBody(body: string): unknown {
  if (body.trim() === '')
    throw new ToolqError('INVALID_JSON', 'the body is not valid JSON: the body is empty');
  try {
    return secureJson.parse(body, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    const message = (err as Error).message
      .replace('Object contains forbidden prototype property', 'a "__proto__" key is not allowed')
      .replace(
        'Object contains forbidden constructor property',
        'a "constructor.prototype" key is not allowed',
      );
    throw new ToolqError('INVALID_JSON', `the body is not valid JSON: ${message}`);
  }
}

export async function listen(
  app: FastifyInstance,
  options: {
    host: string;
    port: number;
    apiToken?: string;
    apiTokens?: ReadonlyMap<string, string>;
    operatorTokens?: ReadonlyMap<string, string>;
  },
) {
  assertSafeListen(options.host, new BearerTokens(options).required);
  return app.listen({ host: options.host, port: options.port });
}
