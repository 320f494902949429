/**
 * OpenAI's tool calls and the answers they expect, for callers whose model speaks OpenAI's APIs:
 * Chat Completions `tool_calls` (answered with `role: "tool"` messages) and the Responses API's
 * `function_call` items (answered with `function_call_output` items). Shapes are checked here
 * (zod, at the HTTP edge and in the Dispatcher alike); toolq's answers are mapped to them. OpenAI's
 * tool messages have no error flag, so an error says so in its text: it always starts `Error:`.
 */
import type { ToolContentBlock } from '@toolq/shared';
import { z } from 'zod';

const callId = z.string().min(1).max(256);
const functionName = z.string().min(1).max(256);
/** The model's JSON text; parsed per call (invalid JSON answers that call, not the request). */
const argumentsText = z.string().max(10_000_000);

/**
 * One entry of a Chat Completions message's `tool_calls`, as the API returns it. Fields the API
 * adds later are accepted and ignored. Custom tools (`type: "custom"`) are not functions toolq runs.
 */
export const chatToolCallSchema = z
  .object({
    id: callId,
    type: z
      .literal('function', {
        error: (issue) =>
          `only function tool calls can run here, not ${JSON.stringify(issue.input)} (a custom tool's free text is not a function call)`,
      })
      .optional(),
    function: z.object({ name: functionName, arguments: argumentsText }).loose(),
  })
  .loose();
/** A Chat Completions tool call (the SDK's `ChatCompletionMessageFunctionToolCall` is one). */
export interface ChatToolCall {
  id: string;
  type?: 'function';
  function: { name: string; arguments: string };
}

/** One `function_call` item of a Responses API output, as the API returns it. */
export const functionCallItemSchema = z
  .object({
    type: z.literal('function_call', {
      error: (issue) =>
        `only function_call items can run here, not ${JSON.stringify(issue.input)} (take the function_call items of response.output)`,
    }),
    call_id: callId,
    name: functionName,
    arguments: argumentsText,
    id: z.string().optional(),
    status: z.string().optional(),
  })
  .loose();
/** A Responses API function call (the SDK's `ResponseFunctionToolCall` is one). */
export interface FunctionCallItem {
  type: 'function_call';
  call_id: string;
  name: string;
  arguments: string;
  id?: string;
  status?: string;
}

/** The answer to one Chat Completions tool call: append them, in order, after the assistant message. */
export interface ChatToolMessage {
  role: 'tool';
  tool_call_id: string;
  content: string;
}

export type FunctionCallOutputContent =
  | { type: 'input_text'; text: string }
  | { type: 'input_image'; image_url: string };

/** The answer to one `function_call` item: send them, in order, in the next request's `input`. */
export interface FunctionCallOutputItem {
  type: 'function_call_output';
  call_id: string;
  /** Text, or text and images when the tool answered with images. */
  output: string | FunctionCallOutputContent[];
}

/** A call as both formats carry it, before its arguments are parsed. */
export interface OpenAICall {
  id: string;
  name: string;
  arguments: string;
}

/** One call's answer, before it is put in either format. */
export interface CallAnswer {
  id: string;
  content: string | ToolContentBlock[];
  isError: boolean;
}

/** The arguments as the tool's input, or why they are not JSON (the model reads it as an error). */
export function parseArguments(call: OpenAICall): { input: unknown } | { error: string } {
  // Some models send "" for a function without parameters: that is no arguments, not bad JSON.
  if (call.arguments.trim() === '') return { input: {} };
  try {
    return { input: JSON.parse(call.arguments) as unknown };
  } catch (err) {
    return {
      error:
        `Error: the arguments of this call are not valid JSON (${(err as Error).message}), so ${call.name} ` +
        'did not run. Call it again with its arguments as one JSON object.',
    };
  }
}

/** An image as text, where only text can go. */
function describeImage(block: Extract<ToolContentBlock, { type: 'image' }>): string {
  const source = block.source as { type?: string; media_type?: string; url?: string };
  const what = source.type === 'url' ? `at ${source.url}` : (source.media_type ?? 'image');
  return `[the tool returned an image (${what}) that this message cannot carry]`;
}

/** The answer's text; an error's text always starts `Error:`, since OpenAI's messages have no error flag. */
function textOf(answer: CallAnswer): string {
  const text =
    typeof answer.content === 'string'
      ? answer.content
      : answer.content.map((b) => (b.type === 'text' ? b.text : describeImage(b))).join('\n');
  if (!answer.isError || /^error\b/i.test(text)) return text;
  return `Error: ${text}`;
}

export function toChatToolMessage(answer: CallAnswer): ChatToolMessage {
  return { role: 'tool', tool_call_id: answer.id, content: textOf(answer) };
}

export function toFunctionCallOutput(answer: CallAnswer): FunctionCallOutputItem {
  const images = typeof answer.content !== 'string' && answer.content.some((b) => b.type === 'image');
  if (!images || typeof answer.content === 'string' || answer.isError) {
    return { type: 'function_call_output', call_id: answer.id, output: textOf(answer) };
  }
  const output = answer.content.map((b): FunctionCallOutputContent => {
    if (b.type === 'text') return { type: 'input_text', text: b.text };
    const source = b.source as { type?: string; media_type?: string; data?: string; url?: string };
    if (source.type === 'base64') {
      return { type: 'input_image', image_url: `data:${source.media_type};base64,${source.data}` };
    }
    if (source.type === 'url' && source.url) return { type: 'input_image', image_url: source.url };
    // An Anthropic file id means nothing to OpenAI.
    return { type: 'input_text', text: describeImage(b) };
  });
  return { type: 'function_call_output', call_id: answer.id, output };
}
