/**
 * Streaming early dispatch: each tool_use starts at its content_block_stop, while the model is
 * still writing, and the results still come back in block order. Also: the abort policy across the
 * per-block batches, cancellation, listener errors, token metrics.
 */
import type Anthropic from '@anthropic-ai/sdk';
import { type Script, text, toolTurnsScript, toolUse } from '@toolq/scripted-model';
import { ToolqError } from '@toolq/shared';
import { describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { type AgentEvent, type AgentOptions, runAgent } from '../src/agent/index.ts';
import { useAgentHarness } from './agent-harness.ts';

const harness = useAgentHarness();

async function run(script: Script, options: Partial<AgentOptions> = {}) {
  const { model, client } = await harness.model(script);
  const events: AgentEvent[] = [];
  const result = await runAgent({
    dispatcher: harness.dispatcher,
    client,
    model: 'claude-sonnet-4-6',
    prompt: 'Go.',
    logger: testLogger(),
    tools: harness.tools,
    onEvent: (e) => events.push(e),
    ...options,
  });
  return { result, model, events };
}

/**
 * A call the tests cancel: far longer than the test takes on a loaded machine, so finishing
 * sooner proves it was cut short, however slow the machine is.
 */
const SLEEP_MS = 20_000;

/** One tool call, then a final answer. */
const oneCall: Script = toolTurnsScript({
  turns: [{ calls: (ctx) => [{ name: 'diag_sleep', input: { ms: 50 }, id: `toolu_t${ctx.turn}` }] }],
  final: () => 'ok',
});

describe('early dispatch', () => {
  const script: Script = (ctx) =>
    ctx.turn === 0
      ? {
          content: [
            text('Starting the call now.'),
            toolUse('diag_sleep', { ms: 50 }, { id: 'toolu_early' }),
            // The model keeps writing for 1 s after the call is complete: 20 times the call's 50 ms,
            // so the call is over before the message on a loaded machine too.
            text('While that runs, let me explain what I am doing in some detail.', 1_000),
          ],
          stopReason: 'tool_use',
        }
      : { content: [text(ctx.toolResults[0]?.content ?? 'no result')] };

  it('starts the first tool before message_stop and records the head start', async () => {
    const { result, events } = await run(script, { stream: true });
    expect(result.text).toBe('{"slept_ms":50}');
    const first = result.iterations[0];
    const call = result.calls[0];
    const messageEnd = events.find((e) => e.type === 'model_response')?.atMs ?? Number.NaN;
    // The tool started on its worker before the model's message ended (recorded timestamps, ms
    // after the run started), and the head start says so.
    expect(call?.early).toBe(true);
    expect((call?.dispatchedAtMs ?? Number.NaN) + (call?.queueWaitMs ?? Number.NaN)).toBeLessThan(messageEnd);
    expect(first?.headStartMs).toBeGreaterThan(0);
    expect(result.stats.headStartMs).toBe(first?.headStartMs);
    // The call finished while the model was still streaming: the tools added nothing to the turn.
    expect((call?.dispatchedAtMs ?? Number.NaN) + (call?.latencyMs ?? Number.NaN)).toBeLessThanOrEqual(
      messageEnd,
    );
    expect(first?.toolWaitMs).toBe(0);
    const order = events.map((e) => e.type);
    expect(order.indexOf('tool_start')).toBeLessThan(order.indexOf('model_response'));
    expect(order.indexOf('tool_finish')).toBeLessThan(order.indexOf('model_response'));
    console.info(
      `early-dispatch head start: ${first?.headStartMs} ms (model message took ${first?.modelMs} ms)`,
    );
  });

  it('without streaming (or with early dispatch off) dispatches at the end of the message', async () => {
    for (const options of [{ stream: false }, { stream: true, earlyDispatch: false }]) {
      const { result } = await run(script, options);
      expect(result.iterations[0]?.headStartMs).toBe(0);
      expect(result.calls[0]?.early).toBe(false);
      // A lower bound: the 50 ms sleep can only take longer on a loaded machine.
      expect(result.iterations[0]?.toolWaitMs).toBeGreaterThanOrEqual(45);
    }
  });

  it('answers in block order when later blocks finish first', async () => {
    const turns = toolTurnsScript([
      {
        calls: [
          { name: 'diag_sleep', input: { ms: 250 } },
          { name: 'diag_sleep', input: { ms: 10 }, delayMs: 20 },
          { name: 'diag_echo', input: { value: 'third' }, delayMs: 20 },
        ],
      },
    ]);
    const { result, events } = await run(turns, { stream: true });
    const finished = events.flatMap((e) => (e.type === 'tool_finish' ? [e.call.toolUseId] : []));
    expect(finished[0]).not.toBe('toolu_0001');
    const user = result.messages[2]?.content as Anthropic.Beta.BetaToolResultBlockParam[];
    expect(user.map((b) => b.tool_use_id)).toEqual(['toolu_0001', 'toolu_0002', 'toolu_0003']);
    expect(user.map((b) => b.content)).toEqual(['{"slept_ms":250}', '{"slept_ms":10}', 'third']);
  });

  it('failure policy abort cancels the other calls of the turn, also ones dispatched later', async () => {
    const turns = toolTurnsScript([
      {
        calls: [
          { name: 'diag_sleep', input: { ms: SLEEP_MS } },
          { name: 'diag_fail', input: { message: 'quota exceeded' } },
          { name: 'diag_sleep', input: { ms: SLEEP_MS }, delayMs: 150 },
        ],
      },
    ]);
    const started = Date.now();
    const { result } = await run(turns, { stream: true, failurePolicy: 'abort' });
    expect(result.calls.map((c) => c.outcome)).toEqual(['cancelled', 'error', 'cancelled']);
    // Cut short, not waited for: answered (cancelled) before their sleeps could have ended.
    for (const c of result.calls) expect(c.latencyMs).toBeLessThan(SLEEP_MS);
    expect(Date.now() - started).toBeLessThan(SLEEP_MS);
    const user = result.messages[2]?.content as Anthropic.Beta.BetaToolResultBlockParam[];
    expect(user[0]?.content).toMatch(/cancelled.*diag_fail \(toolu_0002\) failed: Error: quota exceeded/);
    expect(user[2]?.content).toMatch(/cancelled.*quota exceeded/);
  });

  it('cancelling the run stops the model stream and the calls in flight', async () => {
    const controller = new AbortController();
    const turns = toolTurnsScript([
      {
        calls: [
          { name: 'diag_sleep', input: { ms: SLEEP_MS } },
          { name: 'diag_echo', input: { value: 1 }, delayMs: SLEEP_MS / 2 },
        ],
      },
    ]);
    const started = Date.now();
    const running = run(turns, {
      stream: true,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'tool_start') setTimeout(() => controller.abort('user pressed Ctrl-C'), 50);
      },
    });
    const error = await running.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ToolqError);
    expect((error as ToolqError).code).toBe('CANCELLED');
    // Neither the rest of the stream nor the call in flight was waited for.
    expect(Date.now() - started).toBeLessThan(SLEEP_MS / 2);
  });

  it('a listener that throws does not break the run', async () => {
    const { result } = await run(oneCall, {
      onEvent: () => {
        throw new Error('listener bug');
      },
    });
    expect(result.status).toBe('end_turn');
    expect(result.calls).toHaveLength(1);
  });
});

