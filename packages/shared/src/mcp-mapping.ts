/**
 * MCP content as `tool_result` content for Messages API callers: text stays text, images the API
 * takes become image blocks, embedded text resources become text (with their URI), and anything
 * else becomes a short text saying what was dropped, so the model knows something was there.
 */
import type { ToolContentBlock } from './contract.ts';
import type { McpContentBlock, McpToolResult } from './mcp-content.ts';

/** Image types a `tool_result` image block may carry. */
const API_IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'] as const;
type ApiImageType = (typeof API_IMAGE_TYPES)[number];
const isApiImageType = (mime: string): mime is ApiImageType =>
  (API_IMAGE_TYPES as readonly string[]).includes(mime);

/** MCP content as `tool_result` content: one text block alone as a plain string, otherwise the blocks. */
export function mcpToToolResultContent(
  result: Pick<McpToolResult, 'content' | 'structuredContent'>,
): string | ToolContentBlock[] {
  const blocks = result.content.map(mapBlock);
  // A tool with only structured output (allowed by the spec): its JSON is the answer.
  if (blocks.length === 0 && result.structuredContent !== undefined)
    return JSON.stringify(result.structuredContent);
  if (blocks.length === 0) return '';
  const only = blocks[0];
  if (blocks.length === 1 && only?.type === 'text') return only.text as string;
  return blocks;
}

/** The text of an `isError` result, for the `Error: …` message (non-text parts are named). */
export function mcpErrorText(result: Pick<McpToolResult, 'content'>): string {
  const parts = result.content.map(mapBlock).map((b) => (b.type === 'text' ? b.text : '[image]'));
  const text = parts.join('\n').trim();
  return text === '' ? 'the tool reported an error without a message' : text;
}

function mapBlock(block: McpContentBlock): ToolContentBlock {
  switch (block.type) {
    case 'text':
      return { type: 'text', text: block.text };
    case 'image':
      if (isApiImageType(block.mimeType))
        return { type: 'image', source: { type: 'base64', media_type: block.mimeType, data: block.data } };
      return dropped(
        `an image of type ${block.mimeType}`,
        'tool results take JPEG, PNG, GIF and WebP images',
      );
    case 'audio':
      return dropped(`audio of type ${block.mimeType}`, 'tool results cannot carry audio');
    case 'resource_link': {
      const about = [block.mimeType, block.description].filter(Boolean).join(', ');
      return {
        type: 'text',
        text: `Resource link: ${block.name} <${block.uri}>${about ? ` (${about})` : ''}`,
      };
    }
    case 'resource': {
      const resource = block.resource;
      if ('text' in resource && typeof resource.text === 'string')
        return { type: 'text', text: `Resource <${resource.uri}>:\n${resource.text}` };
      const mime = resource.mimeType ?? 'application/octet-stream';
      const blob = 'blob' in resource && typeof resource.blob === 'string' ? resource.blob : undefined;
      if (blob !== undefined && isApiImageType(mime))
        return { type: 'image', source: { type: 'base64', media_type: mime, data: blob } };
      const size = blob !== undefined ? ` (${base64Bytes(blob)} bytes)` : '';
      return dropped(
        `the binary resource <${resource.uri}> of type ${mime}${size}`,
        'tool results cannot carry it',
      );
    }
    default:
      return dropped(`a content block of type ${(block as { type: string }).type}`, 'toolq does not know it');
  }
}

function dropped(what: string, why: string): ToolContentBlock {
  return { type: 'text', text: `[toolq dropped ${what}: ${why}]` };
}

function base64Bytes(data: string): number {
  const padding = data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0;
  return Math.floor((data.length * 3) / 4) - padding;
}
