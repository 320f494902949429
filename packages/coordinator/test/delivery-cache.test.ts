/**
 * Shared results for identical calls (docs/delivery.md), across two coordinators: calls of a
 * `cache` tool with the same input in the same scope, arriving while one runs, wait for it instead
 * of running; those after it, within `ttlMs`, read its result. Every tool_use still gets its own
 * tool_result. Another app (scope `app`) runs its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWorker, type ToolqWorker } from '@toolq/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import deliveryTools, { readStarts } from '../../../test-support/delivery-tools.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { Dispatcher } from '../src/index.ts';

let server: RedisServer;
let coordinators: Dispatcher[] = [];
let workers: ToolqWorker[] = [];
let dir: string;
let executions: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-cache-'));
  executions = join(dir, 'starts.log');
  process.env.TOOLQ_TEST_EXECUTIONS = executions; // the in-process workers' tools record here
  server = await startRedisServer();
  workers = await Promise.all(
    ['w1', 'w2'].map((id) =>
      startWorker({ id, tools: deliveryTools, redisUrl: server.url, logger: testLogger() }),
    ),
  );
  coordinators = ['c1', 'c2'].map(
    (coordinatorId) => new Dispatcher({ redisUrl: server.url, coordinatorId, logger: testLogger() }),
  );
  await Promise.all(coordinators.map((c) => c.start()));
});

afterAll(async () => {
  await Promise.all(coordinators.map((c) => c.close()));
  await Promise.all(workers.map((w) => w.close()));
  await server?.stop();
  delete process.env.TOOLQ_TEST_EXECUTIONS;
  rmSync(dir, { recursive: true, force: true });
});

/** The workers' cache counters, summed: hit, miss, coalesced. */
async function cacheCounts(): Promise<Record<string, number>> {
  const counts: Record<string, number> = { hit: 0, miss: 0, coalesced: 0 };
  for (const w of workers) {
    const metric = await w.registry.getSingleMetric('toolq_cache_calls_total')?.get();
    for (const v of metric?.values ?? [])
      counts[String(v.labels.result)] = (counts[String(v.labels.result)] ?? 0) + v.value;
  }
  return counts;
}

const call = (id: string, label: string, ms = 3_000) => ({ id, name: 'test_cached', input: { label, ms } });

describe('a cache tool called alike from two coordinators', () => {
  it('runs once: calls in flight wait for it (coalesced), later ones read it (hit), each with its own tool_result', async () => {
    const [c1, c2] = coordinators;
    const first = c1?.dispatch([call('toolu_a1', 'x')], { timeoutMs: 30_000 });
    await waitFor('the first call running', () => readStarts(executions).some((s) => s.label === 'x'));
    // The same input with its keys in another order is the same call.
    const [a, b] = await Promise.all([
      first,
      c2?.dispatch(
        [call('toolu_b1', 'x'), { id: 'toolu_b2', name: 'test_cached', input: { ms: 3_000, label: 'x' } }],
        {
          timeoutMs: 30_000,
        },
      ),
    ]);
    expect(readStarts(executions).filter((s) => s.label === 'x')).toHaveLength(1);
    expect(a?.toolResults).toEqual([{ type: 'tool_result', tool_use_id: 'toolu_a1', content: 'cached x' }]);
    expect(b?.toolResults).toEqual([
      { type: 'tool_result', tool_use_id: 'toolu_b1', content: 'cached x' },
      { type: 'tool_result', tool_use_id: 'toolu_b2', content: 'cached x' },
    ]);
    expect(await cacheCounts()).toEqual({ hit: 0, miss: 1, coalesced: 2 });

    const later = await c1?.dispatch([call('toolu_a2', 'x')], { timeoutMs: 30_000 });
    expect(later?.toolResults).toEqual([
      { type: 'tool_result', tool_use_id: 'toolu_a2', content: 'cached x' },
    ]);
    expect(readStarts(executions).filter((s) => s.label === 'x')).toHaveLength(1);
    expect(await cacheCounts()).toEqual({ hit: 1, miss: 1, coalesced: 2 });

    // Scope `app`: another app's identical call runs on its own; another input too.
    await c2?.dispatch([call('toolu_o1', 'x')], { timeoutMs: 30_000, app: 'other' });
    await c2?.dispatch([call('toolu_y1', 'y', 10)], { timeoutMs: 30_000 });
    expect(readStarts(executions).filter((s) => s.label === 'x')).toHaveLength(2);
    expect(readStarts(executions).filter((s) => s.label === 'y')).toHaveLength(1);
    expect(await cacheCounts()).toEqual({ hit: 1, miss: 3, coalesced: 2 });
  });
});
