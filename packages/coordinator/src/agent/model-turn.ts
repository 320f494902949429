/**
 * One model turn over the SDK, JSON or SSE. Streaming reports each `tool_use` block the moment its
 * `content_block_stop` arrives, so its call can start while the model is still writing the next
 * block. It always goes through `client.beta.messages`: only the beta stream keeps the usage
 * iterations that tell the executor's tokens from the advisor's.
 */
import type Anthropic from '@anthropic-ai/sdk';
import type { ToolUse } from '../dispatcher.ts';
import type { BetaMessage } from './types.ts';

export type TurnParams = Omit<Anthropic.Beta.Messages.MessageCreateParamsNonStreaming, 'stream'>;

export interface TurnRequest {
  client: Anthropic;
  params: TurnParams;
  stream: boolean;
  signal: AbortSignal;
  /** How long the request may take to answer (the SDK's `timeout`); undefined: the client's own. */
  timeoutMs?: number | undefined;
  /** Streaming only: a tool_use block whose input JSON arrived complete. Must not throw. */
  onToolUse?: (block: ToolUse) => void;
}

export interface TurnResponse {
  message: BetaMessage;
  /** Epoch ms. */
  startedAt: number;
  /** Epoch ms of message_start (streaming only). */
  firstByteAt?: number;
  /** Epoch ms when the whole message was known (message_stop, or the JSON body). */
  endedAt: number;
  /** Ids of tool_use blocks whose input JSON ended unfinished (a cut by max_tokens). */
  incompleteToolUses: ReadonlySet<string>;
}

export async function requestTurn(request: TurnRequest): Promise<TurnResponse> {
  const startedAt = Date.now();
  if (!request.stream) {
    const message = await request.client.beta.messages.create(
      { ...request.params, stream: false },
      sdkOptions(request),
    );
    return { message, startedAt, endedAt: Date.now(), incompleteToolUses: new Set() };
  }
  return streamTurn(request, startedAt);
}

/**
 * The SDK's own timeout (10 min, retried twice) let a model that accepts the connection and never
 * answers hold a run for half an hour; toolq's bound applies to every attempt.
 */
function sdkOptions(request: TurnRequest): { signal: AbortSignal; timeout?: number } {
  return {
    signal: request.signal,
    ...(request.timeoutMs === undefined ? {} : { timeout: request.timeoutMs }),
  };
}

async function streamTurn(request: TurnRequest, startedAt: number): Promise<TurnResponse> {
  const stream = request.client.beta.messages.stream(request.params, sdkOptions(request));
  // The SDK parses tool input leniently (a cut `{"a":"b` becomes {a:"b"}); keeping the raw JSON
  // is the only way to know a block is complete before the stop reason arrives.
  const rawJson = new Map<number, string>();
  const incomplete = new Set<string>();
  let firstByteAt: number | undefined;
  let endedAt: number | undefined;
  stream.on('streamEvent', (event, snapshot) => {
    switch (event.type) {
      case 'message_start':
        firstByteAt = Date.now();
        break;
      case 'content_block_delta':
        if (event.delta.type === 'input_json_delta') {
          rawJson.set(event.index, (rawJson.get(event.index) ?? '') + event.delta.partial_json);
        }
        break;
      case 'content_block_stop': {
        const block = snapshot.content[event.index];
        if (block?.type !== 'tool_use') break;
        if (isCompleteJson(rawJson.get(event.index) ?? '')) {
          request.onToolUse?.({ id: block.id, name: block.name, input: block.input });
        } else {
          incomplete.add(block.id);
        }
        break;
      }
      case 'message_stop':
        endedAt = Date.now();
        break;
      default:
        break;
    }
  });
  const message = await stream.finalMessage();
  return {
    message,
    startedAt,
    ...(firstByteAt === undefined ? {} : { firstByteAt }),
    endedAt: endedAt ?? Date.now(),
    incompleteToolUses: incomplete,
  };
}

/** An argument-less call streams no JSON at all; anything else must parse to be complete. */
function isCompleteJson(raw: string): boolean {
  if (raw.trim() === '') return true;
  try {
    JSON.parse(raw);
    return true;
  } catch {
    return false;
  }
}
