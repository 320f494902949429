/**
 * MCP content in toolq: what `mcpResult()` wraps, how it travels in a CallResult (`mcp`), and how
 * it becomes `tool_result` content for Messages API callers. MCP clients of the coordinator get
 * the blocks unchanged; the Messages API gets text and the images it takes, and a short text
 * naming anything it cannot carry (audio, other binaries), so the model knows it was there.
 */
import { z } from 'zod';
import { ToolqError } from './errors.ts';

const meta = { _meta: z.record(z.string(), z.unknown()).optional() };
const textResource = z.object({ uri: z.string(), mimeType: z.string().optional(), text: z.string() }).loose();
const blobResource = z.object({ uri: z.string(), mimeType: z.string().optional(), blob: z.string() }).loose();

/** One MCP content block (the 2025-06-18 and 2025-11-25 revisions); unknown fields are kept. */
export const mcpContentBlockSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), text: z.string(), ...meta }).loose(),
  z.object({ type: z.literal('image'), data: z.string(), mimeType: z.string(), ...meta }).loose(),
  z.object({ type: z.literal('audio'), data: z.string(), mimeType: z.string(), ...meta }).loose(),
  z
    .object({
      type: z.literal('resource_link'),
      uri: z.string(),
      name: z.string(),
      description: z.string().optional(),
      mimeType: z.string().optional(),
      ...meta,
    })
    .loose(),
  z.object({ type: z.literal('resource'), resource: z.union([textResource, blobResource]), ...meta }).loose(),
]);
export type McpContentBlock = z.infer<typeof mcpContentBlockSchema>;

/** A tool's answer in MCP's own terms (a `CallToolResult`), as a CallResult carries it. */
export const mcpToolResultSchema = z.object({
  content: z.array(mcpContentBlockSchema),
  structuredContent: z.record(z.string(), z.unknown()).optional(),
  isError: z.boolean().optional(),
});
export type McpToolResult = z.infer<typeof mcpToolResultSchema>;

/** Global, so a tool module with its own copy of @toolq/shared is still recognised by the worker's. */
const MCP_RESULT: unique symbol = Symbol.for('toolq.mcpResult') as never;

/** What `mcpResult()` returns: a tool's return value that the worker passes on as MCP content. */
export interface McpResultValue extends McpToolResult {
  readonly [MCP_RESULT]: true;
}

/**
 * A tool's result as MCP content: MCP clients of the coordinator (`/mcp`) get `content`,
 * `structuredContent` and `isError` unchanged; Messages API callers get the content mapped (text,
 * JPEG/PNG/GIF/WebP images; other parts named in a short text). `isError: true` answers the call as
 * a failed one (not retried). Checked here, so a malformed block fails where it is written.
 */
export function mcpResult(result: {
  content: readonly McpContentBlock[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}): McpResultValue {
  const parsed = mcpToolResultSchema.safeParse(result);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.map(String).join('.') : '(result)';
    throw new ToolqError('INVALID_INPUT', `mcpResult(): ${where}: ${issue?.message ?? 'invalid'}`);
  }
  return Object.assign(parsed.data, { [MCP_RESULT]: true as const });
}

export function isMcpResult(value: unknown): value is McpResultValue {
  return (
    typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MCP_RESULT] === true
  );
}

/** MCP's tool annotations: hints for clients, never trusted for security. */
export const toolAnnotationsSchema = z
  .object({
    title: z.string().max(200).optional(),
    readOnlyHint: z.boolean().optional(),
    destructiveHint: z.boolean().optional(),
    idempotentHint: z.boolean().optional(),
    openWorldHint: z.boolean().optional(),
  })
  .loose();
export type ToolAnnotations = z.infer<typeof toolAnnotationsSchema>;
