/**
 * `pnpm tsx --conditions=toolq-source bench/job-history-memory.ts`: what the queue admin page's
 * recent history (completed jobs kept, TOOLQ_JOB_HISTORY_MS / _COUNT) costs in Redis. Sends the
 * same calls through a Dispatcher that removes completed jobs at once and one that keeps them, on
 * a private redis-server each, and reports the difference in `used_memory` per call, for small
 * inputs, inputs at the 4 KiB the worker keeps, larger ones (cut to it), and calls with a context
 * (dropped). Results are in docs/tool-sets.md ("Queue admin page").
 */
import { loadavg } from 'node:os';
import { Dispatcher } from '@toolq/coordinator';
import { startWorker } from '@toolq/worker';
import diagnostics from '@toolq/worker/diagnostics';
import { Redis } from 'ioredis';
import { testLogger } from '../test-support/logger.ts';
import { startRedisServer } from '../test-support/redis-server.ts';

const CALLS = 600;

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

async function measure(
  keep: boolean,
  batch: number,
  input: unknown,
  context: Record<string, unknown> | undefined,
) {
  const server = await startRedisServer();
  const admin = new Redis(server.url);
  const worker = await startWorker({ tools: diagnostics, redisUrl: server.url, logger: testLogger() });
  const dispatcher = new Dispatcher({
    redisUrl: server.url,
    logger: testLogger(),
    // Retention of batch records at its least, so that only the kept jobs differ.
    batchRetentionMs: 1,
    ...(keep ? { jobHistoryMs: 3600_000, jobHistoryCount: 100_000 } : { jobHistoryMs: 0 }),
  });
  await dispatcher.start();
  try {
    // One warm-up batch: the queues' own keys exist before the first reading.
    await dispatcher.dispatch([{ id: 'warm', name: 'diag_echo', input: { value: 1 } }]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = await usedMemory(admin);
    for (let sent = 0; sent < CALLS; sent += batch) {
      const uses = Array.from({ length: batch }, (_, i) => ({
        id: `c${sent + i}`,
        name: 'diag_echo',
        input,
      }));
      const result = await dispatcher.dispatch(uses, context ? { context } : {});
      if (result.toolResults.some((r) => r.is_error)) throw new Error('a call failed');
    }
    // Batch records expire after 1 ms; let Redis reap them before reading.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const after = await usedMemory(admin);
    // The warm-up's job is kept too, and was there before the first reading.
    const completed = Number(await admin.zcard('toolq:{default}:completed')) - (keep ? 1 : 0);
    return { bytes: after - before, completed };
  } finally {
    await dispatcher.close();
    await worker.close();
    admin.disconnect();
    await server.stop();
  }
}

const cases: [string, number, unknown, Record<string, unknown> | undefined][] = [
  ['1 call a job, small input ({"value":"hello"})', 1, { value: 'hello' }, undefined],
  [
    '1 call a job, small input + 200-byte context (dropped)',
    1,
    { value: 'hello' },
    { note: 'x'.repeat(190) },
  ],
  ['1 call a job, 4,000-character input (kept whole)', 1, { value: 'x'.repeat(4_000) }, undefined],
  ['1 call a job, 40,000-character input (cut to 4 KiB)', 1, { value: 'x'.repeat(40_000) }, undefined],
  ['batches of 48 (chunks of 16 calls), small input', 48, { value: 'hello' }, undefined],
];
console.log(`job history memory: ${CALLS} calls; load ${loadavg()[0]?.toFixed(1)}`);
for (const [label, batch, input, context] of cases) {
  const removed = await measure(false, batch, input, context);
  const kept = await measure(true, batch, input, context);
  const extra = kept.bytes - removed.bytes;
  console.log(
    `${label}: ${kept.completed} jobs kept, ${Math.round(extra / kept.completed)} bytes a kept job, ` +
      `${Math.round(extra / CALLS)} bytes a call`,
  );
}
process.exit(0);
