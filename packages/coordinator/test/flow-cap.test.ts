/**
 * Issue 19, the cap: `defineTool({ concurrency: 3 })` holds across several real worker processes
 * (each with room for 8), seen from the tools' own side (their start and end times), under a
 * backlog; and with a worker SIGKILLed while it runs capped calls, its calls count until BullMQ
 * knows they are dead, then the slots come back without any restart.
 */
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FlowEvent, readFlowEvents, waitForServing } from '../../../test-support/flow-tools.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { maxOverlap, waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { Dispatcher } from '../src/index.ts';

const TOOLS = fileURLToPath(new URL('../../../test-support/flow-tools.ts', import.meta.url));
let server: RedisServer;
let dispatcher: Dispatcher;
const workers: WorkerProcess[] = [];

const calls = (tool: string, n: number, input: Record<string, unknown>, prefix = tool) =>
  Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${i}`,
    name: tool,
    input: { ...input, tag: `${prefix}-${i}` },
  }));

const finished = (events: FlowEvent[], tool: string) =>
  events.filter((e) => e.tool === tool && e.end !== undefined) as Required<FlowEvent>[];

beforeAll(async () => {
  server = await startRedisServer();
  for (let i = 0; i < 3; i++)
    workers.push(await startWorkerProcess({ redisUrl: server.url, tools: TOOLS, concurrency: 8 }));
  dispatcher = new Dispatcher({ redisUrl: server.url, logger: testLogger() });
  await dispatcher.start();
  await waitForServing(dispatcher, 'capped', 3);
}, 60_000);

afterAll(async () => {
  await dispatcher?.close();
  await Promise.all(workers.map((w) => w.stop('SIGKILL')));
  await server?.stop();
});

describe('a fleet-wide concurrency cap', () => {
  it('never runs more than 3 calls at once across 3 workers with 24 slots, and keeps the 3 busy', async () => {
    const result = await dispatcher.dispatch(calls('capped', 24, { ms: 150 }), { timeoutMs: 60_000 });
    expect(result.calls.map((c) => c.outcome)).toEqual(Array(24).fill('ok'));
    const intervals = finished(await readFlowEvents(server.url), 'capped');
    expect(intervals).toHaveLength(24);
    expect(maxOverlap(intervals)).toBe(3);
    // More than one worker process ran them: the cap is the fleet's, not one process's.
    expect(new Set(intervals.map((i) => i.pid)).size).toBeGreaterThan(1);
    expect(dispatcher.catalog.list().find((t) => t.name === 'capped')?.limits).toEqual({
      concurrency: 3,
      rate_limit: null,
      paused: false,
    });
  }, 90_000);

  it("counts a SIGKILLed worker's calls until they are known dead, then gives their slots back", async () => {
    // Only the victim serves the tool while the long calls start.
    const others = workers.splice(1);
    await Promise.all(others.map((w) => w.stop()));
    const victim = workers[0] as WorkerProcess;
    const long = dispatcher.dispatch(calls('capped', 3, { ms: 120_000 }, 'long'), { timeoutMs: 4_000 });
    const active = new Redis(server.url);
    const activeKey = 'toolq:{tool=capped}:active';
    const deadJobs = await waitFor('the 3 long calls running on the victim', async () => {
      const started = (await readFlowEvents(server.url)).filter((e) => e.tag.startsWith('long-'));
      const ids = await active.lrange(activeKey, 0, -1);
      return started.length === 3 && ids.length === 3 && ids;
    });
    await victim.stop('SIGKILL');
    const killedAt = Date.now();
    workers.splice(0);
    // The short calls wait behind the dead worker's three: they are sent at once.
    const short = dispatcher.dispatch(calls('capped', 6, { ms: 50 }, 'short'), { timeoutMs: 90_000 });
    workers.push(await startWorkerProcess({ redisUrl: server.url, tools: TOOLS, concurrency: 8 }));
    // The last moment the dead calls were seen still counted: nothing of the tool may start before it.
    let lastSeenCounted = killedAt;
    await waitFor(
      "BullMQ's stalled check to move the dead worker's calls out of active",
      async () => {
        const ids = await active.lrange(activeKey, 0, -1);
        const counted = deadJobs.every((id) => ids.includes(id));
        if (counted) lastSeenCounted = Date.now();
        return !deadJobs.some((id) => ids.includes(id));
      },
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    active.disconnect();
    // The long calls are answered at their deadline (they started: a timeout, not "not started").
    expect((await long).calls.map((c) => c.outcome)).toEqual(['timeout', 'timeout', 'timeout']);
    // No restart of anything: the new worker runs the short calls once the slots are known free.
    expect((await short).calls.map((c) => c.outcome)).toEqual(Array(6).fill('ok'));
    const events = await readFlowEvents(server.url);
    const after = finished(events, 'capped').filter((e) => e.tag.startsWith('short-'));
    expect(after).toHaveLength(6);
    expect(lastSeenCounted).toBeGreaterThan(killedAt);
    for (const call of after) expect(call.start).toBeGreaterThan(lastSeenCounted);
    const dead = events
      .filter((e) => e.tag.startsWith('long-') && e.end === undefined)
      .map((e) => ({ start: e.start, end: killedAt }));
    expect(maxOverlap([...dead, ...after])).toBeLessThanOrEqual(3);
    // The long calls were answered already: none of them ran a second time on the new worker.
    expect(events.filter((e) => e.tag.startsWith('long-') && e.pid !== victim.child.pid)).toEqual([]);
  }, 150_000);
});
