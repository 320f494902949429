/**
 * Benchmark 5, the coordinator side, in a process of its own so that its heap is the Dispatcher's
 * alone: start a Dispatcher, put `batches` single-call diag_sleep batches in flight at once, and
 * once every job is in the queue measure heapUsed after global.gc(); then wait for every answer.
 *
 *   node --expose-gc --import tsx bench/memory-child.ts '<json MemoryChildInput>'
 *
 * Prints one JSON line (MemoryChildOutput) on stdout.
 */
import { Dispatcher } from '@toolq/coordinator';
import { createLogger } from '@toolq/shared';
import { Redis } from 'ioredis';

export interface MemoryChildInput {
  redisUrl: string;
  prefix: string;
  batches: number;
  sleepMs: number;
  /** The Dispatcher's deadWorkerAfterMs (default: its own): low, to see whether overload is taken for death. */
  deadWorkerAfterMs?: number;
}

export interface MemoryChildOutput {
  batches: number;
  sleepMs: number;
  heapBaseline: number;
  heapPending: number;
  /** Dispatcher.inFlight when the heap was measured. */
  pendingAtMeasure: number;
  bytesPerPendingCall: number;
  /** Submitting every batch until every job was in Redis. */
  enqueueMs: number;
  /** Submitting every batch until the last answer. */
  totalMs: number;
  latenciesMs: number[];
  lost: number;
  errors: number;
  rssPending: number;
  /** Calls of workers taken for dead (toolq_interrupted_calls_total): none were, all were alive. */
  interrupted: number;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('memory-child: run with node --expose-gc\n');
  process.exit(2);
}
const fullGc = async () => {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
};

const input = JSON.parse(process.argv[2] ?? '{}') as MemoryChildInput;
const logger = createLogger({ name: 'bench-memory', level: 'warn' });
const dispatcher = new Dispatcher({
  redisUrl: input.redisUrl,
  prefix: input.prefix,
  logger,
  ...(input.deadWorkerAfterMs ? { deadWorkerAfterMs: input.deadWorkerAfterMs } : {}),
});
await dispatcher.start();
const redis = new Redis(input.redisUrl);
const queueKey = (k: string) => `${input.prefix}:{default}:${k}`;
const inQueue = async () => {
  const res = await redis
    .multi()
    .llen(queueKey('wait'))
    .llen(queueKey('active'))
    .zcard(queueKey('prioritized'))
    .exec();
  return (res ?? []).reduce((n, [, v]) => n + Number(v ?? 0), 0);
};

// Warm up every code path and connection first, so the baseline holds them already.
await Promise.all(
  Array.from({ length: 50 }, (_, i) =>
    dispatcher
      .dispatch([{ id: 'toolu_0', name: 'diag_sleep', input: { ms: 1 } }], { timeoutMs: 30_000 })
      .then(() => i),
  ),
);
await fullGc();
const heapBaseline = process.memoryUsage().heapUsed;

const timeoutMs = input.sleepMs + 120_000;
const t0 = performance.now();
const pending = Array.from({ length: input.batches }, () =>
  dispatcher.dispatch([{ id: 'toolu_0', name: 'diag_sleep', input: { ms: input.sleepMs } }], { timeoutMs }),
);
while ((await inQueue()) < input.batches && performance.now() - t0 < input.sleepMs) {
  await new Promise((resolve) => setTimeout(resolve, 20));
}
const enqueueMs = performance.now() - t0;
await fullGc();
const heapPending = process.memoryUsage().heapUsed;
const rssPending = process.memoryUsage().rss;
const pendingAtMeasure = dispatcher.inFlight;

const results = await Promise.all(pending);
const totalMs = performance.now() - t0;
let lost = 0;
let errors = 0;
for (const r of results) {
  for (const c of r.calls) {
    if (c.outcome === 'timeout') lost++;
    else if (c.outcome !== 'ok') errors++;
  }
}
const counted = await dispatcher.registry.getSingleMetric('toolq_interrupted_calls_total')?.get();
const interrupted = (counted?.values ?? []).reduce((n, v) => n + v.value, 0);
const output: MemoryChildOutput = {
  batches: input.batches,
  sleepMs: input.sleepMs,
  heapBaseline,
  heapPending,
  pendingAtMeasure,
  bytesPerPendingCall: (heapPending - heapBaseline) / Math.max(1, pendingAtMeasure),
  enqueueMs,
  totalMs,
  latenciesMs: results.map((r) => r.calls[0]?.latencyMs ?? Number.NaN),
  lost,
  errors,
  rssPending,
  interrupted,
};
process.stdout.write(`${JSON.stringify(output)}\n`);
await dispatcher.close();
redis.disconnect();
process.exit(0);
