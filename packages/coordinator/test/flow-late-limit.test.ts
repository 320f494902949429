/**
 * Issue 19: calls sent to a pool queue while their tool had no limits, still waiting there when an
 * operator sets a cap (PUT /v1/tools/:name/limits), start under that cap: a worker that takes one
 * moves it to the tool's queue instead of running it. Real coordinator and worker processes; what
 * ran at once is read from the tools' own start and end times (test-support/flow-tools.ts).
 */
import { fileURLToPath } from 'node:url';
import { createRedis, type Redis } from '@toolq/shared/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type FlowEvent, readFlowEvents } from '../../../test-support/flow-tools.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { maxOverlap, waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { api } from './runs-support.ts';

const TOOLS = fileURLToPath(new URL('../../../test-support/flow-tools.ts', import.meta.url));
const OPS = 'ops-token-0123456789abcdefgh';
const APP = 'alpha-token-0123456789abcdef';
let server: RedisServer;
let redis: Redis;
let worker: WorkerProcess;
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;

const batch = (n: number, ms: number, prefix: string, timeoutMs = 60_000, tool = 'free') =>
  api(coordinator.url, '/v1/tool-batches', {
    method: 'POST',
    token: APP,
    body: {
      tool_uses: Array.from({ length: n }, (_, i) => ({
        type: 'tool_use',
        id: `${prefix}-${i}`,
        name: tool,
        input: { ms, tag: `${prefix}-${i}` },
      })),
      timeout_ms: timeoutMs,
    },
  }).then(async (res) => {
    expect(res.status).toBe(200);
    return (await res.json()) as {
      tool_results: { tool_use_id: string; content: string }[];
      stats: { calls: { outcome: string }[] };
    };
  });

const ended = (events: FlowEvent[], prefix: string) =>
  events.filter((e) => e.tool === 'free' && e.end !== undefined && e.tag.startsWith(prefix));

beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedis(server.url);
  // Two jobs at a time: two long calls keep the worker busy while the others wait in the pool queue.
  worker = await startWorkerProcess({ redisUrl: server.url, tools: TOOLS, concurrency: 2 });
  coordinator = await startCoordinatorProcess({
    REDIS_URL: server.url,
    TOOLQ_API_TOKENS: `alpha:${APP}`,
    TOOLQ_OPERATOR_TOKENS: `ops:${OPS}`,
  });
}, 60_000);

afterAll(async () => {
  coordinator?.child.kill('SIGKILL');
  await worker?.stop('SIGKILL');
  redis?.disconnect();
  await server?.stop();
});

describe('a cap set while calls wait in a pool queue', () => {
  it('holds for them: never more than the cap of them run at once', async () => {
    const blockers = [batch(1, 3_000, 'block0'), batch(1, 3_000, 'block1')];
    await waitFor('both blockers running', async () => {
      const events = await readFlowEvents(server.url);
      return events.filter((e) => e.tag.startsWith('block')).length >= 2;
    });
    // Four batches of three calls: four jobs (a chunk of three calls each) waiting in the pool queue,
    // which would run three calls at once each.
    const waiting = [0, 1, 2, 3].map((k) => batch(3, 150, `late${k}`));
    await waitFor(
      '4 jobs waiting in the pool queue',
      async () => (await redis.llen('toolq:{default}:wait')) >= 4,
    );
    const put = await api(coordinator.url, '/v1/tools/free/limits', {
      method: 'PUT',
      token: OPS,
      body: { concurrency: 1 },
    });
    expect(put.status).toBe(200);

    const results = await Promise.all([...blockers, ...waiting]);
    for (const r of results) expect(r.stats.calls.every((c) => c.outcome === 'ok')).toBe(true);
    const events = await readFlowEvents(server.url);
    const late = ended(events, 'late');
    expect(late).toHaveLength(12);
    // They waited for the blockers (started before the cap: running calls are never stopped), then
    // ran one at a time, as the cap says.
    const blockersEnd = Math.min(...ended(events, 'block').map((e) => e.end ?? 0));
    expect(Math.min(...late.map((e) => e.start))).toBeGreaterThanOrEqual(blockersEnd - 5);
    expect(maxOverlap(late.map((e) => ({ start: e.start, end: e.end ?? e.start })))).toBe(1);
    // Each ran once.
    expect(new Set(late.map((e) => e.tag)).size).toBe(12);
  }, 120_000);

  it('answers a moved call never admitted before its deadline not_started, not timeout', async () => {
    // free2: `free` stays flow-controlled once limited, so its new calls no longer go to the pool.
    const blockers = [
      batch(1, 3_000, 'nsblock0', 60_000, 'free2'),
      batch(1, 3_000, 'nsblock1', 60_000, 'free2'),
    ];
    await waitFor('both blockers running', async () => {
      const events = await readFlowEvents(server.url);
      return events.filter((e) => e.tag.startsWith('nsblock')).length >= 2;
    });
    // Three 20 s calls with an 8 s deadline, waiting in the pool queue behind the blockers.
    const waiting = batch(3, 20_000, 'ns', 8_000, 'free2');
    await waitFor(
      'the job waiting in the pool queue',
      async () => (await redis.llen('toolq:{default}:wait')) >= 1,
    );
    const put = await api(coordinator.url, '/v1/tools/free2/limits', {
      method: 'PUT',
      token: OPS,
      body: { concurrency: 1 },
    });
    expect(put.status).toBe(200);
    const answer = await waiting;
    // Moved to the tool's queue once a blocker ended: one of them got the slot and ran past the
    // deadline (timeout); the other two never started.
    expect(answer.stats.calls.map((c) => c.outcome).sort()).toEqual([
      'not_started',
      'not_started',
      'timeout',
    ]);
    const notStarted = answer.tool_results.filter((r) => r.content.includes('was not started'));
    expect(notStarted).toHaveLength(2);
    await Promise.all(blockers);
  }, 120_000);
});
