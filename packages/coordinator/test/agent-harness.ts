/**
 * What the agent-loop tests share: a real Redis, an in-process worker serving the diagnostics
 * tools, a started Dispatcher, and scripted models reached through the real SDK.
 */
import Anthropic from '@anthropic-ai/sdk';
import { type Script, type ScriptedModel, startScriptedModel } from '@toolq/scripted-model';
import type { ToolqWorker } from '@toolq/worker';
import diagnostics from '@toolq/worker/diagnostics';
import { afterEach } from 'vitest';
import { useInProcessFleet } from '../../../test-support/in-process-fleet.ts';
import type { Dispatcher } from '../src/dispatcher.ts';

export interface AgentHarness {
  readonly dispatcher: Dispatcher;
  readonly worker: ToolqWorker;
  /**
   * The diagnostics tools the worker serves, to name in `tools`: `'all'` never offers `diag_*`
   * tools to a model.
   */
  readonly tools: readonly string[];
  /** A scripted model, closed after the test, and an SDK client pointed at it (no retries). */
  model(script: Script): Promise<{ model: ScriptedModel; client: Anthropic }>;
}

/** Registers the suite's hooks; use inside a test file, at the top level. */
export function useAgentHarness(): AgentHarness {
  const served = diagnostics.filter((t) => t.name !== 'diag_crash');
  const fleet = useInProcessFleet({ workers: [{ tools: served }] });
  const models: ScriptedModel[] = [];
  afterEach(async () => {
    await Promise.all(models.splice(0).map((m) => m.close()));
  });

  return {
    get dispatcher() {
      return fleet.dispatcher;
    },
    get worker() {
      return fleet.worker;
    },
    tools: served.map((t) => t.name).sort(),
    async model(script) {
      const model = await startScriptedModel(script);
      models.push(model);
      return { model, client: new Anthropic({ apiKey: 'test', baseURL: model.url, maxRetries: 0 }) };
    },
  };
}
