/**
 * A call's answer as an MCP `CallToolResult`: the tool's own MCP content when it returned some
 * (`mcpResult()`, an MCP server's tool), unchanged; otherwise its `tool_result` content as MCP
 * content (text, and images as image blocks). Every failure (error, timeout, cancelled, invalid
 * input) is `isError: true` with the message the model would read, as the spec asks of tool errors.
 */
import type { McpContentBlock, McpToolResult, ToolContentBlock, ToolResultBlock } from '@toolq/shared';

export interface McpCallResult {
  [key: string]: unknown;
  content: McpContentBlock[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

export function toMcpCallResult(block: ToolResultBlock, mcp: McpToolResult | undefined): McpCallResult {
  const failed = block.is_error === true;
  if (mcp) {
    return {
      content: mcp.content,
      ...(mcp.structuredContent !== undefined ? { structuredContent: mcp.structuredContent } : {}),
      ...(failed || mcp.isError ? { isError: true } : {}),
    };
  }
  const content =
    typeof block.content === 'string'
      ? [{ type: 'text' as const, text: block.content }]
      : block.content.map(toMcpBlock);
  return { content, ...(failed ? { isError: true } : {}) };
}

function toMcpBlock(block: ToolContentBlock): McpContentBlock {
  if (block.type === 'text') return { type: 'text', text: block.text };
  const source = block.source;
  if (source.type === 'base64') return { type: 'image', data: source.data, mimeType: source.media_type };
  // MCP images are inline data: a URL or a Files API id is passed on as what it is.
  if (source.type === 'url') return { type: 'resource_link', uri: source.url, name: 'image' };
  return { type: 'text', text: `[image: Anthropic Files API file ${source.file_id}]` };
}
