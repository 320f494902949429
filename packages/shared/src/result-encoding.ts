/**
 * How a call's outcome becomes `tool_result` content: promise 2 of the design, in one place, so the
 * worker, the coordinator and the HTTP API all say exactly the same thing to the model.
 */

import type { z } from 'zod';
import { contentBlockSchema, type ToolContentBlock } from './contract.ts';
import { DEFAULTS } from './defaults.ts';
import { isMcpResult, type McpToolResult } from './mcp-content.ts';
import { mcpErrorText, mcpToToolResultContent } from './mcp-mapping.ts';

export const DEFAULT_MAX_RESULT_BYTES: number = DEFAULTS.maxResultBytes;

export const messages = {
  error: (message: string) => `Error: ${message}`,
  timeout: (tool: string, timeoutMs: number) => `Tool ${tool} timed out after ${formatSeconds(timeoutMs)}s`,
  unknownTool: (tool: string) => `Unknown tool: ${tool}`,
  invalidInput: (tool: string, problems: string) => `Invalid input for ${tool}: ${problems}`,
  noWorker: (tool: string, pool: string) =>
    `Error: no live worker serves tool ${tool} (pool ${pool}); start one with \`pnpm worker\``,
  cancelled: (reason: string) => `Error: cancelled: ${reason}`,
  /** A flow-controlled call that never ran: the model may retry it later, knowing nothing happened. */
  notStarted: (tool: string, why: string) => `Error: tool ${tool} was not started (it did not run): ${why}`,
  /** An at-most-once call that will not run again (docs/delivery.md): the model must check first. */
  interrupted: (tool: string, why: string) =>
    `Error: outcome unknown: the call to ${tool} was interrupted after it started (${why}). It may or may not have taken effect, and toolq will not run it again: check whether it did before repeating it.`,
  batchTooLarge: (tool: string, bytes: number, limit: number) =>
    `Error: the result of ${tool} (${bytes} bytes) was dropped: the batch's answer would be larger than ${limit} bytes (TOOLQ_MAX_BATCH_RESULT_BYTES); ask for less per call or split the work over several turns`,
};

function formatSeconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(3)));
}

/** `path: problem` for every zod issue; the path is dotted (`items.0.name`), `(input)` for the root. */
export function describeZodIssues(error: z.ZodError, maxIssues = 5): string {
  const parts = error.issues.slice(0, maxIssues).map((issue) => {
    const path = issue.path.length === 0 ? '(input)' : issue.path.map(String).join('.');
    return `${path}: ${issue.message}`;
  });
  const more = error.issues.length - parts.length;
  return parts.join('; ') + (more > 0 ? `; and ${more} more` : '');
}

export type EncodedContent =
  | {
      ok: true;
      content: string | ToolContentBlock[];
      /** The tool returned `mcpResult()`: its MCP content, passed unchanged to MCP clients. */
      mcp?: McpToolResult;
      /** The MCP result says the tool failed (`isError`): `content` is its `Error: …` message. */
      failed?: true;
    }
  | { ok: false; message: string };

function isContentBlockArray(value: unknown): value is ToolContentBlock[] {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((item) => contentBlockSchema.safeParse(item).success)
  );
}

/**
 * A string passes as returned; an array of text/image content blocks passes through; anything
 * else is `JSON.stringify`'d. Results that cannot be serialised or are too large become errors
 * that say so, instead of failing somewhere later in Redis or at the API.
 */
export function encodeToolOutput(
  tool: string,
  value: unknown,
  maxBytes = DEFAULT_MAX_RESULT_BYTES,
): EncodedContent {
  let content: string | ToolContentBlock[];
  let serialised: string;
  if (isMcpResult(value)) return encodeMcpResult(tool, value, maxBytes);
  try {
    if (typeof value === 'string') {
      content = value;
      serialised = value;
    } else if (isContentBlockArray(value)) {
      content = value;
      serialised = JSON.stringify(value);
    } else {
      const json: string | undefined = JSON.stringify(value === undefined ? null : value);
      // Functions, symbols and objects whose toJSON() gives undefined have no JSON form at all.
      if (json === undefined) {
        return {
          ok: false,
          message: messages.error(
            `the result of ${tool} is a ${typeof value}, which has no JSON form; return a string, a JSON value or content blocks`,
          ),
        };
      }
      serialised = json;
      content = serialised;
    }
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return {
      ok: false,
      message: messages.error(`the result of ${tool} cannot be serialised as JSON: ${reason}`),
    };
  }
  const bytes = Buffer.byteLength(serialised, 'utf8');
  if (bytes > maxBytes) {
    return {
      ok: false,
      message: messages.error(`the result of ${tool} is ${bytes} bytes, over the limit of ${maxBytes} bytes`),
    };
  }
  return { ok: true, content };
}

/** An `mcpResult()`: the MCP content as given, and its mapping for the Messages API; both count. */
function encodeMcpResult(tool: string, value: McpToolResult, maxBytes: number): EncodedContent {
  const mcp: McpToolResult = {
    content: value.content,
    ...(value.structuredContent !== undefined ? { structuredContent: value.structuredContent } : {}),
    ...(value.isError ? { isError: true } : {}),
  };
  const content = value.isError ? messages.error(mcpErrorText(value)) : mcpToToolResultContent(value);
  let bytes: number;
  try {
    bytes = Buffer.byteLength(JSON.stringify(mcp)) + Buffer.byteLength(JSON.stringify(content));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return {
      ok: false,
      message: messages.error(`the result of ${tool} cannot be serialised as JSON: ${reason}`),
    };
  }
  if (bytes > maxBytes) {
    return {
      ok: false,
      message: messages.error(`the result of ${tool} is ${bytes} bytes, over the limit of ${maxBytes} bytes`),
    };
  }
  return { ok: true, content, mcp, ...(value.isError ? { failed: true as const } : {}) };
}

/** The first line of a result (at most 300 characters): how a failure is named in another call's message. */
export function firstLineOf(content: string | readonly unknown[]): string {
  const text = typeof content === 'string' ? content : JSON.stringify(content);
  return (text.split('\n')[0] ?? '').slice(0, 300);
}
