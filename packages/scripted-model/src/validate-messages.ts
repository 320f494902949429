import type { MessageParam, MessagesRequestBody } from './script.ts';
import { contentBlocks, isRecord } from './transcript.ts';

/**
 * The request checks of the real Messages API that an agent loop can get wrong. Messages copy the
 * real API's wording so that code (and people) reading them learn the real thing.
 */

export type Validation = { ok: true; body: MessagesRequestBody } | { ok: false; message: string };

const ADVISOR_BETA = 'advisor-tool-2026-03-01';
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,128}$/;
// Calls the API runs itself; their results sit in the same assistant message.
const CALL_TYPES = new Set(['tool_use', 'server_tool_use', 'mcp_tool_use']);

export function validateRequestBody(raw: unknown, betas: readonly string[]): Validation {
  if (!isRecord(raw)) return fail('Request body must be a JSON object');
  for (const field of ['model', 'max_tokens', 'messages'] as const) {
    if (raw[field] === undefined) return fail(`${field}: Field required`);
  }
  if (typeof raw.model !== 'string' || raw.model === '') return fail('model: Input should be a valid string');
  if (typeof raw.max_tokens !== 'number' || !Number.isInteger(raw.max_tokens) || raw.max_tokens < 1) {
    return fail('max_tokens: Input should be a positive integer');
  }
  if (raw.stream !== undefined && typeof raw.stream !== 'boolean') {
    return fail('stream: Input should be a valid boolean');
  }
  const shape = checkMessageShapes(raw.messages);
  if (shape) return fail(shape);
  const tools = checkTools(raw.tools, betas);
  if (tools) return fail(tools);
  const pairing = checkToolPairing(raw.messages as MessageParam[]);
  if (pairing) return fail(pairing);
  return { ok: true, body: raw as MessagesRequestBody };
}

function fail(message: string): Validation {
  return { ok: false, message };
}

function checkMessageShapes(messages: unknown): string | undefined {
  if (!Array.isArray(messages)) return 'messages: Input should be a valid list';
  if (messages.length === 0) return 'messages: at least one message is required';
  for (const [i, m] of messages.entries()) {
    if (!isRecord(m)) return `messages.${i}: Input should be a valid dictionary`;
    if (m.role !== 'user' && m.role !== 'assistant')
      return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    if (typeof m.content === 'string') continue;
    if (!Array.isArray(m.content)) return `messages.${i}.content: Input should be a valid string or list`;
    for (const [j, b] of m.content.entries()) {
      if (!isRecord(b) || typeof b.type !== 'string')
        return `messages.${i}.content.${j}: Unable to extract tag using discriminator 'type'`;
      if (m.role === 'assistant' && b.type === 'tool_result') {
        return `messages.${i}.content.${j}: \`tool_result\` blocks can only be in \`user\` messages`;
      }
      if (m.role === 'user' && b.type === 'tool_use') {
        return `messages.${i}.content.${j}: \`tool_use\` blocks can only be in \`assistant\` messages`;
      }
    }
  }
  return undefined;
}

function checkTools(tools: unknown, betas: readonly string[]): string | undefined {
  if (tools === undefined) return undefined;
  if (!Array.isArray(tools)) return 'tools: Input should be a valid list';
  const names = new Set<string>();
  for (const [i, t] of tools.entries()) {
    if (!isRecord(t)) return `tools.${i}: Input should be a valid dictionary`;
    const type = t.type === undefined || t.type === 'custom' ? 'custom' : String(t.type);
    if (type === 'advisor_20260301' && !betas.includes(ADVISOR_BETA)) {
      return `tools.${i}: the advisor tool (advisor_20260301) requires the \`anthropic-beta: ${ADVISOR_BETA}\` header`;
    }
    if (typeof t.name !== 'string') return `tools.${i}.${type}.name: Field required`;
    if (type === 'custom') {
      if (!TOOL_NAME.test(t.name))
        return `tools.${i}.custom.name: String should match pattern '${TOOL_NAME.source}'`;
      if (!isRecord(t.input_schema)) return `tools.${i}.custom.input_schema: Field required`;
    }
    if (names.has(t.name)) return `tools: Tool names must be unique.`;
    names.add(t.name);
  }
  return undefined;
}

/**
 * Every `tool_use` must be answered by a `tool_result` in the very next (user) message, all of them
 * there, tool results first; no result may answer a call that is not in the message before it.
 */
export function checkToolPairing(messages: readonly MessageParam[]): string | undefined {
  const seenToolUseIds = new Set<string>();
  for (const [i, message] of messages.entries()) {
    const blocks = contentBlocks(message);
    if (message.role === 'assistant') {
      const serverIds = new Set<string>();
      const ids: string[] = [];
      for (const [j, b] of blocks.entries()) {
        if (CALL_TYPES.has(b.type) && typeof b.id === 'string') {
          if (seenToolUseIds.has(b.id)) return `messages.${i}.content.${j}: \`tool_use\` ids must be unique`;
          seenToolUseIds.add(b.id);
          if (b.type === 'tool_use') ids.push(b.id);
          else serverIds.add(b.id);
        } else if (
          b.type.endsWith('_tool_result') &&
          typeof b.tool_use_id === 'string' &&
          !serverIds.has(b.tool_use_id)
        ) {
          return (
            `messages.${i}.content.${j}: unexpected \`tool_use_id\` found in \`${b.type}\` blocks: ${b.tool_use_id}. ` +
            `Each \`${b.type}\` block must have a corresponding \`server_tool_use\` block before it.`
          );
        }
      }
      const next = messages[i + 1];
      const answered = new Set(
        next?.role === 'user'
          ? contentBlocks(next)
              .filter((b) => b.type === 'tool_result')
              .map((b) => String(b.tool_use_id))
          : [],
      );
      const missing = ids.filter((id) => !answered.has(id));
      if (missing.length > 0) {
        return (
          `messages.${i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. ` +
          'Each `tool_use` block must have a corresponding `tool_result` block in the next message.'
        );
      }
      continue;
    }
    const previous = messages[i - 1];
    const calls = new Set(
      previous?.role === 'assistant'
        ? contentBlocks(previous)
            .filter((b) => b.type === 'tool_use')
            .map((b) => String(b.id))
        : [],
    );
    const answered = new Set<string>();
    let firstOther: number | undefined;
    for (const [j, b] of blocks.entries()) {
      if (b.type !== 'tool_result') {
        firstOther ??= j;
        continue;
      }
      const id = String(b.tool_use_id);
      if (!calls.has(id)) {
        return (
          `messages.${i}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${id}. ` +
          'Each `tool_result` block must have a corresponding `tool_use` block in the previous message.'
        );
      }
      if (answered.has(id)) {
        return `messages.${i}.content.${j}: each tool_use must have a single result. Found multiple \`tool_result\` blocks with id: ${id}`;
      }
      answered.add(id);
      if (firstOther !== undefined) {
        return (
          `messages.${i}.content.${j}: \`tool_result\` blocks must come first in the user message content, ` +
          `before any other block (found \`${blocks[firstOther]?.type}\` at messages.${i}.content.${firstOther})`
        );
      }
    }
  }
  return undefined;
}
