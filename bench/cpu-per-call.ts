/**
 * CPU per call of the Dispatcher and one worker process, alone and quickly: `rounds` of 3,000
 * batches of 10 `diag_echo` calls sent at once, on a private redis-server. With `--profile <dir>`
 * the worker writes V8 CPU profiles there (`<dir>/worker`); run this script itself under
 * `node --cpu-prof` for the coordinator's. Made to compare commits on one machine: run it in a git
 * worktree of each, one after the other (docs/benchmarks.md's comparison was measured so).
 *
 *   pnpm exec tsx --conditions=toolq-source bench/cpu-per-call.ts [rounds=4] [--profile <dir>]
 *
 * Prints one JSON line per round (the first one warms up).
 */
import { Dispatcher } from '@toolq/coordinator';
import { createLogger } from '@toolq/shared';
import { startRedisServer } from '../test-support/redis-server.ts';
import { startWorkerProcess } from '../test-support/worker-process.ts';
import { processCpuMs } from './cpu.ts';

const BATCHES = 3_000;
const CALLS_PER_BATCH = 10;

const args = process.argv.slice(2);
const profileAt = args.indexOf('--profile');
const profileDir = profileAt >= 0 ? args[profileAt + 1] : undefined;
if (profileAt >= 0 && !profileDir) throw new Error('--profile needs a directory');
const positional = args.filter((_, i) => profileAt < 0 || (i !== profileAt && i !== profileAt + 1));
const rounds = Number(positional[0] ?? 4);
if (!Number.isInteger(rounds) || rounds < 1)
  throw new Error(`rounds must be a whole number ≥ 1, not ${rounds}`);

const calls = BATCHES * CALLS_PER_BATCH;
const batch = (k: number) =>
  Array.from({ length: CALLS_PER_BATCH }, (_, i) => ({
    id: `toolu_${i}`,
    name: 'diag_echo',
    input: { value: `${k}:${i}` },
  }));

const redis = await startRedisServer();
const worker = await startWorkerProcess({
  redisUrl: redis.url,
  tools: 'diagnostics',
  concurrency: 64,
  env: { TOOLQ_LOG_LEVEL: 'warn' },
  nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}/worker`] : [],
});
const dispatcher = new Dispatcher({
  redisUrl: redis.url,
  logger: createLogger({ name: 'cpu', level: 'warn' }),
});
try {
  await dispatcher.start();
  await dispatcher.catalog.refresh();
  for (let round = 0; round < rounds; round++) {
    const coordinatorBefore = processCpuMs(process.pid);
    const workerBefore = processCpuMs(worker.child.pid);
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: BATCHES }, (_, k) => dispatcher.dispatch(batch(k), { timeoutMs: 60_000 })),
    );
    const ms = performance.now() - started;
    const perCall = (cpuMs: number) => Math.round((cpuMs * 1000) / calls);
    console.log(
      JSON.stringify({
        round,
        callsPerSecond: Math.round((calls / ms) * 1000),
        coordinatorUsPerCall: perCall(processCpuMs(process.pid) - coordinatorBefore),
        workerUsPerCall: perCall(processCpuMs(worker.child.pid) - workerBefore),
        notOk: results.flatMap((r) => r.calls).filter((c) => c.outcome !== 'ok').length,
      }),
    );
  }
} finally {
  await dispatcher.close();
  await worker.stop(); // a graceful stop: the worker writes its profile as it exits
  await redis.stop();
}
