/**
 * Messages API responses for the agent loop's pure logic, in the beta shapes @anthropic-ai/sdk
 * declares (every required field present, `null` where the API sends null), so a field the SDK
 * renames or adds as required breaks these fixtures at the type check rather than passing unseen.
 */
import type Anthropic from '@anthropic-ai/sdk';
import type { BetaMessage, BetaStopReason } from '../../src/agent/types.ts';

type Block = Anthropic.Beta.BetaContentBlock;
type Usage = Anthropic.Beta.BetaUsage;
export type Iteration = NonNullable<Usage['iterations']>[number];

export const EXECUTOR = 'claude-sonnet-4-5';
export const ADVISOR = 'claude-opus-4-1';

export function text(value: string): Anthropic.Beta.BetaTextBlock {
  return { type: 'text', text: value, citations: null };
}

export function toolUse(id: string, name: string, input: unknown): Anthropic.Beta.BetaToolUseBlock {
  return { type: 'tool_use', id, name, input };
}

export function thinking(value: string): Anthropic.Beta.BetaThinkingBlock {
  return { type: 'thinking', thinking: value, signature: 'sig' };
}

/** A server tool the API runs itself: toolq never enqueues it. */
export function serverToolUse(id: string): Anthropic.Beta.BetaServerToolUseBlock {
  return { type: 'server_tool_use', id, name: 'web_search', input: { query: 'toolq' } };
}

export function mcpToolUse(id: string): Anthropic.Beta.BetaMCPToolUseBlock {
  return { type: 'mcp_tool_use', id, name: 'search', server_name: 'docs', input: { q: 'x' } };
}

export function usage(counts: Partial<Usage> = {}): Usage {
  return {
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: null,
    cache_read_input_tokens: null,
    cache_creation: null,
    fallback_credit: null,
    inference_geo: null,
    iterations: null,
    output_tokens_details: null,
    server_tool_use: null,
    service_tier: 'standard',
    speed: null,
    ...counts,
  };
}

/** One entry of `usage.iterations`, with its cache fields (numbers there, never null). */
export function iteration(
  type: Iteration['type'],
  counts: { input: number; output: number; cacheWrite?: number; cacheRead?: number },
  model?: string | null,
): Iteration {
  const base = {
    input_tokens: counts.input,
    output_tokens: counts.output,
    cache_creation_input_tokens: counts.cacheWrite ?? 0,
    cache_read_input_tokens: counts.cacheRead ?? 0,
    cache_creation: null,
  };
  switch (type) {
    case 'message':
      return { ...base, type: 'message', model: model ?? null };
    case 'advisor_message':
      return { ...base, type: 'advisor_message', model: model ?? ADVISOR };
    case 'fallback_message':
      return { ...base, type: 'fallback_message', model: model ?? EXECUTOR };
    default:
      return { ...base, type: 'compaction' };
  }
}

let ids = 0;

export function message(
  stopReason: BetaStopReason | null,
  content: Block[],
  options: { usage?: Usage; model?: string; id?: string } = {},
): BetaMessage {
  ids += 1;
  return {
    id: options.id ?? `msg_${String(ids).padStart(4, '0')}`,
    type: 'message',
    role: 'assistant',
    model: options.model ?? EXECUTOR,
    content,
    stop_reason: stopReason,
    stop_sequence: stopReason === 'stop_sequence' ? '###' : null,
    stop_details: null,
    container: null,
    context_management: null,
    diagnostics: null,
    usage: options.usage ?? usage({ input_tokens: 10, output_tokens: 5 }),
  };
}
