/**
 * runAgent against the scripted Messages API (the real SDK over HTTP), real Redis and a real
 * worker: every stop reason, JSON and streaming. The scripted server checks tool_use/tool_result
 * pairing like the real API, so a run that gets the order or the single user message wrong fails
 * with a 400 here.
 */
import type Anthropic from '@anthropic-ai/sdk';
import {
  passthrough,
  type Script,
  type ScriptedModel,
  sequenceScript,
  serverToolUse,
  text,
  toolTurnsScript,
  toolUse,
} from '@toolq/scripted-model';
import { describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { type AgentOptions, MAX_ITERATIONS_TEXT, runAgent } from '../src/agent/index.ts';
import { useAgentHarness } from './agent-harness.ts';

const harness = useAgentHarness();

async function run(script: Script, options: Partial<AgentOptions> = {}) {
  const { model, client } = await harness.model(script);
  const result = await runAgent({
    dispatcher: harness.dispatcher,
    client,
    model: 'claude-sonnet-4-6',
    prompt: 'Do the thing.',
    logger: testLogger(),
    tools: harness.tools,
    ...options,
  });
  return { result, model };
}

/** The content of the message the scripted server answered request i with. */
function responseContent(model: ScriptedModel, i: number): unknown {
  return (model.requests[i]?.response as { content?: unknown } | undefined)?.content;
}

/** The JSON body the scripted server received for request i. */
function body(
  model: ScriptedModel,
  i: number,
): { messages: Anthropic.Beta.BetaMessageParam[]; [k: string]: unknown } {
  return model.requests[i]?.body as { messages: Anthropic.Beta.BetaMessageParam[] };
}

for (const stream of [false, true]) {
  describe(`stop reasons (${stream ? 'streaming' : 'JSON'})`, () => {
    it('end_turn: returns the text and keeps the assistant message', async () => {
      const { result } = await run(() => ({ content: [text('Hello'), text('there.')] }), { stream });
      expect(result.status).toBe('end_turn');
      expect(result.text).toBe('Hello\nthere.');
      expect(result.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
      expect(result.iterations).toHaveLength(1);
      expect(result.iterations[0]).toMatchObject({ stopReason: 'end_turn', action: 'final', toolCalls: 0 });
    });

    it('stop_sequence: returns the text and the sequence that matched', async () => {
      const { result, model } = await run(
        () => ({ content: [text('Counting: 1, 2, 3')], stopReason: 'stop_sequence' }),
        { stream, stopSequences: ['STOP'] },
      );
      expect(result).toMatchObject({
        status: 'stop_sequence',
        stopSequence: 'STOP',
        text: 'Counting: 1, 2, 3',
      });
      expect(body(model, 0).stop_sequences).toEqual(['STOP']);
    });

    it('tool_use: results in block order, in one user message, errors and timeouts as is_error', async () => {
      const script = toolTurnsScript([
        {
          thinking: 'Four calls, independent of each other.',
          text: 'Running four calls.',
          calls: [
            { name: 'diag_sleep', input: { ms: 150 } },
            { name: 'diag_echo', input: { value: 'fast' } },
            { name: 'diag_fail', input: { message: 'disk full' } },
            { name: 'diag_sleep', input: { ms: 5_000 } },
          ],
        },
      ]);
      const { result, model } = await run(script, { stream, timeoutMs: 400 });
      expect(result.status).toBe('end_turn');
      expect(model.requests.map((r) => r.status)).toEqual([200, 200]);
      const [user, assistant, results] = result.messages;
      expect(user?.role).toBe('user');
      // The assistant content goes back exactly as received, thinking block and signature included.
      expect(assistant).toEqual({
        role: 'assistant',
        content: responseContent(model, 0),
      });
      expect(results?.role).toBe('user');
      const blocks = results?.content as Anthropic.Beta.BetaToolResultBlockParam[];
      expect(blocks.map((b) => b.tool_use_id)).toEqual([
        'toolu_0001',
        'toolu_0002',
        'toolu_0003',
        'toolu_0004',
      ]);
      expect(blocks.map((b) => b.content)).toEqual([
        '{"slept_ms":150}',
        'fast',
        'Error: disk full',
        'Tool diag_sleep timed out after 0.4s',
      ]);
      expect(blocks.map((b) => b.is_error ?? false)).toEqual([false, false, true, true]);
      // What the model was sent is what it answered from.
      expect(result.text).toContain('I received 4 tool results (2 errors).');
      expect(result.text).toContain('ERROR: Tool diag_sleep timed out after 0.4s');
      expect(result.calls.map((c) => c.outcome)).toEqual(['ok', 'ok', 'error', 'timeout']);
      expect(result.calls[0]?.worker).toBe(harness.worker.id);
      expect(result.iterations.map((it) => it.action)).toEqual(['tools', 'final']);
    });

    it('tool_use: an unknown tool reaches the model as is_error at once', async () => {
      const script = toolTurnsScript([{ calls: [{ name: 'no_such_tool', input: {} }] }]);
      const { result } = await run(script, { stream });
      expect(result.text).toContain('ERROR: Unknown tool: no_such_tool');
      expect(result.calls[0]?.outcome).toBe('unknown_tool');
    });

    it('max_tokens: returns the text cut short', async () => {
      const { result } = await run(() => ({ content: [text('The answer is')], stopReason: 'max_tokens' }), {
        stream,
      });
      expect(result).toMatchObject({ status: 'max_tokens', text: 'The answer is' });
      expect(result.messages).toHaveLength(2);
    });

    it('max_tokens inside a tool_use: asks again with max_tokens doubled, never sends the cut call', async () => {
      const script: Script = (ctx) =>
        ctx.turn > 0
          ? { content: [text(`done: ${ctx.toolResults.map((r) => r.content).join(', ')}`)] }
          : {
              content: [
                text('Two calls.'),
                toolUse('diag_echo', { value: 'first' }),
                toolUse(
                  'diag_echo',
                  { value: 'a long value' },
                  ctx.maxTokens < 2048 ? { truncateInputAt: 10 } : {},
                ),
              ],
              stopReason: ctx.maxTokens < 2048 ? 'max_tokens' : 'tool_use',
            };
      const events: string[] = [];
      const { result, model } = await run(script, {
        stream,
        maxTokens: 1024,
        onEvent: (e) => events.push(e.type),
      });
      expect(model.requests.map((r) => (r.body as { max_tokens: number }).max_tokens)).toEqual([
        1024, 2048, 2048,
      ]);
      expect(events).toContain('max_tokens_retry');
      expect(result.status).toBe('end_turn');
      expect(result.text).toBe('done: first, a long value');
      expect(result.iterations.map((it) => it.action)).toEqual(['retry_max_tokens', 'tools', 'final']);
      // The cut response is not part of the conversation; the retried one is.
      expect(result.messages).toHaveLength(4);
      expect(result.calls.map((c) => c.iteration)).toEqual([2, 2]);
    });

    it('max_tokens inside a tool_use at the ceiling: stops with max_tokens', async () => {
      const script: Script = () => ({
        content: [toolUse('diag_echo', { value: 'never complete' }, { truncateInputAt: 5 })],
        stopReason: 'max_tokens',
      });
      const { result, model } = await run(script, { stream, maxTokens: 1000, maxTokensCeiling: 2000 });
      expect(model.requests).toHaveLength(2);
      expect(result.status).toBe('max_tokens');
      expect(result.messages).toEqual([{ role: 'user', content: 'Do the thing.' }]);
      expect(result.calls).toEqual([]);
    });

    it('pause_turn: sends the paused turn back unchanged and lets the model continue', async () => {
      const script = sequenceScript([
        {
          content: [
            text('Searching the web.'),
            serverToolUse('web_search', { query: 'toolq' }, { id: 'srvtoolu_ws1' }),
            passthrough({ type: 'web_search_tool_result', tool_use_id: 'srvtoolu_ws1', content: [] }),
          ],
          stopReason: 'pause_turn',
        },
        { content: [text('Nothing found.')] },
      ]);
      const { result, model } = await run(script, { stream });
      expect(result.status).toBe('end_turn');
      expect(result.text).toBe('Nothing found.');
      const second = body(model, 1).messages;
      expect(second).toHaveLength(2);
      expect(second[1]).toEqual({
        role: 'assistant',
        content: responseContent(model, 0),
      });
      expect(result.iterations.map((it) => it.action)).toEqual(['continue', 'final']);
      expect(result.iterations[0]?.serverToolUses).toBe(1);
    });

    it('refusal: stops with the refusal details', async () => {
      const { result } = await run(
        () => ({
          content: [text('I cannot help with that.')],
          stopReason: 'refusal',
          stopDetails: { type: 'refusal', category: 'cyber', explanation: 'policy' },
        }),
        { stream },
      );
      expect(result).toMatchObject({
        status: 'refusal',
        text: 'I cannot help with that.',
        stopDetails: { category: 'cyber' },
      });
    });

    it('maxIterations: stops with "Maximum iterations reached" after answering the last calls', async () => {
      const script: Script = (ctx) => ({ content: [toolUse('diag_echo', { value: `turn ${ctx.turn}` })] });
      const { result, model } = await run(script, { stream, maxIterations: 3 });
      expect(result.status).toBe('max_iterations');
      expect(result.text).toBe(MAX_ITERATIONS_TEXT);
      expect(result.text).toBe('Maximum iterations reached');
      expect(model.requests).toHaveLength(3);
      expect(result.iterations).toHaveLength(3);
      expect(result.messages).toHaveLength(7);
      expect(result.messages.at(-1)?.role).toBe('user');
    });
  });
}
