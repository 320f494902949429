/**
 * Batches of OpenAI tool calls on the fleet: the calls whose arguments are JSON run as one
 * dispatch() (same barrier, deadlines, failure policy and context as tool_use blocks), those whose
 * arguments are not are answered at once with an error the model can read, and every call gets
 * its answer in the order sent. Dispatcher.dispatchOpenAI / dispatchResponses and the HTTP route
 * both run through here.
 */
import { randomUUID } from 'node:crypto';
import { ToolqError } from '@toolq/shared';
import { describeZodIssues } from '@toolq/shared/internal';
import { z } from 'zod';
import type { BatchResult, CallStats } from '../batch-result.ts';
import {
  batchNameOf,
  checkDispatchOptions,
  type DispatchOptions,
  type ToolUse,
} from '../dispatch/options.ts';
import {
  type CallAnswer,
  type ChatToolCall,
  type ChatToolMessage,
  chatToolCallSchema,
  type FunctionCallItem,
  type FunctionCallOutputItem,
  functionCallItemSchema,
  type OpenAICall,
  parseArguments,
  toChatToolMessage,
  toFunctionCallOutput,
} from './format.ts';

export type {
  ChatToolCall,
  ChatToolMessage,
  FunctionCallItem,
  FunctionCallOutputContent,
  FunctionCallOutputItem,
} from './format.ts';

/** At most this many calls per batch, as for tool_use blocks. */
export const MAX_OPENAI_CALLS_PER_BATCH = 1_000;

/** A batch's timing and what happened to each call: a BatchResult without its tool_result blocks. */
export type OpenAIBatchStats = Omit<BatchResult, 'toolResults' | 'batchId'>;

/** What dispatchOpenAI answers: one tool message per tool call, in order, and the batch's stats. */
export interface ChatToolBatch extends OpenAIBatchStats {
  toolMessages: ChatToolMessage[];
}

/** What dispatchResponses answers: one function_call_output item per function_call, in order. */
export interface ResponsesToolBatch extends OpenAIBatchStats {
  outputs: FunctionCallOutputItem[];
}

/**
 * Another tool call of a Chat Completions message (`type: "custom"`), so that the SDK's
 * `message.tool_calls` is taken as it is; toolq refuses it (its free text is no function's input).
 */
export interface OtherToolCall {
  id: string;
  type: string;
}

/** Any other item of a Responses output (a message, reasoning, …): left out, as dispatch() leaves text out. */
export interface OtherOutputItem {
  type: string;
}

export type ChatCall = ChatToolCall | OtherToolCall;
export type OutputItem = FunctionCallItem | OtherOutputItem;

/** What this needs of the Dispatcher. */
export interface ToolUseDispatcher {
  dispatch(blocks: readonly ToolUse[], options?: DispatchOptions): Promise<BatchResult>;
}

/** The calls, checked like a request body: a ToolqError (INVALID_INPUT) naming the path of what is wrong. */
function checkCalls<T>(schema: z.ZodType<T>, calls: unknown, field: string): T[] {
  const parsed = z
    .object({ [field]: z.array(schema).max(MAX_OPENAI_CALLS_PER_BATCH) })
    .safeParse({ [field]: calls });
  if (!parsed.success) throw new ToolqError('INVALID_INPUT', describeZodIssues(parsed.error));
  return (parsed.data as Record<string, T[]>)[field] ?? [];
}

function checkOptions(options: DispatchOptions, where: string): void {
  checkDispatchOptions(options);
  if (batchNameOf(options) !== undefined) {
    throw new ToolqError(
      'INVALID_INPUT',
      `${where}: batchName is not supported here (collect() answers tool_result blocks): name batches of tool_use blocks with dispatch()`,
    );
  }
}

function checkIds(calls: readonly OpenAICall[], field: string, idName: string): void {
  const seen = new Set<string>();
  for (const [i, call] of calls.entries()) {
    if (seen.has(call.id)) {
      throw new ToolqError('INVALID_INPUT', `${field}.${i}.${idName}: duplicate id ${call.id}`);
    }
    seen.add(call.id);
  }
}

/** Runs the calls; their answers come back in the order given. */
async function run(
  dispatcher: ToolUseDispatcher,
  calls: readonly OpenAICall[],
  options: DispatchOptions,
): Promise<{ answers: CallAnswer[]; stats: OpenAIBatchStats }> {
  const parsed = calls.map(parseArguments);
  const runnable: ToolUse[] = [];
  calls.forEach((call, i) => {
    const p = parsed[i];
    if (p && 'input' in p) runnable.push({ type: 'tool_use', id: call.id, name: call.name, input: p.input });
  });
  const batch = runnable.length > 0 ? await dispatcher.dispatch(runnable, options) : undefined;
  const answers: CallAnswer[] = [];
  const stats: CallStats[] = [];
  let next = 0;
  calls.forEach((call, i) => {
    const p = parsed[i];
    if (p && 'error' in p) {
      answers.push({ id: call.id, content: p.error, isError: true });
      stats.push({
        toolUseId: call.id,
        tool: call.name,
        outcome: 'invalid_input',
        attempts: 0,
        latencyMs: 0,
      });
      return;
    }
    const result = batch?.toolResults[next];
    const callStats = batch?.calls[next];
    next++;
    answers.push({ id: call.id, content: result?.content ?? '', isError: result?.is_error === true });
    if (callStats) stats.push(callStats);
  });
  return {
    answers,
    stats: {
      batchName: batch?.batchName ?? randomUUID(),
      calls: stats,
      wallMs: batch?.wallMs ?? 0,
      slowestRunMs: batch?.slowestRunMs ?? 0,
      overheadMs: batch?.overheadMs ?? 0,
    },
  };
}

/** The `tool_calls` of a Chat Completions assistant message, answered with `role: "tool"` messages. */
export async function dispatchChatToolCalls(
  dispatcher: ToolUseDispatcher,
  toolCalls: readonly ChatCall[],
  options: DispatchOptions = {},
  field = 'toolCalls',
): Promise<ChatToolBatch> {
  const checked = checkCalls(chatToolCallSchema, toolCalls, field);
  checkOptions(options, 'dispatchOpenAI() options');
  const calls = checked.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments }));
  checkIds(calls, field, 'id');
  const { answers, stats } = await run(dispatcher, calls, options);
  return { ...stats, toolMessages: answers.map(toChatToolMessage) };
}

/** The `function_call` items of a Responses API output, answered with `function_call_output` items. */
export async function dispatchFunctionCalls(
  dispatcher: ToolUseDispatcher,
  items: readonly OutputItem[],
  options: DispatchOptions = {},
  field = 'items',
): Promise<ResponsesToolBatch> {
  // A whole `response.output` will do: only its function_call items are calls.
  const calls = Array.isArray(items)
    ? items.filter((item) => typeof item?.type !== 'string' || item.type === 'function_call')
    : items;
  const checked = checkCalls(functionCallItemSchema, calls, field);
  checkOptions(options, 'dispatchResponses() options');
  const openAICalls = checked.map((c) => ({ id: c.call_id, name: c.name, arguments: c.arguments }));
  checkIds(openAICalls, field, 'call_id');
  const { answers, stats } = await run(dispatcher, openAICalls, options);
  return { ...stats, outputs: answers.map(toFunctionCallOutput) };
}