describe('errors and options', () => {
  it('a stream that fails mid-message is a MODEL_ERROR, and calls dispatched early are cancelled', async () => {
    const script: Script = () => ({
      content: [toolUse('diag_sleep', { ms: SLEEP_MS }), text('never arrives', 100)],
      streamError: { afterBlocks: 1, type: 'overloaded_error', message: 'Overloaded' },
    });
    const started = Date.now();
    const error = await run(script, { stream: true }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ToolqError);
    expect((error as ToolqError).code).toBe('MODEL_ERROR');
    expect((error as ToolqError).message).toMatch(/claude-sonnet-4-6.*Overloaded/);
    // The early call was cancelled, not waited for.
    expect(Date.now() - started).toBeLessThan(SLEEP_MS);
  });

  it('offers only the named catalog tools, and says which names no worker serves', async () => {
    const { model } = await run(() => ({ content: [text('ok')] }), { tools: ['diag_echo'] });
    const tools = (model.requests[0]?.body as { tools?: { name: string }[] } | undefined)?.tools ?? [];
    expect(tools.map((t) => t.name)).toEqual(['diag_echo']);
    const error = await run(() => ({ content: [text('ok')] }), { tools: ['diag_echo', 'nope'] }).catch(
      (err: unknown) => err,
    );
    expect((error as ToolqError).code).toBe('UNKNOWN_TOOL');
    expect((error as ToolqError).message).toMatch(/no worker has advertised "nope"/);
  });
});

describe('token usage', () => {
  it('reports executor usage by model and counts toolq_model_tokens_total', async () => {
    const before = await tokenMetric('claude-haiku-4-5');
    const { result } = await run(
      () => ({ content: [text('hi')], usage: { input_tokens: 120, output_tokens: 7 } }),
      { model: 'claude-haiku-4-5' },
    );
    expect(result.usage.executor).toMatchObject({ inputTokens: 120, outputTokens: 7 });
    expect(result.usage.byModel).toEqual([
      expect.objectContaining({ model: 'claude-haiku-4-5', role: 'executor', calls: 1, inputTokens: 120 }),
    ]);
    expect((await tokenMetric('claude-haiku-4-5')) - before).toBe(127);
  });
});

async function tokenMetric(model: string): Promise<number> {
  const metric = await harness.dispatcher.metrics.modelTokens.get();
  return metric.values
    .filter((v) => v.labels.model === model && v.labels.role === 'executor')
    .reduce((n, v) => n + v.value, 0);
}
