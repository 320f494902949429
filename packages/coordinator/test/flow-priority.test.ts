/**
 * Issue 19, point 4: a batch's or run's `priority` orders the calls of one app that wait for a
 * flow-controlled tool (higher first, the order sent within one priority), while apps keep their
 * turns. Real coordinator and worker processes over HTTP, the real client, the real SDK against the
 * scripted Messages API; the order is read from the tools' own start times (test-support/flow-tools.ts).
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ToolqClient } from '@toolq/client';
import { type ScriptedModel, startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { createRedis, type Redis } from '@toolq/shared/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type FlowEvent, readFlowEvents } from '../../../test-support/flow-tools.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { stopChild } from '../../../test-support/stop-child.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { runKeys } from '../src/runs/run-keys.ts';
import { api, waitForRun } from './runs-support.ts';

const TOOLS = fileURLToPath(new URL('../../../test-support/flow-tools.ts', import.meta.url));
const ALPHA = 'alpha-token-0123456789abcdef';
const BETA = 'beta-token-0123456789abcdefg';
const WAITING = 'toolq:{tool=single}:prioritized';
let server: RedisServer;
let redis: Redis;
let model: ScriptedModel;
const workers: WorkerProcess[] = [];
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let alpha: ToolqClient;
let beta: ToolqClient;

const uses = (n: number, ms: number, prefix: string) =>
  Array.from({ length: n }, (_, i) => ({
    type: 'tool_use' as const,
    id: `${prefix}-${i}`,
    name: 'single',
    input: { ms, tag: `${prefix}-${i}` },
  }));

/** Start times of the `single` calls whose tag starts with one of the prefixes, in start order. */
async function starts(...prefixes: string[]): Promise<{ tag: string; start: number }[]> {
  const events = await readFlowEvents(server.url);
  return events
    .filter((e: FlowEvent) => e.tool === 'single' && e.end === undefined)
    .filter((e) => prefixes.some((p) => e.tag.startsWith(`${p}-`)))
    .map(({ tag, start }) => ({ tag, start }))
    .sort((a, b) => a.start - b.start);
}

const startedCount = async (prefix: string) => (await starts(prefix)).length;

/** The tags of the calls waiting in the tool's queue (from their jobs' data). */
async function waitingTags(): Promise<string[]> {
  const ids = await redis.zrange(WAITING, '0', '-1');
  const data = await Promise.all(ids.map((id) => redis.hget(`toolq:{tool=single}:${id}`, 'data')));
  return data.flatMap((raw) => {
    const tag = raw ? (JSON.parse(raw) as { input?: { tag?: string } }).input?.tag : undefined;
    return tag ? [tag] : [];
  });
}

beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedis(server.url);
  // A run asks for one call of `single`, then answers.
  model = await startScriptedModel(
    toolTurnsScript({
      turns: [{ calls: [{ name: 'single', input: { ms: 20, tag: 'run-0' } }] }],
      final: () => 'done',
    }),
  );
  for (let i = 0; i < 2; i++)
    workers.push(await startWorkerProcess({ redisUrl: server.url, tools: TOOLS, concurrency: 4 }));
  coordinator = await startCoordinatorProcess({
    REDIS_URL: server.url,
    TOOLQ_API_TOKENS: `alpha:${ALPHA},beta:${BETA}`,
    ANTHROPIC_API_KEY: 'test-key',
    ANTHROPIC_BASE_URL: model.url,
  });
  alpha = new ToolqClient({ baseUrl: coordinator.url, token: ALPHA });
  beta = new ToolqClient({ baseUrl: coordinator.url, token: BETA });
  await waitFor('2 workers serving single', async () => {
    const tools = await alpha.listTools();
    return tools.find((t) => t.name === 'single')?.live_workers === 2;
  });
}, 90_000);

afterAll(async () => {
  await stopChild(coordinator?.child as ChildProcess).catch(() => undefined);
  await Promise.all(workers.map((w) => w.stop('SIGKILL')));
  redis?.disconnect();
  await model?.close();
  await server?.stop();
});

