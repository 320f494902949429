/**
 * The agent loop: model turn → tool calls on toolq workers → one user message with every result in
 * order → next model turn, until the model ends its turn or the iterations run out. Assistant
 * content goes back to the API unchanged (thinking, server tool and advisor blocks included).
 */
import type Anthropic from '@anthropic-ai/sdk';
import { inSpan, ToolqError } from '@toolq/shared';
import { ADVISOR_BETA, modelError, serverToolCalls } from './advisor.ts';
import { requestTurn, type TurnParams, type TurnResponse } from './model-turn.ts';
import { MAX_ITERATIONS_TEXT, type ResolvedOptions, resolveOptions } from './options.ts';
import { runStats } from './performance.ts';
import { decide, textOf } from './stop-reasons.ts';
import { TurnDispatch, type TurnToolResults } from './streaming-dispatch.ts';
import { buildToolsParam } from './tools-param.ts';
import type {
  AgentOptions,
  AgentResult,
  AgentStatus,
  BetaMessage,
  BetaMessageParam,
  BetaToolUnion,
  IterationAction,
  IterationStats,
  ToolCallRecord,
} from './types.ts';
import { UsageTracker } from './usage.ts';

/** Runs the loop; with tracing on, inside a `toolq.agent.run` span (model turns and batches are its children). */
export function runAgent(options: AgentOptions): Promise<AgentResult> {
  return inSpan(
    'toolq.agent.run',
    {},
    () => runAgentLoop(options),
    (r) => ({
      'gen_ai.request.model': r.model,
      'toolq.agent.status': r.status,
      'toolq.agent.iterations': r.iterations.length,
      'toolq.agent.tool_calls': r.calls.length,
    }),
  );
}

async function runAgentLoop(options: AgentOptions): Promise<AgentResult> {
  const o = resolveOptions(options);
  const startedAt = Date.now();
  const tools = await buildToolsParam(options.dispatcher, o);
  const usage = new UsageTracker(options.dispatcher.metrics);
  const messages = o.messages;
  const iterations: IterationStats[] = [];
  const calls: ToolCallRecord[] = [];
  const signal = o.signal ?? new AbortController().signal;
  let maxTokens = o.maxTokens;
  let finalMessage: BetaMessage | undefined;

  const result = (status: AgentStatus, text: string): AgentResult => ({
    status,
    text,
    ...(finalMessage?.stop_sequence ? { stopSequence: finalMessage.stop_sequence } : {}),
    ...(status === 'refusal' && finalMessage?.stop_details ? { stopDetails: finalMessage.stop_details } : {}),
    messages,
    finalMessage,
    iterations,
    calls,
    usage: usage.report(),
    stats: runStats({ wallMs: Date.now() - startedAt, iterations, calls }),
    model: o.model,
    ...(o.advisor ? { advisorModel: o.advisor.model } : {}),
  });

  for (let iteration = 1; iteration <= o.maxIterations; iteration++) {
    throwIfCancelled(signal);
    const turn = new TurnDispatch({
      dispatcher: options.dispatcher,
      iteration,
      runStartedAt: startedAt,
      dispatch: o.dispatch,
      signal,
      emit: o.emit,
    });
    o.emit({
      type: 'model_request',
      iteration,
      atMs: Date.now() - startedAt,
      model: o.model,
      stream: o.stream,
      maxTokens,
    });
    const response = await inSpan(
      'toolq.model.turn',
      { 'gen_ai.system': 'anthropic', 'gen_ai.request.model': o.model, 'toolq.agent.iteration': iteration },
      () => modelTurn(o, turn, { params: params(o, tools, messages, maxTokens), signal }),
      (r) => ({
        'gen_ai.response.finish_reasons': [r.message.stop_reason ?? 'none'],
        'gen_ai.usage.input_tokens': r.message.usage.input_tokens,
        'gen_ai.usage.output_tokens': r.message.usage.output_tokens,
      }),
    );
    const message = response.message;
    finalMessage = message;
    const turnUsage = usage.add(message);
    for (const call of serverToolCalls(message)) {
      o.emit({ type: 'server_tool', iteration, atMs: response.endedAt - startedAt, ...call });
    }
    const decision = decide(message, response.incompleteToolUses, {
      maxTokens,
      maxTokensCeiling: o.maxTokensCeiling,
    });
    o.emit({
      type: 'model_response',
      iteration,
      atMs: response.endedAt - startedAt,
      stopReason: message.stop_reason,
      modelMs: response.endedAt - response.startedAt,
      ...(response.firstByteAt === undefined
        ? {}
        : { firstByteMs: response.firstByteAt - response.startedAt }),
      toolUses: decision.kind === 'tools' ? decision.toolUses.length : 0,
      usage: turnUsage,
    });

    let settled: TurnToolResults | undefined;
    const stats = (action: IterationAction) =>
      iterationStats({ iteration, action, maxTokens, startedAt, response, settled, usage: turnUsage });
    switch (decision.kind) {
      case 'tools': {
        // Calls not yet dispatched early (JSON mode, or early dispatch off) go out as one batch.
        turn.addBatch(decision.toolUses.filter((u) => !turn.has(u.id)));
        settled = await turn.settle(decision.toolUses);
        throwIfCancelled(signal);
        calls.push(...settled.calls);
        messages.push(assistant(message));
        // The worker validated result content against the API's text/image block shapes.
        const content = settled.toolResults as Anthropic.Beta.BetaToolResultBlockParam[];
        messages.push({ role: 'user', content });
        iterations.push(stats('tools'));
        continue;
      }
      case 'continue':
        await dropTurn(turn, 'the model paused its turn without calling these tools');
        messages.push(assistant(message));
        iterations.push(stats('continue'));
        continue;
      case 'retry':
        await dropTurn(turn, `the response was cut at max_tokens ${maxTokens}; asking again`);
        iterations.push(stats('retry_max_tokens'));
        maxTokens = decision.maxTokens;
        o.emit({ type: 'max_tokens_retry', iteration, atMs: Date.now() - startedAt, maxTokens });
        continue;
      case 'final':
        await dropTurn(turn, `the model ended its turn (${message.stop_reason})`);
        if (decision.keepMessage) messages.push(assistant(message));
        iterations.push(stats('final'));
        return result(decision.status, textOf(message));
    }
  }
  return result('max_iterations', MAX_ITERATIONS_TEXT);
}

