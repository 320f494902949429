/**
 * `ctx.reportProgress()` from a tool on a worker to the dispatching coordinator: the Dispatcher's
 * `onProgress`, rate-limited per call on the worker, and the agent loop's `tool_progress` events
 * (which durable runs write to their log). Real Redis, a real in-process worker, the scripted model.
 */
import Anthropic from '@anthropic-ai/sdk';
import { startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { defineTool } from '@toolq/shared';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { useInProcessFleet } from '../../../test-support/in-process-fleet.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { withProgress } from '../../../test-support/mcp-tools.ts';
import { type AgentEvent, runAgent } from '../src/agent/index.ts';
import type { ProgressUpdate } from '../src/dispatch/progress-listener.ts';
import { fromAgentEvent } from '../src/runs/run-events.ts';

const flood = defineTool({
  name: 'progress_flood',
  description: 'Reports progress 1 to 1000 at once, waits, then answers.',
  input: z.object({ waitMs: z.number().int() }),
  run: async ({ waitMs }, ctx) => {
    for (let i = 1; i <= 1_000; i++) ctx.reportProgress(i, 1_000);
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    return 'done';
  },
});

const fleet = useInProcessFleet({ workers: [{ tools: [withProgress, flood] }] });

describe('progress of a running call', () => {
  it('reaches the dispatch that asked for it, in order, with the call it is of', async () => {
    const updates: ProgressUpdate[] = [];
    const result = await fleet.dispatcher.dispatch(
      [
        { type: 'tool_use', id: 'toolu_a', name: 'progress_flood', input: { waitMs: 0 } },
        { type: 'tool_use', id: 'toolu_p', name: 'test_tool_with_progress', input: {} },
      ],
      { onProgress: (u) => updates.push(u) },
    );
    expect(result.calls.map((c) => c.outcome)).toEqual(['ok', 'ok']);
    const mine = updates.filter((u) => u.toolUseId === 'toolu_p');
    expect(mine).toEqual([
      { index: 1, toolUseId: 'toolu_p', progress: 0, total: 100 },
      { index: 1, toolUseId: 'toolu_p', progress: 50, total: 100, message: 'half way' },
      { index: 1, toolUseId: 'toolu_p', progress: 100, total: 100 },
    ]);
  });

  it('is rate-limited per call on the worker: a burst, then the latest value', async () => {
    const updates: ProgressUpdate[] = [];
    await fleet.dispatcher.dispatch(
      [{ type: 'tool_use', id: 'toolu_f', name: 'progress_flood', input: { waitMs: 1_000 } }],
      { onProgress: (u) => updates.push(u) },
    );
    const values = updates.map((u) => u.progress);
    // 1000 reports in a tight loop: the first few (the burst), then only the latest one.
    expect(values.slice(0, 5)).toEqual([1, 2, 3, 4, 5]);
    expect(values.at(-1)).toBe(1_000);
    expect(values.length).toBeLessThanOrEqual(7);
  });

  it('becomes tool_progress events of the agent loop, and run log events', async () => {
    const model = await startScriptedModel(
      toolTurnsScript([{ calls: [{ name: 'test_tool_with_progress', input: {} }] }]),
    );
    try {
      const events: AgentEvent[] = [];
      const result = await runAgent({
        dispatcher: fleet.dispatcher,
        client: new Anthropic({ apiKey: 'test', baseURL: model.url, maxRetries: 0 }),
        model: 'claude-sonnet-4-6',
        prompt: 'Make progress.',
        tools: ['test_tool_with_progress'],
        logger: testLogger(),
        onEvent: (e) => events.push(e),
      });
      expect(result.status).toBe('end_turn');
      const progress = events.filter((e) => e.type === 'tool_progress');
      expect(progress.map((e) => e.progress)).toEqual([0, 50, 100]);
      const logged = fromAgentEvent(progress[1] as AgentEvent);
      expect(logged).toMatchObject({
        type: 'tool_progress',
        data: { iteration: 1, progress: 50, total: 100, message: 'half way' },
      });
    } finally {
      await model.close();
    }
  });
});
