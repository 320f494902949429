/**
 * Issue 19, "the same across a coordinator restart and a Redis restart": a standalone Redis with
 * the persistence docs/deploy.md recommends (AOF, fsync every second) SIGKILLed and started again
 * while capped calls run under backlog. Seen from the tools' own start and end times (a file, not
 * Redis): the cap (an operator's override of 2) is never exceeded, the backlog finishes on the same
 * worker processes (their slots come back without a restart), and the override survives; a
 * coordinator started afterwards reads it and its calls keep to it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cappedCalls, cappedRunsIn, readFlowFile, waitForServing } from '../../../test-support/flow-tools.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { maxOverlap, mostRunningWithin, waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { Dispatcher } from '../src/index.ts';

const TOOLS = fileURLToPath(new URL('../../../test-support/flow-tools.ts', import.meta.url));

let server: RedisServer;
let dispatcher: Dispatcher;
let workers: WorkerProcess[] = [];
let dir: string;
let events: string;

const calls = cappedCalls;
const runsOf = (prefix: string) => cappedRunsIn(events, prefix);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-flow-restart-'));
  events = join(dir, 'events.jsonl');
  server = await startRedisServer({ appendonly: true });
  workers = await Promise.all(
    [0, 1, 2].map(() =>
      startWorkerProcess({
        redisUrl: server.url,
        tools: TOOLS,
        concurrency: 4,
        env: { TOOLQ_TEST_FLOW_FILE: events },
      }),
    ),
  );
  dispatcher = new Dispatcher({ redisUrl: server.url, logger: testLogger() });
  await dispatcher.start();
  await waitForServing(dispatcher, 'capped', 3);
}, 90_000);

afterAll(async () => {
  await dispatcher?.close();
  await Promise.all(workers.map((w) => w.stop('SIGKILL')));
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a concurrency cap across a Redis restart (AOF) and a coordinator restart', () => {
  it('never runs more than the cap, finishes the backlog on the same workers, and keeps the override', async () => {
    expect(await dispatcher.flow.put('capped', { concurrency: 2 })).toMatchObject({ concurrency: 2 });
    const t0 = Date.now();
    const pending = dispatcher.dispatch(calls(30, 300, 'r'), { timeoutMs: 120_000 });
    await waitFor('4 calls to have run before the restart', () => runsOf('r').length >= 4, 60_000);
    const killedAt = Date.now();
    await server.kill();
    // Down until the calls running at the kill have ended: their completions meet no Redis.
    await waitFor('the calls running at the kill to end', () => {
      const all = readFlowFile(events).filter((e) => e.tag.startsWith('r-'));
      const ended = new Set(all.filter((e) => e.end !== undefined).map((e) => e.tag));
      return all.filter((e) => e.end === undefined).every((e) => ended.has(e.tag));
    });
    await server.start();
    const upAt = Date.now();
    const result = await pending;
    const doneAt = Date.now();
    expect(result.calls.map((c) => c.outcome)).toEqual(Array(30).fill('ok'));
    const runs = runsOf('r');
    expect(new Set(runs.map((r) => r.tag)).size).toBe(30);
    const before = mostRunningWithin(runs, t0, killedAt);
    const after = mostRunningWithin(runs, killedAt, doneAt);
    const firstStartAfter = Math.min(...runs.filter((r) => r.start >= killedAt).map((r) => r.start));
    console.info(
      `flow, Redis restart (AOF everysec, SIGKILL): cap 2, 30 calls of 300 ms on 3 workers; most running ` +
        `before ${before}, after ${after}; Redis down ${upAt - killedAt} ms; first start ${firstStartAfter - killedAt} ms ` +
        `after the kill; ${runs.length - 30} calls started twice; backlog done ${doneAt - upAt} ms after the restart`,
    );
    expect(before).toBe(2);
    expect(after).toBeLessThanOrEqual(2);
    // Nothing was restarted but Redis: the same three worker processes ran the rest.
    for (const w of workers) expect(w.child.exitCode).toBeNull();
    expect(new Set(runs.filter((r) => r.start > upAt).map((r) => r.pid)).size).toBeGreaterThan(0);
    expect(await dispatcher.flow.get('capped')).toMatchObject({ concurrency: 2, paused: false });
  }, 240_000);

  it('a coordinator started after the restart reads the override; its calls keep to the cap', async () => {
    await dispatcher.close();
    dispatcher = new Dispatcher({ redisUrl: server.url, logger: testLogger() });
    await dispatcher.start();
    expect(await dispatcher.flow.get('capped')).toMatchObject({ concurrency: 2 });
    const result = await dispatcher.dispatch(calls(10, 200, 's'), { timeoutMs: 60_000 });
    expect(result.calls.map((c) => c.outcome)).toEqual(Array(10).fill('ok'));
    expect(maxOverlap(runsOf('s'))).toBe(2);
  }, 120_000);
});
