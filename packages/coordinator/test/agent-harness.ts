/**
 * What the agent-loop tests share: a real Redis, an in-process worker serving the diagnostics
 * tools, a started Dispatcher, and scripted models reached through the real SDK.
 */
import Anthropic from '@anthropic-ai/sdk';
import { type Script, type ScriptedModel, startScriptedModel } from '@toolq/scripted-model';
import { startWorker, type ToolqWorker } from '@toolq/worker';
import diagnostics from '@toolq/worker/diagnostics';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { Dispatcher } from '../src/dispatcher.ts';

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
  let redis: RedisServer | undefined;
  let worker: ToolqWorker | undefined;
  let dispatcher: Dispatcher | undefined;
  const models: ScriptedModel[] = [];
  const served = diagnostics.filter((t) => t.name !== 'diag_crash');

  beforeAll(async () => {
    redis = await startRedisServer();
    worker = await startWorker({
      tools: served,
      redisUrl: redis.url,
      logger: testLogger(),
    });
    dispatcher = new Dispatcher({ redisUrl: redis.url, logger: testLogger() });
    await dispatcher.start();
  });
  afterEach(async () => {
    await Promise.all(models.splice(0).map((m) => m.close()));
  });
  afterAll(async () => {
    await dispatcher?.close();
    await worker?.close();
    await redis?.stop();
  });

  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the agent harness is used before beforeAll ran');
    return value;
  };
  return {
    get dispatcher() {
      return started(dispatcher);
    },
    get worker() {
      return started(worker);
    },
    tools: served.map((t) => t.name).sort(),
    async model(script) {
      const model = await startScriptedModel(script);
      models.push(model);
      return { model, client: new Anthropic({ apiKey: 'test', baseURL: model.url, maxRetries: 0 }) };
    },
  };
}
