/**
 * Delivery that follows the tool (docs/delivery.md), across a worker SIGKILLed mid-call: real
 * worker processes serving tools that record every start with its idempotency key. The killed
 * worker's at-most-once calls start exactly once and are answered "outcome unknown"; its
 * at-least-once calls start twice with one key on the survivor and come back ok; the batch is
 * answered once the death is noticed, long before its deadline.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStarts } from '../../../test-support/delivery-tools.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { fleetReport } from '../src/fleet-report.ts';
import { Dispatcher } from '../src/index.ts';

const TOOLS = fileURLToPath(new URL('../../../test-support/delivery-tools.ts', import.meta.url));
/** Far away: an answer near it would be the old behaviour (a dead worker's calls time out). */
const DEADLINE_MS = 90_000;
const DEAD_AFTER_MS = 3_000;

let server: RedisServer;
let dispatcher: Dispatcher;
let workers: WorkerProcess[] = [];
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-delivery-'));
  server = await startRedisServer();
  dispatcher = new Dispatcher({
    redisUrl: server.url,
    logger: testLogger(),
    sweepIntervalMs: 250,
    deadWorkerAfterMs: DEAD_AFTER_MS,
  });
  await dispatcher.start();
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop('SIGKILL')));
  await dispatcher?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Two worker processes recording their starts in `executions`, once the catalog counts both. */
async function startTwoWorkers(executions: string, concurrency: number): Promise<WorkerProcess[]> {
  const started = await Promise.all(
    [0, 1].map(() =>
      startWorkerProcess({
        redisUrl: server.url,
        tools: TOOLS,
        concurrency,
        env: { TOOLQ_TEST_EXECUTIONS: executions },
      }),
    ),
  );
  const pids = new Set(started.map((w) => w.child.pid));
  await waitFor('both workers in the catalog', async () => {
    await dispatcher.catalog.refresh();
    return dispatcher.catalog.liveWorkers().filter((w) => pids.has(w.pid)).length === 2;
  });
  return started;
}

