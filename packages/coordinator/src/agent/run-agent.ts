/**
 * The agent loop: model turn → tool calls on toolq workers → one user message with every result in
 * order → next model turn, until the model ends its turn or the iterations run out. Assistant
 * content goes back to the API unchanged (thinking, server tool and advisor blocks included).
 */
import type Anthropic from '@anthropic-ai/sdk';
import { ToolqError } from '@toolq/shared';
import { inSpan } from '@toolq/shared/internal';
import { ADVISOR_BETA, modelError, serverToolCalls } from './advisor.ts';
import { requestTurn, type TurnParams, type TurnResponse } from './model-turn.ts';
import { MAX_ITERATIONS_TEXT, type ResolvedOptions, resolveOptions } from './options.ts';
import { runStats } from './run-stats.ts';
import { type Decision, decide, textOf } from './stop-reasons.ts';
import { TurnDispatch, type TurnToolResults } from './streaming-dispatch.ts';
import { buildToolsParam } from './tools-param.ts';
import type {
  AgentCheckpoint,
  AgentOptions,
  AgentResult,
  AgentStatus,
  BetaMessage,
  BetaMessageParam,
  BetaToolUnion,
  IterationAction,
  IterationStats,
  PendingTurn,
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
  const persistence = options.persistence;
  // A resumed run carries on from its last saved step: nothing saved is asked or run again.
  const saved = persistence?.checkpoint ? structuredClone(persistence.checkpoint) : undefined;
  const startedAt = saved?.startedAt ?? Date.now();
  const { tools, offered } = await buildToolsParam(options.dispatcher, o);
  const usage = new UsageTracker(options.dispatcher.metrics, saved?.usage);
  const messages = saved?.messages ?? o.messages;
  const iterations: IterationStats[] = saved?.iterations ?? [];
  const calls: ToolCallRecord[] = saved?.calls ?? [];
  const signal = o.signal ?? new AbortController().signal;
  let maxTokens = saved?.maxTokens ?? o.maxTokens;
  let finalMessage: BetaMessage | undefined = saved?.pending?.message ?? saved?.finalMessage;
  let resumed = saved?.pending;
  const checkpoint = (iteration: number, pending?: PendingTurn): AgentCheckpoint => ({
    startedAt,
    iteration,
    messages,
    iterations,
    calls,
    usage: usage.report(),
    maxTokens,
    ...(finalMessage ? { finalMessage } : {}),
    ...(pending ? { pending } : {}),
  });

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

  for (let iteration = (saved?.iteration ?? 0) + 1; iteration <= o.maxIterations; iteration++) {
    throwIfCancelled(signal);
    const turn = new TurnDispatch({
      dispatcher: options.dispatcher,
      iteration,
      runStartedAt: startedAt,
      dispatch: o.dispatch,
      signal,
      emit: o.emit,
      offered,
      ...(persistence
        ? { batchName: (n: number, ids: readonly string[]) => persistence.batchId(iteration, n, ids) }
        : {}),
      ...(persistence?.beforeDispatch
        ? { beforeDispatch: persistence.beforeDispatch.bind(persistence) }
        : {}),
      ...(persistence?.app === undefined ? {} : { app: persistence.app }),
    });
    let response: TurnResponse;
    let turnUsage: IterationStats['usage'];
    let decision: Decision;
    if (resumed) {
      // The response was saved: its calls are collected (or sent, if they never were), not asked for again.
      response = { ...resumed, incompleteToolUses: new Set() };
      turnUsage = resumed.usage;
      decision = { kind: 'tools', toolUses: resumed.toolUses };
      turn.resume(resumed.toolUses, resumed.refs);
      resumed = undefined;
    } else {
      const request = {
        type: 'model_request' as const,
        iteration,
        atMs: Date.now() - startedAt,
        model: o.model,
        stream: o.stream,
        maxTokens,
      };
      o.emit(request);
      await persistence?.beforeModelRequest(request);
      response = await inSpan(
        'toolq.model.turn',
        { 'gen_ai.system': 'anthropic', 'gen_ai.request.model': o.model, 'toolq.agent.iteration': iteration },
        () => modelTurn(o, turn, { params: params(o, tools, messages, maxTokens), signal }),
        (r) => ({
          'gen_ai.response.finish_reasons': [r.message.stop_reason ?? 'none'],
          'gen_ai.usage.input_tokens': r.message.usage.input_tokens,
          'gen_ai.usage.output_tokens': r.message.usage.output_tokens,
        }),
      );
      finalMessage = response.message;
      turnUsage = usage.add(response.message);
      for (const call of serverToolCalls(response.message)) {
        o.emit({ type: 'server_tool', iteration, atMs: response.endedAt - startedAt, ...call });
      }
      decision = decide(response.message, response.incompleteToolUses, {
        maxTokens,
        maxTokensCeiling: o.maxTokensCeiling,
      });
      o.emit({
        type: 'model_response',
        iteration,
        atMs: response.endedAt - startedAt,
        stopReason: response.message.stop_reason,
        modelMs: response.endedAt - response.startedAt,
        ...(response.firstByteAt === undefined
          ? {}
          : { firstByteMs: response.firstByteAt - response.startedAt }),
        toolUses: decision.kind === 'tools' ? decision.toolUses.length : 0,
        usage: turnUsage,
      });
      if (persistence && decision.kind === 'tools') {
        // Saved before the rest of the calls go out: a successor then knows every batch to collect.
        const refs = turn.plan(decision.toolUses);
        await persistence.save(
          checkpoint(iteration - 1, {
            iteration,
            message: response.message,
            startedAt: response.startedAt,
            ...(response.firstByteAt === undefined ? {} : { firstByteAt: response.firstByteAt }),
            endedAt: response.endedAt,
            usage: turnUsage,
            toolUses: decision.toolUses,
            refs,
          }),
        );
      }
    }
    const message = response.message;

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
        await persistence?.save(checkpoint(iteration));
        continue;
      }
      case 'continue':
        await dropTurn(turn, 'the model paused its turn without calling these tools');
        messages.push(assistant(message));
        iterations.push(stats('continue'));
        await persistence?.save(checkpoint(iteration));
        continue;
      case 'retry':
        await dropTurn(turn, `the response was cut at max_tokens ${maxTokens}; asking again`);
        iterations.push(stats('retry_max_tokens'));
        maxTokens = decision.maxTokens;
        o.emit({ type: 'max_tokens_retry', iteration, atMs: Date.now() - startedAt, maxTokens });
        await persistence?.save(checkpoint(iteration));
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
      timeoutMs: o.modelTimeoutMs,
      ...(early ? { onToolUse: (use) => turn.add(use, true) } : {}),
    });
  } catch (err) {
    await dropTurn(turn, 'the model request failed');
    if (request.signal.aborted) throwIfCancelled(request.signal);
    throw modelError(err, {
      model: o.model,
      ...(o.advisor ? { advisorModel: o.advisor.model } : {}),
      ...(o.baseURL ? { baseURL: o.baseURL } : {}),
      ...(o.modelTimeoutMs === undefined ? {} : { timeoutMs: o.modelTimeoutMs }),
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