async function modelTurn(
  o: ResolvedOptions,
  turn: TurnDispatch,
  request: { params: TurnParams; signal: AbortSignal },
): Promise<TurnResponse> {
  const early = o.stream && o.earlyDispatch;
  try {
    return await requestTurn({
      client: o.client,
      params: request.params,
      stream: o.stream,
      signal: request.signal,
      ...(early ? { onToolUse: (use) => turn.add(use, true) } : {}),
    });
  } catch (err) {
    await dropTurn(turn, 'the model request failed');
    if (request.signal.aborted) throwIfCancelled(request.signal);
    throw modelError(err, {
      model: o.model,
      ...(o.advisor ? { advisorModel: o.advisor.model } : {}),
      ...(o.baseURL ? { baseURL: o.baseURL } : {}),
    });
  }
}

function params(
  o: ResolvedOptions,
  tools: BetaToolUnion[],
  messages: BetaMessageParam[],
  maxTokens: number,
): TurnParams {
  return {
    model: o.model,
    max_tokens: maxTokens,
    // A copy: the SDK's stream helper keeps the array it is given.
    messages: [...messages],
    ...(o.system === undefined ? {} : { system: o.system }),
    ...(tools.length === 0 ? {} : { tools }),
    ...(o.stopSequences ? { stop_sequences: o.stopSequences } : {}),
    ...(o.advisor ? { betas: [ADVISOR_BETA] } : {}),
  };
}

/** The response's content exactly as received: signatures and opaque advisor results must round-trip. */
function assistant(message: BetaMessage): BetaMessageParam {
  return { role: 'assistant', content: message.content as Anthropic.Beta.BetaContentBlockParam[] };
}

/** Cancels calls dispatched early for a response that will not be answered, and waits for them. */
async function dropTurn(turn: TurnDispatch, reason: string): Promise<void> {
  if (turn.size === 0) return;
  turn.cancelAll(reason);
  await turn.drain();
}

function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) {
    throw new ToolqError('CANCELLED', `the agent run was cancelled: ${String(signal.reason ?? 'aborted')}`);
  }
}

function iterationStats(input: {
  iteration: number;
  action: IterationAction;
  maxTokens: number;
  startedAt: number;
  response: TurnResponse;
  settled: TurnToolResults | undefined;
  usage: IterationStats['usage'];
}): IterationStats {
  const { response, settled } = input;
  const first = settled?.firstDispatchAt;
  const last = settled?.lastAnswerAt;
  return {
    iteration: input.iteration,
    stopReason: response.message.stop_reason,
    action: input.action,
    maxTokens: input.maxTokens,
    modelStartMs: response.startedAt - input.startedAt,
    ...(response.firstByteAt === undefined ? {} : { firstByteMs: response.firstByteAt - response.startedAt }),
    modelMs: response.endedAt - response.startedAt,
    toolCalls: settled?.calls.length ?? 0,
    toolWallMs: first !== undefined && last !== undefined ? last - first : 0,
    toolWaitMs: last !== undefined ? Math.max(0, last - response.endedAt) : 0,
    headStartMs: first !== undefined ? Math.max(0, response.endedAt - first) : 0,
    serverToolUses: serverToolCalls(response.message).length,
    usage: input.usage,
  };
}
