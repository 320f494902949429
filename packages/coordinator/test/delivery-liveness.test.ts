/**
 * Liveness apart from the worker's event loop (docs/delivery.md, "How long a dead worker takes to
 * notice"), with real worker processes whose tools record every start: a worker whose event loop
 * a tool blocks for longer than `deadWorkerAfterMs` is not taken for dead (its liveness thread
 * still beats), a frozen worker (SIGSTOP: every thread stops) is noticed within the short bound,
 * and a loop blocked past `stalledWorkerAfterMs` is taken for dead then.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readStarts } from '../../../test-support/delivery-tools.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { Dispatcher } from '../src/index.ts';

const TOOLS = fileURLToPath(new URL('../../../test-support/delivery-tools.ts', import.meta.url));
const DEADLINE_MS = 90_000;
const DEAD_AFTER_MS = 3_000;

let server: RedisServer;
let dispatcher: Dispatcher | undefined;
let workers: WorkerProcess[] = [];
let dir: string;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-liveness-'));
  server = await startRedisServer();
});

afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop('SIGKILL')));
  workers = [];
  await dispatcher?.close();
  dispatcher = undefined;
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function start(stalledWorkerAfterMs: number, count: number) {
  const executions = join(dir, 'starts.log');
  dispatcher = new Dispatcher({
    redisUrl: server.url,
    logger: testLogger(),
    sweepIntervalMs: 250,
    deadWorkerAfterMs: DEAD_AFTER_MS,
    stalledWorkerAfterMs,
  });
  await dispatcher.start();
  // One slot each: each worker takes one job of a batch (chunks of calls run at once).
  workers = await Promise.all(
    Array.from({ length: count }, () =>
      startWorkerProcess({
        redisUrl: server.url,
        tools: TOOLS,
        concurrency: 1,
        env: { TOOLQ_TEST_EXECUTIONS: executions },
      }),
    ),
  );
  const d = dispatcher;
  const redis = new Redis(server.url);
  try {
    await waitFor(`${count} workers in the catalog, each beating from its thread`, async () => {
      await d.catalog.refresh();
      const beating = await redis.hlen('toolq:liveness');
      return d.catalog.liveWorkers().length === count && beating === count;
    });
  } finally {
    redis.disconnect();
  }
  return { dispatcher: d, executions };
}

async function interrupted(d: Dispatcher): Promise<number> {
  const counted = await d.registry.getSingleMetric('toolq_interrupted_calls_total')?.get();
  return (counted?.values ?? []).reduce((n, v) => n + v.value, 0);
}

const pidOf = (w: WorkerProcess | undefined) => w?.child.pid ?? -1;

describe('a worker whose event loop a tool blocks', () => {
  it(`is not taken for dead after deadWorkerAfterMs (${DEAD_AFTER_MS} ms): its calls run once and answer ok`, async () => {
    const { dispatcher: d, executions } = await start(30_000, 2);
    // Each worker's only slot takes one call, which blocks its event loop for 9 s: three times
    // the bound, so its heartbeat (written by that loop) is late by far.
    const uses = [
      { id: 'toolu_pay', name: 'test_spin_pay', input: { label: 'pay', ms: 9_000 } },
      { id: 'toolu_look', name: 'test_spin', input: { label: 'look', ms: 9_000 } },
    ];
    const result = await d.dispatch(uses, { timeoutMs: DEADLINE_MS });
    const starts = readStarts(executions);
    expect(new Set(starts.map((s) => s.pid))).toEqual(new Set(workers.map(pidOf)));
    for (const [index, use] of uses.entries()) {
      expect(
        starts.filter((s) => s.label === use.input.label),
        use.input.label,
      ).toHaveLength(1);
      expect(result.calls[index]?.outcome, use.input.label).toBe('ok');
    }
    expect(await interrupted(d)).toBe(0);
  });

  it('is taken for dead once the loop has not run for stalledWorkerAfterMs', async () => {
    const STALLED_MS = 8_000;
    const SPIN_MS = 25_000;
    const { dispatcher: d, executions } = await start(STALLED_MS, 1);
    const sent = Date.now();
    const result = await d.dispatch(
      [{ id: 'toolu_pay', name: 'test_spin_pay', input: { label: 'pay', ms: SPIN_MS } }],
      { timeoutMs: DEADLINE_MS },
    );
    const answeredMs = Date.now() - sent;
    console.info(`liveness: a loop blocked for good answered after ${answeredMs} ms (stalled ${STALLED_MS})`);
    expect(result.calls[0]?.outcome).toBe('unknown');
    expect(String(result.toolResults[0]?.content)).toMatch(/outcome unknown: .*interrupted after it started/);
    // Noticed while the tool still blocked its worker, not when it ended.
    expect(answeredMs).toBeLessThan(SPIN_MS);
    expect(answeredMs).toBeGreaterThanOrEqual(STALLED_MS);
    expect(readStarts(executions).filter((s) => s.label === 'pay')).toHaveLength(1);
  });
});

describe('a frozen worker (SIGSTOP)', () => {
  it('is noticed within deadWorkerAfterMs: at-most-once calls answer unknown, at-least-once ones run again', async () => {
    const STALLED_MS = 120_000; // far away: only the short bound can answer in time
    const { dispatcher: d, executions } = await start(STALLED_MS, 2);
    const uses = [
      { id: 'toolu_pay', name: 'test_pay', input: { label: 'pay', ms: 4_000 } },
      { id: 'toolu_look', name: 'test_lookup', input: { label: 'look', ms: 4_000 } },
      { id: 'toolu_pay2', name: 'test_pay', input: { label: 'pay2', ms: 4_000 } },
      { id: 'toolu_look2', name: 'test_lookup', input: { label: 'look2', ms: 4_000 } },
    ];
    const pending = d.dispatch(uses, { timeoutMs: DEADLINE_MS });
    await waitFor('every call started', () => readStarts(executions).length === uses.length, {
      timeoutMs: 30_000,
    });
    const [frozen, survivor] = workers;
    frozen?.child.kill('SIGSTOP');
    const frozenAt = Date.now();
    const result = await pending;
    const answeredMs = Date.now() - frozenAt;
    console.info(`liveness: batch answered ${answeredMs} ms after the SIGSTOP (dead ${DEAD_AFTER_MS})`);
    const starts = readStarts(executions);
    const onFrozen = uses.filter((u) => starts.find((s) => s.label === u.input.label)?.pid === pidOf(frozen));
    expect(onFrozen.length).toBeGreaterThan(0);
    for (const [index, use] of uses.entries()) {
      const mine = starts.filter((s) => s.label === use.input.label);
      const call = result.calls[index];
      if (!onFrozen.includes(use)) {
        expect(mine, use.input.label).toHaveLength(1);
        expect(call?.outcome).toBe('ok');
      } else if (use.name === 'test_pay') {
        expect(mine, use.input.label).toHaveLength(1);
        expect(call?.outcome).toBe('unknown');
      } else {
        expect(
          mine.map((s) => s.pid),
          use.input.label,
        ).toEqual([pidOf(frozen), pidOf(survivor)]);
        expect(call?.outcome).toBe('ok');
      }
    }
    // The short bound, not the long one (nor the deadline).
    expect(answeredMs).toBeLessThan(STALLED_MS / 2);
  });
});