describe('a worker SIGKILLed mid-call', () => {
  it('at-most-once calls start once and answer "outcome unknown"; at-least-once calls run again with one key', async () => {
    const executions = join(dir, 'kill.log');
    // One slot each: each worker takes one of the batch's two jobs (chunks of calls run at once).
    workers = await startTwoWorkers(executions, 1);
    const uses = [0, 1, 2, 3].flatMap((i) => [
      { id: `toolu_pay_${i}`, name: 'test_pay', input: { label: `pay${i}`, ms: 4_000 } },
      { id: `toolu_look_${i}`, name: 'test_lookup', input: { label: `look${i}`, ms: 4_000 } },
    ]);
    const pending = dispatcher.dispatch(uses, { timeoutMs: DEADLINE_MS });
    const [killed, survivor] = workers;
    const pidOf = (w: WorkerProcess | undefined) => w?.child.pid ?? -1;
    // Every call runs: half of them on the worker about to die.
    await waitFor('every call started', () => readStarts(executions).length === uses.length, {
      timeoutMs: 30_000,
    });
    expect(new Set(readStarts(executions).map((s) => s.pid))).toEqual(
      new Set([pidOf(killed), pidOf(survivor)]),
    );
    await killed?.stop('SIGKILL');
    const killedAt = Date.now();
    const result = await pending;
    const answeredMs = Date.now() - killedAt;
    console.info(
      `delivery: batch answered ${answeredMs} ms after the SIGKILL (deadWorkerAfterMs ${DEAD_AFTER_MS}, calls of 4 s)`,
    );

    const starts = readStarts(executions);
    const startsOf = (label: string) => starts.filter((s) => s.label === label);
    const onKilled = uses.filter((u) => startsOf(u.input.label)[0]?.pid === pidOf(killed));
    expect(onKilled.length).toBeGreaterThan(0);
    for (const [index, use] of uses.entries()) {
      const call = result.calls[index];
      const mine = startsOf(use.input.label);
      const died = onKilled.includes(use);
      if (use.name === 'test_pay' && died) {
        expect(mine, use.input.label).toHaveLength(1);
        expect(call?.outcome).toBe('unknown');
        expect(result.toolResults[index]?.is_error).toBe(true);
        expect(String(result.toolResults[index]?.content)).toMatch(
          /outcome unknown: .*interrupted after it started.*may or may not have taken effect/,
        );
      } else if (died) {
        expect(
          mine.map((s) => s.pid),
          use.input.label,
        ).toEqual([pidOf(killed), pidOf(survivor)]);
        expect(new Set(mine.map((s) => s.key)).size).toBe(1);
        expect(call?.outcome).toBe('ok');
        expect(result.toolResults[index]?.content).toBe(`found ${use.input.label}`);
      } else {
        expect(mine, use.input.label).toHaveLength(1);
        expect(call?.outcome).toBe('ok');
      }
    }
    // One key per call, different for every call.
    const keys = new Map(starts.map((s) => [s.label, s.key]));
    expect(new Set(keys.values()).size).toBe(uses.length);
    // Answered once the death was noticed and the re-run ran, not at the deadline.
    expect(answeredMs).toBeLessThan(DEADLINE_MS / 2);
    const counted = await dispatcher.registry.getSingleMetric('toolq_interrupted_calls_total')?.get();
    const unknown = counted?.values.find((v) => v.labels.action === 'unknown')?.value ?? 0;
    expect(unknown).toBe(onKilled.filter((u) => u.name === 'test_pay').length);
    // The performance report counts them apart: failures whose outcome is unknown.
    const report = await fleetReport(dispatcher.callLog, '15m');
    expect(report.tools.find((t) => t.tool === 'test_pay')?.unknown).toBe(unknown);
    expect(report.tools.find((t) => t.tool === 'test_lookup')?.unknown).toBeUndefined();
  });

  it('a call its worker died on before noting it runs again once the death is noticed, not after the lock expiry', async () => {
    const executions = join(dir, 'die.log');
    await Promise.all(workers.map((w) => w.stop()));
    workers = await startTwoWorkers(executions, 4);
    // Their liveness threads beat, naming their consumers: what finds a job nobody noted.
    const redis = new Redis(server.url);
    await waitFor('both new workers’ liveness entries', async () => {
      const entries = Object.values(await redis.hgetall('toolq:liveness'));
      return entries.filter((e) => e.includes('default=')).length === 2;
    });
    redis.disconnect();
    const rerunsBefore = await interruptedCalls('rerun');
    const began = Date.now();
    // The tool kills its worker the moment it starts: no note of the job reached Redis.
    const result = await dispatcher.dispatch(
      [{ id: 'toolu_die', name: 'test_die_once', input: { label: 'die', ms: 0 } }],
      { timeoutMs: DEADLINE_MS },
    );
    const answeredMs = Date.now() - began;
    console.info(
      `delivery: an unnoted call answered ${answeredMs} ms after dispatch (its worker died at its start)`,
    );
    expect(result.calls[0]?.outcome).toBe('ok');
    expect(result.toolResults[0]?.content).toBe('survived die');
    const starts = readStarts(executions);
    expect(starts.map((s) => s.label)).toEqual(['die', 'die']);
    expect(new Set(starts.map((s) => s.key)).size).toBe(1);
    expect(starts[0]?.pid).not.toBe(starts[1]?.pid);
    // The dead-worker sweep moved it back (BullMQ's stalled check would not be counted here, and
    // would come only after the 30 s lock).
    expect(await interruptedCalls('rerun')).toBe(rerunsBefore + 1);
  });
});

async function interruptedCalls(action: 'rerun' | 'unknown'): Promise<number> {
  const counted = await dispatcher.registry.getSingleMetric('toolq_interrupted_calls_total')?.get();
  return counted?.values.find((v) => v.labels.action === action)?.value ?? 0;
}
