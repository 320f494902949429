/**
 * `/mcp` on the coordinator's HTTP server: the Streamable HTTP transport of the MCP SDK, in its
 * stateless mode, one fresh server per request; sessions are this file's, kept in Redis, so that
 * any coordinator serves any request of a client. The server's auth and Host checks ran before
 * (same tokens as the HTTP API; the token's app owns the session and its calls).
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/server';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { appOf } from '../http/auth.ts';
import { MCP_DEFAULTS } from './options.ts';
import type { McpService } from './service.ts';
import { createToolServer } from './tool-server.ts';

/** Headers about this hop, not the message: the web Request leaves them out. */
const HOP_HEADERS = new Set([
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'upgrade',
]);

interface JsonRpcMessage {
  method?: unknown;
  params?: { requestId?: unknown; reason?: unknown } | undefined;
}

export function registerMcp(app: FastifyInstance, service: McpService): void {
  app.addHook('preClose', async () => service.endStreams());
  app.route({
    method: ['GET', 'POST', 'DELETE'],
    url: MCP_DEFAULTS.path,
    handler: (request, reply) => serve(service, request, reply),
  });
}

async function serve(service: McpService, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const app = appOf(request);
  const messages = request.method === 'POST' ? messagesOf(request.body) : [];
  const initializing = messages.some((m) => m.method === 'initialize');
  let session: string | undefined;
  if (!initializing) {
    const header = request.headers['mcp-session-id'];
    if (typeof header !== 'string' || header === '')
      return rpcError(
        reply,
        400,
        -32000,
        'Bad Request: Mcp-Session-Id header is required (initialize first)',
      );
    if (!(await service.sessions.use(header, app)))
      return rpcError(reply, 404, -32001, 'Session not found: it expired or was ended; initialize a new one');
    session = header;
  }
  if (request.method === 'DELETE') {
    await service.sessions.delete(session as string);
    return void reply.code(200).send();
  }
  if (session) await cancelCalls(service, session, messages);

  const server = createToolServer({
    dispatcher: service.dispatcher,
    cancels: service.cancels,
    app,
    session,
    version: service.version,
  });
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    keepAliveMs: MCP_DEFAULTS.keepAliveMs,
  });
  await server.connect(transport);
  const disconnected = new AbortController();
  reply.raw.once('close', () => disconnected.abort());
  let forgetStream: (() => void) | undefined;
  try {
    const response = await transport.handleRequest(webRequest(request, disconnected.signal), {
      ...(request.method === 'POST' ? { parsedBody: request.body } : {}),
    });
    const headers = new Headers(response.headers);
    if (initializing && response.ok) headers.set('mcp-session-id', await service.sessions.create(app));
    if (request.method === 'GET' && response.ok) {
      forgetStream = service.addStream({
        toolsChanged: () =>
          server
            .sendToolListChanged()
            .catch((err: Error) =>
              service.logger.debug({ err: err.message }, 'could not send tools/list_changed'),
            ),
        end: () => reply.raw.end(),
      });
    }
    await send(reply, response, headers);
  } finally {
    forgetStream?.();
    await server.close().catch(() => undefined);
  }
}

/**
 * A client's `notifications/cancelled` names a request of its session that may run on another
 * coordinator: each one is passed to wherever its call runs (the SDK's own handling reaches only
 * requests of the same server instance, which a stateless server never has).
 */
async function cancelCalls(service: McpService, session: string, messages: JsonRpcMessage[]): Promise<void> {
  for (const message of messages) {
    if (message.method !== 'notifications/cancelled') continue;
    const requestId = message.params?.requestId;
    if (typeof requestId !== 'string' && typeof requestId !== 'number') continue;
    const reason =
      typeof message.params?.reason === 'string' ? message.params.reason : 'the client cancelled the call';
    await service.cancels.cancel({ session, requestId, reason: reason.slice(0, 1_000) });
  }
}

function messagesOf(body: unknown): JsonRpcMessage[] {
  const list = Array.isArray(body) ? body : [body];
  return list.filter((m): m is JsonRpcMessage => typeof m === 'object' && m !== null);
}

function webRequest(request: FastifyRequest, signal: AbortSignal): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined || HOP_HEADERS.has(name)) continue;
    headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  return new Request(new URL(request.url, 'http://localhost'), { method: request.method, headers, signal });
}

/** Writes the SDK's web Response: a JSON body, a 202, or an SSE stream that lasts as long as it has to. */
async function send(reply: FastifyReply, response: Response, headers: Headers): Promise<void> {
  reply.hijack();
  reply.raw.writeHead(response.status, Object.fromEntries(headers));
  if (!response.body) {
    reply.raw.end();
    return;
  }
  // The client going away ends the pipeline, and with it the SDK's stream.
  await pipeline(Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>), reply.raw).catch(
    () => undefined,
  );
}

function rpcError(reply: FastifyReply, status: number, code: number, message: string): void {
  reply.code(status).send({ jsonrpc: '2.0', error: { code, message }, id: null });
}