describe('priority within an app', () => {
  it('refuses a priority outside -10..10 with a 400 naming it, for batches and runs', async () => {
    for (const priority of [11, -11, 1.5, 'high']) {
      const batch = await api(coordinator.url, '/v1/tool-batches', {
        method: 'POST',
        token: ALPHA,
        body: { tool_uses: uses(1, 0, 'bad'), priority },
      });
      expect(batch.status).toBe(400);
      expect(((await batch.json()) as { error: { message: string } }).error.message).toMatch(/priority/);
      const run = await api(coordinator.url, '/v1/runs', {
        method: 'POST',
        token: ALPHA,
        body: { prompt: 'go', tools: ['single'], priority },
      });
      expect(run.status).toBe(400);
      expect(((await run.json()) as { error: { message: string } }).error.message).toMatch(/priority/);
    }
    expect(await startedCount('bad')).toBe(0);
  });

  it("starts an app's high-priority calls before its waiting low ones, and the other app keeps its turns", async () => {
    // alpha: a backlog of low-priority calls on a tool that runs one call at a time.
    const low = alpha.createToolBatch(uses(12, 150, 'low'), { priority: -5, batchTimeoutMs: 120_000 });
    await waitFor('the backlog running', async () => (await startedCount('low')) >= 2);
    // beta: a few calls at the default priority, waiting before alpha's high ones arrive.
    const late = beta.createToolBatch(uses(4, 150, 'beta'), { batchTimeoutMs: 120_000 });
    await waitFor(
      'beta waiting',
      async () => (await waitingTags()).filter((t) => t.startsWith('beta-')).length >= 3,
    );
    const lowStartedBefore = await startedCount('low');
    const high = alpha.createToolBatch(uses(3, 150, 'high'), { priority: 5, batchTimeoutMs: 120_000 });
    const results = await Promise.all([low, late, high]);
    for (const r of results) expect(r.tool_results.every((x) => !x.is_error)).toBe(true);

    const alphaOrder = (await starts('low', 'high')).map((s) => s.tag.replace(/-\d+$/, ''));
    const firstHigh = alphaOrder.indexOf('high');
    // At most the one low call being started when the high batch arrived went before it...
    expect(firstHigh).toBeLessThanOrEqual(lowStartedBefore + 1);
    // ...then alpha's three high calls took alpha's next turns, before every low call still waiting,
    expect(alphaOrder.slice(firstHigh, firstHigh + 3)).toEqual(['high', 'high', 'high']);
    // and the low ones kept their order.
    const lowTags = (await starts('low')).map((s) => s.tag);
    expect(lowTags).toEqual(Array.from({ length: 12 }, (_, i) => `low-${i}`));

    // Apps still take turns: beta started between alpha's high calls, not after them all,
    const all = await starts('low', 'high', 'beta');
    const highAt = all.filter((s) => s.tag.startsWith('high-')).map((s) => s.start);
    const betaAt = all.filter((s) => s.tag.startsWith('beta-')).map((s) => s.start);
    const betaAmidHigh = betaAt.filter((t) => t > Math.min(...highAt) && t < Math.max(...highAt));
    expect(betaAmidHigh.length).toBeGreaterThanOrEqual(1);
    // and alpha (high and low together) started about one call per beta call while beta waited.
    const alphaAmidBeta = all.filter(
      (s) => !s.tag.startsWith('beta-') && s.start > Math.min(...betaAt) && s.start < Math.max(...betaAt),
    );
    expect(alphaAmidBeta.length).toBeLessThanOrEqual(4 + 1);
    // Beta was done long before alpha's backlog.
    const lastLow = Math.max(...all.filter((s) => s.tag.startsWith('low-')).map((s) => s.start));
    expect(Math.max(...betaAt)).toBeLessThan(lastLow);
  }, 150_000);

  it("applies a run's priority to its batches and keeps it in the run's record", async () => {
    const low = alpha.createToolBatch(uses(12, 300, 'rlow'), { priority: -1, batchTimeoutMs: 120_000 });
    await waitFor('the backlog running', async () => (await startedCount('rlow')) >= 1);
    const created = await alpha.createRun({ prompt: 'go', tools: ['single'], priority: 7 });
    // Stored with the request, which a coordinator that takes the run over reads again.
    const stored = await redis.hget(runKeys('toolq', created.run_id).record, 'request');
    expect(JSON.parse(stored ?? '{}')).toMatchObject({ priority: 7 });
    const run = await waitForRun(coordinator.url, created.run_id, ALPHA, 120_000);
    expect(run.status).toBe('done');
    await low;
    const order = (await starts('rlow', 'run')).map((s) => s.tag);
    // The run's call went ahead of the low calls waiting when it came (without the priority it
    // would have started after all 12): the backlog takes 12 x 300 ms, the run's turn far less.
    const after = order.length - 1 - order.indexOf('run-0');
    expect(order.indexOf('run-0')).toBeGreaterThan(0);
    expect(after).toBeGreaterThanOrEqual(3);
  }, 150_000);
});
