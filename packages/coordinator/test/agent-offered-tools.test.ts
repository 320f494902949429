/**
 * A run's `tools` is what the model may run, not a hint: a `tool_use` of a tool the run did not
 * offer (a made-up name, a prompt injection, a compromised gateway) is answered is_error and
 * never reaches a worker, even when a worker of the fleet serves that tool. Real Redis, a real
 * in-process worker serving the diagnostics tools, the scripted model through the real SDK.
 */
import type Anthropic from '@anthropic-ai/sdk';
import { toolTurnsScript } from '@toolq/scripted-model';
import { ToolqError } from '@toolq/shared';
import { describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { type AgentOptions, runAgent } from '../src/agent/index.ts';
import type { AgentCheckpoint } from '../src/agent/types.ts';
import { useAgentHarness } from './agent-harness.ts';

const harness = useAgentHarness();

const echoAndSleep = () =>
  toolTurnsScript([
    {
      calls: [
        { name: 'diag_echo', input: { value: 'should not run' } },
        { name: 'diag_sleep', input: { ms: 1 } },
      ],
    },
  ]);

async function run(options: Partial<AgentOptions> & Pick<AgentOptions, 'tools'>) {
  const { model, client } = await harness.model(echoAndSleep());
  const result = await runAgent({
    dispatcher: harness.dispatcher,
    client,
    model: 'claude-sonnet-4-6',
    prompt: 'Echo something.',
    logger: testLogger(),
    ...options,
  });
  return { result, model };
}

function toolResults(messages: Anthropic.Beta.BetaMessageParam[]) {
  return messages[2]?.content as Anthropic.Beta.BetaToolResultBlockParam[];
}

for (const stream of [false, true]) {
  describe(`tools not offered (${stream ? 'streaming, early dispatch' : 'JSON'})`, () => {
    it('tools: ["diag_sleep"]: diag_echo is refused unrun, diag_sleep runs', async () => {
      const events: string[] = [];
      const { result, model } = await run({
        stream,
        tools: ['diag_sleep'],
        onEvent: (e) => {
          if (e.type === 'tool_start') events.push(`start ${e.name}`);
          if (e.type === 'tool_finish') events.push(`finish ${e.call.name}`);
        },
      });
      expect(result.status).toBe('end_turn');
      const offered = (model.requests[0]?.body as { tools?: { name: string }[] } | undefined)?.tools ?? [];
      expect(offered.map((t) => t.name)).toEqual(['diag_sleep']);
      const blocks = toolResults(result.messages);
      expect(blocks.map((b) => b.is_error ?? false)).toEqual([true, false]);
      expect(blocks[0]?.content).toBe(
        'Unknown tool: diag_echo: not among the tools offered to this run (diag_sleep)',
      );
      expect(result.calls[0]).toMatchObject({ name: 'diag_echo', outcome: 'unknown_tool', attempts: 0 });
      expect(result.calls[0]?.worker).toBeUndefined();
      expect(result.calls[1]).toMatchObject({ name: 'diag_sleep', outcome: 'ok', worker: harness.worker.id });
      expect(events).not.toContain('start diag_echo');
      expect(events).toContain('finish diag_echo');
    });

    it('tools: []: nothing is offered and nothing runs', async () => {
      const { result } = await run({ stream, tools: [] });
      const blocks = toolResults(result.messages);
      expect(blocks.map((b) => b.is_error ?? false)).toEqual([true, true]);
      expect(blocks.map((b) => b.content)).toEqual([
        'Unknown tool: diag_echo: not among the tools offered to this run ((none))',
        'Unknown tool: diag_sleep: not among the tools offered to this run ((none))',
      ]);
      expect(result.calls.map((c) => c.worker)).toEqual([undefined, undefined]);
    });
  });
}

describe('a run names its tools', () => {
  it('without `tools` runAgent refuses (INVALID_INPUT naming tools) before the model is asked', async () => {
    const { model, client } = await harness.model(echoAndSleep());
    const err = await runAgent({
      dispatcher: harness.dispatcher,
      client,
      model: 'claude-sonnet-4-6',
      prompt: 'Echo something.',
      logger: testLogger(),
      // What a JavaScript caller can do; TypeScript refuses it.
    } as unknown as AgentOptions).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolqError);
    expect(err).toMatchObject({ code: 'INVALID_INPUT' });
    expect((err as Error).message).toMatch(/^invalid runAgent options: tools is required: name the tools/);
    expect((err as Error).message).toContain("`tools: 'all'`");
    expect(model.requests).toEqual([]);
  });
});

describe('diagnostics tools', () => {
  it("tools 'all' (an explicit opt-in) leaves out diag_* (diag_crash SIGKILLs workers); named, they are offered", async () => {
    const { result, model } = await run({ stream: false, tools: 'all' });
    const offered = (model.requests[0]?.body as { tools?: { name: string }[] } | undefined)?.tools ?? [];
    expect(offered.map((t) => t.name).filter((n) => n.startsWith('diag_'))).toEqual([]);
    expect(result.calls.map((c) => c.outcome)).toEqual(['unknown_tool', 'unknown_tool']);
    expect(result.calls.map((c) => c.worker)).toEqual([undefined, undefined]);

    const named = await run({ stream: false, tools: ['diag_echo', 'diag_sleep'] });
    const namedOffer = (named.model.requests[0]?.body as { tools?: { name: string }[] } | undefined)?.tools;
    expect(namedOffer?.map((t) => t.name)).toEqual(['diag_echo', 'diag_sleep']);
    expect(named.result.calls.map((c) => c.outcome)).toEqual(['ok', 'ok']);
  });
});

describe('tools not offered, durable runs', () => {
  it('a resumed turn answers a refused call as refused again (it was never given a batch)', async () => {
    const saved: AgentCheckpoint[] = [];
    const persistence = (checkpoint?: AgentCheckpoint): AgentOptions['persistence'] => ({
      ...(checkpoint ? { checkpoint } : {}),
      beforeModelRequest: async () => undefined,
      save: async (cp) => {
        saved.push(structuredClone(cp));
      },
      batchId: (iteration, n) => `offered-${checkpoint ? 'resumed' : 'first'}.${iteration}.${n}`,
    });
    const first = await run({ stream: false, tools: ['diag_sleep'], persistence: persistence() });
    expect(first.result.status).toBe('end_turn');
    const pending = saved.find((cp) => cp.pending)?.pending;
    expect(pending?.toolUses.map((u) => u.name)).toEqual(['diag_echo', 'diag_sleep']);
    expect(Object.keys(pending?.refs ?? {})).toEqual([pending?.toolUses[1]?.id]);

    const checkpoint = saved.find((cp) => cp.pending) as AgentCheckpoint;
    const resumed = await run({ stream: false, tools: ['diag_sleep'], persistence: persistence(checkpoint) });
    expect(resumed.result.status).toBe('end_turn');
    expect(resumed.result.calls.map((c) => c.outcome)).toEqual(['unknown_tool', 'ok']);
    expect(resumed.result.calls[0]?.worker).toBeUndefined();
  });
});
