/**
 * The route table (routes.ts) and its registration (route.ts), without Redis: the table is well
 * formed, registerRoutes serves exactly its routes, and requests are checked against the routes'
 * schemas before a handler runs, with the errors the API promises.
 */
import type { ServerResponse } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { Dispatcher } from '../../src/dispatcher.ts';
import { toHttpError } from '../../src/http/errors.ts';
import { type RouteContext, registerRoutes } from '../../src/http/route.ts';
import { API_ROUTES, OPEN_PATHS, OPERATOR_PATHS } from '../../src/http/routes.ts';

describe('the route table', () => {
  it('has each method and path once, and each operationId once', () => {
    const keys = API_ROUTES.map((r) => `${r.method} ${r.path}`);
    expect(new Set(keys).size).toBe(keys.length);
    const ids = API_ROUTES.map((r) => r.operationId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('declares exactly the parameters each path has', () => {
    for (const r of API_ROUTES) {
      const inPath = [...r.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]);
      expect(Object.keys(r.params ?? {}), r.path).toEqual(inPath);
    }
  });

  it('leaves only the probes open: every other route needs the bearer token', () => {
    expect([...OPEN_PATHS].sort()).toEqual(['/healthz', '/readyz']);
  });

  it('keeps /metrics and the flow-control routes for operators (an app token is 403 there)', () => {
    expect([...OPERATOR_PATHS].sort()).toEqual([
      '/metrics',
      '/v1/tools/:name/limits',
      '/v1/tools/:name/pause',
      '/v1/tools/:name/resume',
    ]);
    expect(API_ROUTES.filter((r) => r.open && r.operator)).toEqual([]);
  });

  it('documents 400 on every route that checks a part of the request', () => {
    for (const r of API_ROUTES) {
      if (r.params || r.query || r.headers || r.body) expect(r.responses[400], r.path).toBeDefined();
    }
  });
});

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

/**
 * The table on a bare Fastify with the server's error mapping. The handlers are not meant to run:
 * requests here fail their checks first, and no dispatcher is there to serve them.
 */
function tableServer(onRoute?: (method: string, url: string) => void): FastifyInstance {
  const server = Fastify();
  if (onRoute) {
    server.addHook('onRoute', (r) => {
      for (const method of [r.method].flat()) onRoute(method, r.url);
    });
  }
  server.setErrorHandler((error, _request, reply) => {
    const { status, body } = toHttpError(error);
    return reply.code(status).send(body);
  });
  const unused = () => {
    throw new Error('no handler should run in this test');
  };
  const ctx: RouteContext = {
    dispatcher: new Proxy({}, { get: unused }) as Dispatcher,
    runs: undefined,
    logger: undefined,
    started: () => true,
    streams: new Set<ServerResponse>(),
    openApi: unused,
  };
  registerRoutes(server, API_ROUTES, ctx);
  return server;
}

async function answer(
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
) {
  app ??= tableServer();
  const res = await app.inject({
    method,
    url,
    headers: options.headers ?? {},
    ...(options.body === undefined ? {} : { payload: options.body as object }),
  });
  const { error } = res.json() as { error: { code: string; message: string } };
  return `${res.statusCode} ${error.code}: ${error.message}`;
}

describe('registerRoutes', () => {
  it('serves exactly the routes of the table (and HEAD for each GET)', async () => {
    const served: string[] = [];
    app = tableServer((method, url) => served.push(`${method} ${url}`));
    await app.ready();
    const expected = API_ROUTES.flatMap((r) =>
      r.method === 'get' ? [`GET ${r.path}`, `HEAD ${r.path}`] : [`${r.method.toUpperCase()} ${r.path}`],
    );
    expect(served.sort()).toEqual(expected.sort());
  });

  it('refuses a path parameter that breaks its schema, naming it', async () => {
    expect(await answer('GET', '/v1/tool-batches/a%20b')).toBe(
      '400 INVALID_REQUEST: batch id: use 1-100 letters, digits, _ . -',
    );
    expect(await answer('DELETE', '/v1/runs/nope')).toBe(
      '400 INVALID_REQUEST: run id: a run id is run_ and 24 hex digits',
    );
  });

  it('refuses a query that breaks its schema, unknown parameters included where the schema is strict', async () => {
    expect(await answer('GET', '/v1/runs?limit=0')).toMatch(/^400 INVALID_REQUEST: query: limit: /);
    expect(await answer('GET', '/v1/runs?colour=blue')).toMatch(/^400 INVALID_REQUEST: query: .*colour/);
    expect(await answer('GET', '/v1/report?window=1m&window=2m')).toMatch(
      /^400 INVALID_REQUEST: query: window: /,
    );
  });

  it('refuses a body that breaks its schema, naming the path in it', async () => {
    expect(await answer('POST', '/v1/tool-batches', { body: { tool_uses: [{ id: 'a', name: 'x' }] } })).toBe(
      '400 INVALID_REQUEST: invalid body: tool_uses.0.input: Required',
    );
  });

  it('checks path, then query, then headers; a header only when it is sent', async () => {
    const events = '/v1/runs/run_0123456789abcdef01234567/events';
    const badHeader = { 'last-event-id': 'yesterday' };
    expect(await answer('GET', '/v1/runs/nope/events?last_event_id=x', { headers: badHeader })).toMatch(
      /^400 INVALID_REQUEST: run id: /,
    );
    expect(await answer('GET', `${events}?last_event_id=x`, { headers: badHeader })).toMatch(
      /^400 INVALID_REQUEST: query: last_event_id: /,
    );
    expect(await answer('GET', events, { headers: badHeader })).toBe(
      '400 INVALID_REQUEST: Last-Event-ID header: an event id is <ms>-<seq>, as sent in id:',
    );
  });

  it("answers a route's readiness before its request: POST /v1/runs without a model is 503 whatever the body", async () => {
    expect(await answer('POST', '/v1/runs', { body: { nonsense: true } })).toMatch(/^503 NO_MODEL: /);
  });
});
