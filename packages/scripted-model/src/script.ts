import type Anthropic from '@anthropic-ai/sdk';

/**
 * The vocabulary of a scripted model: what a script sees (ScriptContext) and what it answers
 * (ScriptedTurn). Blocks are described in a compact form; sse.ts turns them into the exact
 * JSON / SSE shapes of the Messages API.
 */

export type StopReason = Anthropic.Messages.StopReason;
export type MessageParam = Anthropic.Beta.BetaMessageParam;
export type ToolDefinition = Anthropic.Beta.BetaToolUnion;
export type IterationUsage = Anthropic.Beta.BetaIterationsUsage[number];
export type ServerToolName = Anthropic.Beta.BetaServerToolUseBlock['name'];

/** The request body after validation; fields the server does not interpret stay available. */
export interface MessagesRequestBody {
  model: string;
  max_tokens: number;
  messages: MessageParam[];
  tools?: ToolDefinition[];
  system?: string | Anthropic.Beta.BetaTextBlockParam[];
  stream?: boolean;
  stop_sequences?: string[];
  [key: string]: unknown;
}

/** One HTTP request as the server saw it, with what it answered (for test assertions). */
export interface ReceivedRequest {
  index: number;
  method: string;
  /** Path including any query string. */
  path: string;
  /** Lower-cased header names; repeated headers joined with `, `. */
  headers: Record<string, string>;
  /** Values of the `anthropic-beta` header. */
  betas: string[];
  /** The parsed JSON body, or the raw text when it was not JSON. */
  body: unknown;
  receivedAt: number;
  /** HTTP status sent; 0 while the answer is still being produced. */
  status: number;
  /** The message (JSON or the streamed message's final form) or the error body sent back. */
  response?: unknown;
}

/** A `tool_result` block the model received, joined with the `tool_use` it answers. */
export interface ReceivedToolResult {
  toolUseId: string;
  /** Name and input of the matching `tool_use` in the preceding assistant message. */
  name: string | undefined;
  input: unknown;
  /** Text of the result: the string content, or its text blocks joined, other blocks as `[type]`. */
  content: string;
  isError: boolean;
  block: Anthropic.Beta.BetaToolResultBlockParam;
}

export interface ScriptContext {
  /** 0-based count of requests this server has received (retries included). */
  requestIndex: number;
  /** Assistant messages already in the conversation: 0 for the first model turn. Stable across retries. */
  turn: number;
  request: ReceivedRequest;
  body: MessagesRequestBody;
  model: string;
  messages: MessageParam[];
  tools: ToolDefinition[];
  stream: boolean;
  maxTokens: number;
  headers: Record<string, string>;
  betas: string[];
  /** The `tool_result` blocks of the last user message, in the order sent. */
  toolResults: ReceivedToolResult[];
  /** The text of the last user message (string content or its text blocks joined). */
  lastUserText: string;
  /** Deterministic `toolu_…` ids from the server's counter. */
  nextToolUseId(): string;
}

interface Delayed {
  /** Milliseconds to wait before this block (streaming: before its content_block_start). */
  delayMs?: number;
}

export interface TextSpec extends Delayed {
  type: 'text';
  text: string;
}

export interface ToolUseSpec extends Delayed {
  type: 'tool_use';
  /** Default: the server's next `toolu_` id. */
  id?: string;
  name: string;
  input: Record<string, unknown>;
  /**
   * Cut the block as a `max_tokens` stop does: only this many characters of the input JSON are
   * streamed, and the JSON answer carries `input: {}`.
   */
  truncateInputAt?: number;
}

export interface ThinkingSpec extends Delayed {
  type: 'thinking';
  thinking: string;
  signature?: string;
}

export interface RedactedThinkingSpec extends Delayed {
  type: 'redacted_thinking';
  data: string;
}

export interface ServerToolUseSpec extends Delayed {
  type: 'server_tool_use';
  /** Default: the server's next `srvtoolu_` id. */
  id?: string;
  name: ServerToolName;
  input?: Record<string, unknown>;
}

/** Any other block (advisor_tool_result, web_search_tool_result, …): sent as given, no deltas. */
export interface PassthroughSpec extends Delayed {
  type: 'passthrough';
  block: { type: string; [key: string]: unknown };
}

export type ScriptedBlock =
  | TextSpec
  | ToolUseSpec
  | ThinkingSpec
  | RedactedThinkingSpec
  | ServerToolUseSpec
  | PassthroughSpec;

