/**
 * The MCP server of one request: the SDK's low-level `Server` with the fleet's tools, made fresh
 * for every HTTP request (stateless serving: nothing of a session lives in a process). `tools/list`
 * is the catalog; `tools/call` is a one-call batch through the Dispatcher, the same barrier,
 * deadlines, routing and metrics as every other caller, under the token's app.
 */
import { randomUUID } from 'node:crypto';
import { ProtocolError, ProtocolErrorCode, Server } from '@modelcontextprotocol/server';
import { ToolqError } from '@toolq/shared';
import { MAX_TIMEOUT_MS } from '@toolq/shared/internal';
import type { Dispatcher } from '../dispatcher.ts';
import { toMcpCallResult } from './call-result.ts';
import type { McpCancels } from './cancels.ts';
import { MCP_DEFAULTS } from './options.ts';
import { listedTools } from './tool-list.ts';

export interface ToolServerContext {
  dispatcher: Dispatcher;
  cancels: McpCancels;
  /** The token's app: the calls are its batches. */
  app: string;
  /** The session the request belongs to (none for `initialize`). */
  session: string | undefined;
  version: string;
}

export function createToolServer(context: ToolServerContext): Server {
  const { dispatcher, cancels, app, session } = context;
  const server = new Server(
    { name: MCP_DEFAULTS.serverName, version: context.version },
    { capabilities: { tools: { listChanged: true } } },
  );
  server.setRequestHandler('tools/list', () => ({ tools: listedTools(dispatcher.catalog.list()) }));
  server.setRequestHandler('tools/call', async (request, ctx) => {
    const { name, arguments: input = {}, _meta: meta } = request.params;
    const controller = new AbortController();
    const onSdkAbort = () => controller.abort(ctx.mcpReq.signal.reason);
    ctx.mcpReq.signal.addEventListener('abort', onSdkAbort, { once: true });
    const forget = session ? cancels.track(session, ctx.mcpReq.id, controller) : () => undefined;
    const progressToken = meta?.progressToken;
    const timeoutMs = timeoutOf(meta?.[MCP_DEFAULTS.timeoutMetaKey]);
    try {
      const early = session ? await cancels.cancelledEarly(session, ctx.mcpReq.id) : undefined;
      if (early !== undefined) controller.abort(new Error(early));
      const result = await dispatcher.dispatch(
        [{ type: 'tool_use', id: `toolu_mcp_${randomUUID()}`, name, input }],
        {
          app,
          signal: controller.signal,
          ...(timeoutMs !== undefined ? { timeoutMs } : {}),
          ...(progressToken !== undefined
            ? {
                onProgress: ({ progress, total, message }) => {
                  ctx.mcpReq
                    .notify({
                      method: 'notifications/progress',
                      params: {
                        progressToken,
                        progress,
                        ...(total !== undefined ? { total } : {}),
                        ...(message !== undefined ? { message } : {}),
                      },
                    })
                    .catch(() => undefined); // the client went away: its result goes nowhere either
                },
              }
            : {}),
        },
      );
      const [block] = result.toolResults;
      const [stats] = result.calls;
      if (!block || !stats)
        throw new ProtocolError(ProtocolErrorCode.InternalError, 'the batch answered no call');
      // The spec's protocol error for a tool the server does not have; every other failure is a result.
      if (stats.outcome === 'unknown_tool')
        throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown tool: ${name}`);
      return toMcpCallResult(block, result.mcpResults?.[0]);
    } catch (err) {
      if (err instanceof ToolqError) throw new ProtocolError(ProtocolErrorCode.InvalidParams, err.message);
      throw err;
    } finally {
      forget();
      ctx.mcpReq.signal.removeEventListener('abort', onSdkAbort);
    }
  });
  return server;
}

/** The client's own limit for the call, when it sends one; else the tool's own timeout applies. */
function timeoutOf(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= MAX_TIMEOUT_MS)
    return value;
  throw new ProtocolError(
    ProtocolErrorCode.InvalidParams,
    `_meta["${MCP_DEFAULTS.timeoutMetaKey}"] must be a whole number of ms from 1 to ${MAX_TIMEOUT_MS}`,
  );
}
