/**
 * One MCP tool as a toolq tool: validated against its `inputSchema` on the worker, run as
 * `tools/call` on its server's connection within the call's deadline, its progress passed on, its
 * result returned as `mcpResult()`: unchanged for MCP clients of the coordinator, mapped to
 * `tool_result` content (`isError` to `is_error`) for Messages API callers.
 */
import type { Tool } from '@modelcontextprotocol/client';
import { type AnyTool, type Delivery, defineTool, type McpContentBlock, mcpResult } from '@toolq/shared';
import type { McpToolqSettings } from './config.ts';
import { compileInputSchema } from './input-schema.ts';
import type { McpServerConnection } from './server-connection.ts';

/** Retried under the `retry` policy only when the server says running it twice is harmless. */
export function isSafeToRetry(tool: Pick<Tool, 'annotations'>): boolean {
  return tool.annotations?.idempotentHint === true || tool.annotations?.readOnlyHint === true;
}

/** The worker's config for the tool wins; else its annotations: safe to run again, or at most once. */
export function mcpDelivery(tool: Pick<Tool, 'name' | 'annotations'>, settings: McpToolqSettings): Delivery {
  const configured = settings.delivery;
  if (typeof configured === 'string') return configured;
  return configured?.[tool.name] ?? (isSafeToRetry(tool) ? 'at-least-once' : 'at-most-once');
}

export function adaptMcpTool(options: {
  fleetName: string;
  tool: Tool;
  connection: McpServerConnection;
  settings: McpToolqSettings;
}): { tool: AnyTool; release(): void } {
  const { fleetName, tool, connection, settings } = options;
  const schema = compileInputSchema(tool.inputSchema);
  const description =
    tool.description?.trim() ||
    tool.annotations?.title ||
    tool.title ||
    `${tool.name} (MCP server ${connection.name})`;
  const limits = settings.limits[tool.name] ?? settings.limits['*'] ?? {};
  const adapted = defineTool({
    name: fleetName,
    description,
    input: schema.zod,
    inputSchema: schema.jsonSchema,
    timeoutMs: settings.timeoutMs,
    delivery: mcpDelivery(tool, settings),
    ...(isSafeToRetry(tool) && mcpDelivery(tool, settings) === 'at-least-once'
      ? { retry: settings.retry }
      : {}),
    ...(limits.concurrency !== undefined ? { concurrency: limits.concurrency } : {}),
    ...(limits.rateLimit !== undefined ? { rateLimit: limits.rateLimit } : {}),
    ...(tool.annotations || tool.title
      ? { annotations: { ...(tool.title ? { title: tool.title } : {}), ...tool.annotations } }
      : {}),
    run: async (input, ctx) => {
      const signal = withReadableReason(ctx.signal, ctx.deadline);
      const result = await connection.call(tool.name, input, {
        signal,
        deadline: ctx.deadline,
        onProgress: (p) => ctx.reportProgress(p.progress, p.total, p.message),
      });
      // isError: the tool ran and said it failed; the call fails without a retry (the model decides).
      return mcpResult({
        content: (result.content ?? []) as McpContentBlock[],
        ...(result.structuredContent
          ? { structuredContent: result.structuredContent as Record<string, unknown> }
          : {}),
        ...(result.isError ? { isError: true } : {}),
      });
    },
  });
  return { tool: adapted, release: schema.release };
}

/**
 * The SDK sends `String(signal.reason)` to the server in `notifications/cancelled`; the worker's
 * own reasons are internal objects, so the server is told plainly why instead.
 */
function withReadableReason(signal: AbortSignal, deadline: number | undefined): AbortSignal {
  const controller = new AbortController();
  const onAbort = () => {
    const timedOut = deadline !== undefined && Date.now() >= deadline - 5;
    controller.abort(timedOut ? "toolq: the call's deadline passed" : 'toolq: the call was cancelled');
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return controller.signal;
}