export interface ScriptedUsage {
  /** Defaults: executor (`message`) iterations summed when given, else an estimate from sizes. */
  input_tokens?: number;
  output_tokens?: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
  server_tool_use?: { web_search_requests?: number; web_fetch_requests?: number };
  /** Per-iteration usage: `message` entries for the executor, `advisor_message` for the advisor. */
  iterations?: IterationUsage[];
}

export interface ScriptedResponse {
  content: ScriptedBlock[];
  /** Default: `tool_use` when there is a tool_use block, else `end_turn`. */
  stopReason?: StopReason;
  /** For `stop_sequence`; default: the request's first stop sequence. */
  stopSequence?: string;
  /** For `refusal`; default `{ type: 'refusal', category: null, explanation: null }`. */
  stopDetails?: Anthropic.Messages.RefusalStopDetails;
  usage?: ScriptedUsage;
  /** Default: the requested model. */
  model?: string;
  /** Milliseconds before the response starts (time to first byte). */
  delayMs?: number;
  /** Streaming only: after this many blocks send an SSE `error` event and end the stream. */
  streamError?: { afterBlocks: number; type: string; message: string };
}

export interface ScriptedError {
  error: {
    status: number;
    /** API error type, e.g. `overloaded_error`, `rate_limit_error`, `invalid_request_error`. */
    type: string;
    message: string;
    /** E.g. `{ 'retry-after': '0', 'x-should-retry': 'false' }`. */
    headers?: Record<string, string>;
  };
  delayMs?: number;
}

export type ScriptedTurn = ScriptedResponse | ScriptedError;

export type Script = (ctx: ScriptContext) => ScriptedTurn | Promise<ScriptedTurn>;

export function isScriptedError(turn: ScriptedTurn): turn is ScriptedError {
  return 'error' in turn;
}

/** `toolu_0001`, `toolu_0002`, … : ids are deterministic so transcripts can be compared. */
export function toolUseIdGenerator(prefix = 'toolu_', start = 1): () => string {
  let next = start;
  return () => `${prefix}${String(next++).padStart(4, '0')}`;
}

// Small builders keep scripts readable: `[text('Let me check.'), toolUse('get_x', { a: 1 })]`.

export function text(value: string, delayMs?: number): TextSpec {
  return { type: 'text', text: value, ...(delayMs === undefined ? {} : { delayMs }) };
}

export function toolUse(
  name: string,
  input: Record<string, unknown>,
  options: { id?: string; delayMs?: number; truncateInputAt?: number } = {},
): ToolUseSpec {
  return { type: 'tool_use', name, input, ...options };
}

export function thinking(
  value: string,
  options: { signature?: string; delayMs?: number } = {},
): ThinkingSpec {
  return { type: 'thinking', thinking: value, ...options };
}

export function serverToolUse(
  name: ServerToolName,
  input: Record<string, unknown> = {},
  options: { id?: string; delayMs?: number } = {},
): ServerToolUseSpec {
  return { type: 'server_tool_use', name, input, ...options };
}

export function passthrough(
  block: { type: string; [key: string]: unknown },
  delayMs?: number,
): PassthroughSpec {
  return { type: 'passthrough', block, ...(delayMs === undefined ? {} : { delayMs }) };
}

/** The advisor's answer block, as the API inserts it after a `server_tool_use` named `advisor`. */
export function advisorResult(toolUseId: string, advice: string, delayMs?: number): PassthroughSpec {
  const block: Anthropic.Beta.BetaAdvisorToolResultBlock = {
    type: 'advisor_tool_result',
    tool_use_id: toolUseId,
    content: { type: 'advisor_result', text: advice, stop_reason: 'end_turn' },
  };
  return passthrough({ ...block }, delayMs);
}

export function executorIteration(
  inputTokens: number,
  outputTokens: number,
  model: string | null = null,
): IterationUsage {
  return {
    type: 'message',
    model,
    input_tokens: inputTokens,
    output_tokens: outputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    cache_creation: null,
  };
}

export function advisorIteration(model: string, inputTokens: number, outputTokens: number): IterationUsage {
  return {
    type: 'advisor_message',
    model,
    input_tokens: inputTokens,
    output_tokens: outputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    cache_creation: null,
  };
}

/** Answers the i-th request with the i-th entry; fails loudly when the script runs out. */
export function sequenceScript(turns: ReadonlyArray<ScriptedTurn | Script>): Script {
  return (ctx) => {
    const entry = turns[ctx.requestIndex];
    if (entry === undefined) {
      throw new Error(
        `sequenceScript has ${turns.length} turns; request ${ctx.requestIndex} is one too many`,
      );
    }
    return typeof entry === 'function' ? entry(ctx) : entry;
  };
}
