/**
 * The last line of the stale-owner fence (run-executor.ts): a run taken over between the old
 * owner's fenced log write and its dispatch. The new owner asks the model again and gets the same
 * call (the same tool_use id); its persistence names that batch as the old owner's and says it may
 * have been sent. Whichever dispatch reaches the name first runs the call; the other collects it,
 * or is refused the name. Real Redis, a real in-process worker, the scripted model, the real SDK.
 */
import { toolTurnsScript } from '@toolq/scripted-model';
import { describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { letTimePass } from '../../../test-support/wait-for.ts';
import { type AgentOptions, runAgent } from '../src/agent/index.ts';
import { useAgentHarness } from './agent-harness.ts';

const harness = useAgentHarness();

/** Calls of diag_sleep the worker finished. */
async function sleeps(): Promise<number> {
  const text = await harness.worker.registry.getSingleMetricAsString('toolq_worker_jobs_total');
  return text
    .split('\n')
    .filter((line) => line.startsWith('toolq_worker_jobs_total{') && line.includes('tool="diag_sleep"'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

/** The new owner's run: the model's one call has the old owner's id; its batch the old owner's name. */
async function newOwner(id: string, earlierName: string, stream: boolean) {
  const { client } = await harness.model(
    toolTurnsScript([{ calls: [{ id, name: 'diag_sleep', input: { ms: 400 } }] }]),
  );
  const persistence: AgentOptions['persistence'] = {
    beforeModelRequest: async () => undefined,
    save: async () => undefined,
    batchId: (iteration, n, ids) =>
      iteration === 1 && ids.length === 1 && ids[0] === id
        ? earlierName
        : `${earlierName}.new.${iteration}.${n}`,
    beforeDispatch: async (name) => name === earlierName,
  };
  return runAgent({
    dispatcher: harness.dispatcher,
    client,
    model: 'claude-sonnet-4-6',
    prompt: 'Sleep.',
    tools: ['diag_sleep'],
    stream,
    logger: testLogger(),
    persistence,
  });
}

for (const stream of [true, false]) {
  describe(`a batch an earlier owner logged as started (${stream ? 'early dispatch' : 'JSON'})`, () => {
    it('already dispatched: the new owner collects it; the call runs once', async () => {
      const id = `toolu_adopt_first_${stream}`;
      const name = `stale.first.${stream}`;
      const before = await sleeps();
      const earlier = harness.dispatcher.dispatch(
        [{ type: 'tool_use', id, name: 'diag_sleep', input: { ms: 400 } }],
        { batchName: name },
      );
      const result = await newOwner(id, name, stream);
      const first = await earlier;
      expect(result.status).toBe('end_turn');
      expect(result.calls).toEqual([expect.objectContaining({ toolUseId: id, outcome: 'ok' })]);
      expect(first.toolResults[0]).toMatchObject({ tool_use_id: id });
      expect(first.toolResults[0]?.is_error ?? false).toBe(false);
      expect((await sleeps()) - before).toBe(1);
    });

    it('not dispatched yet: the new owner sends it; the earlier dispatch, late, is refused the name', async () => {
      const id = `toolu_adopt_late_${stream}`;
      const name = `stale.late.${stream}`;
      const before = await sleeps();
      const result = await newOwner(id, name, stream);
      expect(result.calls).toEqual([expect.objectContaining({ toolUseId: id, outcome: 'ok' })]);
      const late = await harness.dispatcher
        .dispatch([{ type: 'tool_use', id, name: 'diag_sleep', input: { ms: 400 } }], { batchName: name })
        .then(
          (r) => r.toolResults[0],
          (err: Error) => ({ is_error: true, content: err.message }),
        );
      expect(late?.is_error).toBe(true);
      // Long enough for a second run of the call, had the late dispatch sent one, to finish.
      await letTimePass(700);
      expect((await sleeps()) - before).toBe(1);
    });
  });
}
