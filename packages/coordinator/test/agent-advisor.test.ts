/**
 * The advisor tool: declared with its beta header, its blocks passed through untouched (including
 * the opaque redacted result), never enqueued, its usage kept apart from the executor's, and a 400
 * for a pairing the API refuses surfaced with both model names.
 */
import type Anthropic from '@anthropic-ai/sdk';
import {
  advisorIteration,
  executorIteration,
  passthrough,
  type Script,
  serverToolUse,
  text,
  toolTurnsScript,
  toolUse,
} from '@toolq/scripted-model';
import { ToolqError } from '@toolq/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { ADVISOR_BETA, type AgentOptions, runAgent } from '../src/agent/index.ts';
import { useAgentHarness } from './agent-harness.ts';

const EXECUTOR = 'claude-sonnet-4-6';
const ADVISOR = 'claude-opus-4-6';

const harness = useAgentHarness();
const dispatched: string[] = [];
afterEach(() => {
  dispatched.length = 0;
});

async function run(script: Script, options: Partial<AgentOptions> = {}) {
  const { model, client } = await harness.model(script);
  const result = await runAgent({
    // The real dispatcher, watched: every tool name that reaches a queue is recorded.
    dispatcher: {
      catalog: harness.dispatcher.catalog,
      metrics: harness.dispatcher.metrics,
      dispatch: (uses, o) => {
        dispatched.push(...uses.map((u) => u.name));
        return harness.dispatcher.dispatch(uses, o);
      },
    },
    client,
    model: EXECUTOR,
    prompt: 'Plan, then act.',
    advisor: { model: ADVISOR, maxUses: 2 },
    logger: testLogger(),
    tools: harness.tools,
    ...options,
  });
  return { result, model };
}

type Body = { tools: { type?: string; name: string }[]; messages: Anthropic.Beta.BetaMessageParam[] };

for (const stream of [false, true]) {
  describe(`advisor (${stream ? 'streaming' : 'JSON'})`, () => {
    it('declares the tool with its beta header, passes its blocks through, never enqueues it', async () => {
      const script = toolTurnsScript([
        { advice: 'Echo first, then answer briefly.', calls: [{ name: 'diag_echo', input: { value: 'x' } }] },
      ]);
      const { result, model } = await run(script, { stream });
      expect(result.status).toBe('end_turn');
      const first = model.requests[0];
      expect(first?.betas).toEqual([ADVISOR_BETA]);
      const advisorTool = (first?.body as Body | undefined)?.tools.find((t) => t.type === 'advisor_20260301');
      expect(advisorTool).toEqual({ type: 'advisor_20260301', name: 'advisor', model: ADVISOR, max_uses: 2 });

      const sent = (model.requests[0]?.response as { content?: unknown[] } | undefined)?.content;
      expect(result.messages[1]).toEqual({ role: 'assistant', content: sent });
      expect(result.messages[1]?.content).toEqual([
        { type: 'server_tool_use', id: 'srvtoolu_advisor_1', name: 'advisor', input: {} },
        {
          type: 'advisor_tool_result',
          tool_use_id: 'srvtoolu_advisor_1',
          content: {
            type: 'advisor_result',
            text: 'Echo first, then answer briefly.',
            stop_reason: 'end_turn',
          },
        },
        expect.objectContaining({ type: 'tool_use', name: 'diag_echo' }),
      ]);
      // Only the client tool was run; the advisor's call is the API's.
      expect(result.calls.map((c) => c.name)).toEqual(['diag_echo']);
      expect(dispatched).toEqual(['diag_echo']);
      const answered = (await harness.dispatcher.metrics.calls.get()).values.map((v) => v.labels.tool);
      expect(answered).not.toContain('advisor');
      const user = result.messages[2]?.content as Anthropic.Beta.BetaToolResultBlockParam[];
      expect(user.map((b) => b.tool_use_id)).toEqual([result.calls[0]?.toolUseId]);
      expect(result.iterations[0]?.serverToolUses).toBe(1);
    });

    it('keeps executor and advisor usage apart', async () => {
      const script: Script = (ctx) => ({
        content: [
          serverToolUse('advisor', {}, { id: `srvtoolu_a${ctx.turn}` }),
          passthrough({
            type: 'advisor_tool_result',
            tool_use_id: `srvtoolu_a${ctx.turn}`,
            content: { type: 'advisor_result', text: 'Fine.', stop_reason: 'end_turn' },
          }),
          text('Done.'),
        ],
        usage: {
          iterations: [
            executorIteration(100, 10, EXECUTOR),
            advisorIteration(ADVISOR, 100, 300),
            executorIteration(130, 20, EXECUTOR),
          ],
        },
      });
      const { result } = await run(script, { stream });
      expect(result.usage.executor).toMatchObject({ inputTokens: 230, outputTokens: 30 });
      expect(result.usage.advisor).toMatchObject({ inputTokens: 100, outputTokens: 300 });
      expect(result.usage.byModel).toEqual([
        expect.objectContaining({ model: EXECUTOR, role: 'executor', calls: 2 }),
        expect.objectContaining({ model: ADVISOR, role: 'advisor', calls: 1, outputTokens: 300 }),
      ]);
      expect(result.advisorModel).toBe(ADVISOR);
      const advisorTokens = (await harness.dispatcher.metrics.modelTokens.get()).values.filter(
        (v) => v.labels.role === 'advisor' && v.labels.model === ADVISOR,
      );
      expect(advisorTokens.length).toBeGreaterThan(0);
    });

    it('round-trips an advisor_redacted_result verbatim', async () => {
      const redacted = {
        type: 'advisor_tool_result',
        tool_use_id: 'srvtoolu_r1',
        content: {
          type: 'advisor_redacted_result',
          encrypted_content: 'EqQBCkgIARAB+/opaque==',
          stop_reason: 'end_turn',
        },
      };
      const script: Script = (ctx) =>
        ctx.turn === 0
          ? {
              content: [
                serverToolUse('advisor', {}, { id: 'srvtoolu_r1' }),
                passthrough(redacted),
                toolUse('diag_echo', { value: 'after advice' }),
              ],
            }
          : { content: [text('ok')] };
      const { model } = await run(script, { stream });
      const second = (model.requests[1]?.body as Body | undefined)?.messages ?? [];
      expect((second[1]?.content as unknown[] | undefined)?.[1]).toEqual(redacted);
    });
  });
}

describe('advisor errors', () => {
  it('surfaces a 400 for a pairing the API refuses as MODEL_ERROR naming both models', async () => {
    const script: Script = () => ({
      error: {
        status: 400,
        type: 'invalid_request_error',
        message: `tools.0.advisor_20260301: model '${EXECUTOR}' cannot be advised by this advisor model`,
      },
    });
    const error = await run(script, { advisor: { model: 'claude-haiku-4-5' } }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ToolqError);
    expect((error as ToolqError).code).toBe('MODEL_ERROR');
    expect((error as ToolqError).message).toContain(`executor model "${EXECUTOR}"`);
    expect((error as ToolqError).message).toContain('advisor model "claude-haiku-4-5"');
    expect((error as ToolqError).message).toContain('cannot be advised');
  });
});
