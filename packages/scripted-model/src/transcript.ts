import type { MessageParam, ReceivedToolResult } from './script.ts';

/** Reading a conversation the way scripts need it: tool results joined with the calls they answer. */

export interface LooseBlock {
  type: string;
  [key: string]: unknown;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A message's content as blocks; string content counts as one text block. */
export function contentBlocks(message: MessageParam | undefined): LooseBlock[] {
  if (message === undefined) return [];
  const { content } = message;
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  if (!Array.isArray(content)) return [];
  const blocks: unknown[] = content;
  return blocks.filter((b): b is LooseBlock => isRecord(b) && typeof b.type === 'string');
}

export function textOf(blocks: readonly LooseBlock[]): string {
  return blocks
    .filter((b) => b.type === 'text' && typeof b.text === 'string')
    .map((b) => b.text as string)
    .join('\n');
}

/** A tool_result's content as text: strings as they are, text blocks joined, other blocks named. */
export function toolResultText(content: unknown): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return JSON.stringify(content);
  return content
    .map((b) => {
      if (!isRecord(b)) return JSON.stringify(b);
      if (b.type === 'text' && typeof b.text === 'string') return b.text;
      return `[${String(b.type)}]`;
    })
    .join('\n');
}

/** The tool_result blocks of `messages[userIndex]`, joined with the tool_use blocks just before it. */
export function toolResultsAt(messages: readonly MessageParam[], userIndex: number): ReceivedToolResult[] {
  const user = messages[userIndex];
  if (user === undefined || user.role !== 'user') return [];
  const previous = messages[userIndex - 1];
  const calls = new Map<string, LooseBlock>();
  if (previous?.role === 'assistant') {
    for (const block of contentBlocks(previous)) {
      if (block.type === 'tool_use' && typeof block.id === 'string') calls.set(block.id, block);
    }
  }
  return contentBlocks(user)
    .filter((b) => b.type === 'tool_result')
    .map((b) => {
      const toolUseId = String(b.tool_use_id);
      const call = calls.get(toolUseId);
      return {
        toolUseId,
        name: typeof call?.name === 'string' ? call.name : undefined,
        input: call?.input,
        content: toolResultText(b.content),
        isError: b.is_error === true,
        block: b as unknown as ReceivedToolResult['block'],
      };
    });
}

/** Tool results of the last message when it is a user message. */
export function lastToolResults(messages: readonly MessageParam[]): ReceivedToolResult[] {
  return toolResultsAt(messages, messages.length - 1);
}

/** Every tool result in the conversation, oldest first. */
export function allToolResults(messages: readonly MessageParam[]): ReceivedToolResult[] {
  return messages.flatMap((_, i) => toolResultsAt(messages, i));
}

export function lastUserText(messages: readonly MessageParam[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (message?.role === 'user') return textOf(contentBlocks(message));
  }
  return '';
}

export function countAssistantMessages(messages: readonly MessageParam[]): number {
  return messages.filter((m) => m.role === 'assistant').length;
}
