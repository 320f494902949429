import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MessagesRequestBody, ScriptedBlock, ScriptedResponse, ScriptedUsage } from './script.ts';

/**
 * Turns a ScriptedResponse into the two wire forms of the Messages API: one JSON message, or the
 * SSE sequence message_start, ping, (content_block_start, *_delta…, content_block_stop)×N,
 * message_delta, message_stop. Both forms come from the same rendering so they cannot drift apart.
 */

export type JsonObject = Record<string, unknown>;

export interface StreamEvent {
  event: string;
  data: JsonObject;
}

export interface RenderedBlock {
  /** Wait before this block's events (streaming) or added to the JSON answer's delay. */
  delayMs: number;
  /** The block as it appears in the final message. */
  block: JsonObject;
  /** content_block_start … content_block_stop for this block. */
  events: StreamEvent[];
}

export interface RenderedResponse {
  message: JsonObject;
  blocks: RenderedBlock[];
  messageStart: StreamEvent;
  messageDelta: StreamEvent;
}

export interface RenderOptions {
  messageId: string;
  nextToolUseId: () => string;
  nextServerToolUseId: () => string;
  textChunkSize: number;
  jsonChunkSize: number;
}

export function renderResponse(
  turn: ScriptedResponse,
  body: MessagesRequestBody,
  options: RenderOptions,
): RenderedResponse {
  const blocks = turn.content.map((spec, index) => renderBlock(spec, index, options));
  const content = blocks.map((b) => b.block);
  const stopReason =
    turn.stopReason ?? (content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn');
  const stopSequence =
    stopReason === 'stop_sequence' ? (turn.stopSequence ?? body.stop_sequences?.[0] ?? '\n\nHuman:') : null;
  const stopDetails =
    stopReason === 'refusal'
      ? (turn.stopDetails ?? { type: 'refusal', category: null, explanation: null })
      : null;
  const usage = computeUsage(turn.usage, body, content);
  const model = turn.model ?? body.model;
  const base = { id: options.messageId, type: 'message', role: 'assistant', model };
  const cache = {
    cache_creation_input_tokens: usage.cache_creation_input_tokens,
    cache_read_input_tokens: usage.cache_read_input_tokens,
  };
  const extras = {
    ...(usage.server_tool_use ? { server_tool_use: usage.server_tool_use } : {}),
    ...(usage.iterations ? { iterations: usage.iterations } : {}),
  };
  const message = {
    ...base,
    content,
    stop_reason: stopReason,
    stop_sequence: stopSequence,
    stop_details: stopDetails,
    usage: {
      input_tokens: usage.input_tokens,
      ...cache,
      output_tokens: usage.output_tokens,
      service_tier: 'standard',
      ...extras,
    },
  };
  const messageStart = {
    event: 'message_start',
    data: {
      type: 'message_start',
      message: {
        ...base,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        stop_details: null,
        usage: { input_tokens: usage.input_tokens, ...cache, output_tokens: 1, service_tier: 'standard' },
      },
    },
  };
  // Like the real API, the delta carries cumulative totals; iterations only exist once the turn is done.
  const messageDelta = {
    event: 'message_delta',
    data: {
      type: 'message_delta',
      delta: { stop_reason: stopReason, stop_sequence: stopSequence, stop_details: stopDetails },
      usage: { input_tokens: usage.input_tokens, ...cache, output_tokens: usage.output_tokens, ...extras },
    },
  };
  return { message, blocks, messageStart, messageDelta };
}

function renderBlock(spec: ScriptedBlock, index: number, options: RenderOptions): RenderedBlock {
  const delayMs = spec.delayMs ?? 0;
  const start = (content_block: JsonObject): StreamEvent => ({
    event: 'content_block_start',
    data: { type: 'content_block_start', index, content_block },
  });
  const delta = (d: JsonObject): StreamEvent => ({
    event: 'content_block_delta',
    data: { type: 'content_block_delta', index, delta: d },
  });
  const stop: StreamEvent = { event: 'content_block_stop', data: { type: 'content_block_stop', index } };
  const jsonDeltas = (json: string): StreamEvent[] =>
    // The real API opens every tool input with an empty partial_json; clients must cope with it.
    ['', ...chunk(json, options.jsonChunkSize)].map((partial_json) =>
      delta({ type: 'input_json_delta', partial_json }),
    );

  switch (spec.type) {
    case 'text': {
      const deltas = chunk(spec.text, options.textChunkSize).map((t) =>
        delta({ type: 'text_delta', text: t }),
      );
      return {
        delayMs,
        block: { type: 'text', text: spec.text },
        events: [start({ type: 'text', text: '' }), ...deltas, stop],
      };
    }
    case 'tool_use': {
      const id = spec.id ?? options.nextToolUseId();
      const full = inputJson(spec.input);
      const truncated = spec.truncateInputAt !== undefined;
      const streamed = truncated ? full.slice(0, spec.truncateInputAt) : full;
      // As the Messages API sends it: `caller` says the model itself made the call.
      const block = {
        type: 'tool_use',
        id,
        name: spec.name,
        input: truncated ? {} : spec.input,
        caller: { type: 'direct' },
      };
      return { delayMs, block, events: [start({ ...block, input: {} }), ...jsonDeltas(streamed), stop] };
    }
    case 'server_tool_use': {
      const id = spec.id ?? options.nextServerToolUseId();
      const input = spec.input ?? {};
      const block = { type: 'server_tool_use', id, name: spec.name, input };
      return {
        delayMs,
        block,
        events: [start({ ...block, input: {} }), ...jsonDeltas(inputJson(input)), stop],
      };
    }
    case 'thinking': {
      const signature = spec.signature ?? `scripted-signature-${index}`;
      const deltas = chunk(spec.thinking, options.textChunkSize).map((t) =>
        delta({ type: 'thinking_delta', thinking: t }),
      );
      return {
        delayMs,
        block: { type: 'thinking', thinking: spec.thinking, signature },
        events: [
          start({ type: 'thinking', thinking: '', signature: '' }),
          ...deltas,
          delta({ type: 'signature_delta', signature }),
          stop,
        ],
      };
    }
    case 'redacted_thinking': {
      const block = { type: 'redacted_thinking', data: spec.data };
      return { delayMs, block, events: [start(block), stop] };
    }
    case 'passthrough':
      return { delayMs, block: spec.block, events: [start(spec.block), stop] };
  }
}

/** An empty input streams as nothing at all, as the real API does for argument-less calls. */
function inputJson(input: Record<string, unknown>): string {
  return Object.keys(input).length === 0 ? '' : JSON.stringify(input);
}

/** Fixed-size pieces by code point, so a surrogate pair is never split across deltas. */
export function chunk(value: string, size: number): string[] {
  const chars = Array.from(value);
  const pieces: string[] = [];
  for (let i = 0; i < chars.length; i += size) pieces.push(chars.slice(i, i + size).join(''));
  return pieces;
}

function computeUsage(scripted: ScriptedUsage | undefined, body: MessagesRequestBody, content: JsonObject[]) {
  const executor = (scripted?.iterations ?? []).filter((it) => it.type === 'message');
  const sum = (key: 'input_tokens' | 'output_tokens') =>
    executor.length > 0 ? executor.reduce((n, it) => n + it[key], 0) : undefined;
  // A size-based estimate keeps token counts deterministic without a tokenizer.
  const estimate = (value: unknown) => Math.max(1, Math.ceil(JSON.stringify(value).length / 4));
  return {
    input_tokens:
      scripted?.input_tokens ??
      sum('input_tokens') ??
      estimate([body.system ?? '', body.messages, body.tools ?? []]),
    output_tokens: scripted?.output_tokens ?? sum('output_tokens') ?? estimate(content),
    cache_creation_input_tokens: scripted?.cache_creation_input_tokens ?? 0,
    cache_read_input_tokens: scripted?.cache_read_input_tokens ?? 0,
    server_tool_use: scripted?.server_tool_use,
    iterations: scripted?.iterations,
  };
}

/** Waits, or returns early (without throwing) once the signal aborts. */
export async function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return;
  await sleep(ms, undefined, { signal }).catch(() => undefined);
}

export function totalDelayMs(rendered: RenderedResponse): number {
  return rendered.blocks.reduce((n, b) => n + b.delayMs, 0);
}

function writeEvent(res: ServerResponse, { event, data }: StreamEvent): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

/**
 * Streams a rendered response, honouring per-block delays. Stops quietly when the client goes away
 * (signal aborted), as a real server would.
 */
export async function writeSse(
  res: ServerResponse,
  rendered: RenderedResponse,
  signal: AbortSignal,
  streamError?: ScriptedResponse['streamError'],
): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  res.socket?.setNoDelay(true);
  writeEvent(res, rendered.messageStart);
  writeEvent(res, { event: 'ping', data: { type: 'ping' } });
  for (let i = 0; i <= rendered.blocks.length; i++) {
    if (streamError && i === Math.min(streamError.afterBlocks, rendered.blocks.length)) {
      writeEvent(res, {
        event: 'error',
        data: { type: 'error', error: { type: streamError.type, message: streamError.message } },
      });
      res.end();
      return;
    }
    const block = rendered.blocks[i];
    if (block === undefined) break;
    await pause(block.delayMs, signal);
    if (signal.aborted) return;
    for (const event of block.events) writeEvent(res, event);
  }
  writeEvent(res, rendered.messageDelta);
  writeEvent(res, { event: 'message_stop', data: { type: 'message_stop' } });
  res.end();
}
