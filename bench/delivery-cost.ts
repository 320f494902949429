/**
 * What delivery (docs/delivery.md) costs a tool without `cache`, alone and quickly: Redis commands
 * per call (INFO commandstats) for echo calls in batches of 10 on 2 worker processes, and
 * benchmark 5's coordinator heap per pending call (bench/memory.ts). Both on a private
 * redis-server, with the load average written beside the figures.
 *
 *   pnpm exec tsx --conditions=toolq-source bench/delivery-cost.ts [calls=5000] [batches=10000] [rounds=1] [deadWorkerAfterMs]
 *
 * With deadWorkerAfterMs (2500 at least), the memory scenario's coordinator uses it, and
 * `interrupted` counts the calls of workers it took for dead (all of them were alive).
 *
 * Prints one JSON line per round.
 */
import { loadavg } from 'node:os';
import { Dispatcher } from '@toolq/coordinator';
import { createLogger } from '@toolq/shared';
import { Redis } from 'ioredis';
import { startRedisServer } from '../test-support/redis-server.ts';
import { measureMemory } from './memory.ts';
import { startToolqWorker } from './processes.ts';
import { parseCommandStats } from './redis-profile.ts';
import { echoBatch, runToolq } from './toolq-runner.ts';

const [calls = 5_000, batches = 10_000, rounds = 1, deadWorkerAfterMs = 0] = process.argv
  .slice(2)
  .map(Number);
const load = () => loadavg().map((x) => Math.round(x * 10) / 10);

const redis = await startRedisServer();
try {
  for (let round = 0; round < rounds; round++) {
    const loadBefore = load();
    const workers = await Promise.all(
      [0, 1].map(() => startToolqWorker({ redisUrl: redis.url, concurrency: 64 })),
    );
    const logger = createLogger({ name: 'delivery-cost', level: 'warn' });
    const dispatcher = new Dispatcher({ redisUrl: redis.url, logger });
    await dispatcher.start();
    let perCall: Record<string, number> = {};
    let commands = 0;
    try {
      for (let i = 0; i < 20; i++) await runToolq(dispatcher, echoBatch(10, i), 30_000); // warm-up
      const admin = new Redis(redis.url);
      await admin.config('RESETSTAT');
      await (async () => {
        const inFlight = 50;
        let next = 0;
        await Promise.all(
          Array.from({ length: inFlight }, async () => {
            while (next < calls / 10) await runToolq(dispatcher, echoBatch(10, next++), 30_000);
          }),
        );
      })();
      const stats = parseCommandStats(await admin.info('commandstats')).filter(
        (s) => !['info', 'config|resetstat'].includes(s.command),
      );
      admin.disconnect();
      commands = stats.reduce((n, s) => n + s.calls, 0) / calls;
      perCall = Object.fromEntries(stats.map((t) => [t.command, Math.round((t.calls / calls) * 100) / 100]));
    } finally {
      await dispatcher.close();
      await Promise.all(workers.map((w) => w.stop()));
    }
    const memory =
      batches > 0
        ? await measureMemory(redis.url, {
            batches,
            sleepMs: 8_000,
            workers: 2,
            ...(deadWorkerAfterMs ? { deadWorkerAfterMs } : {}),
          })
        : undefined;
    // Where the memory scenario's jobs ended (a run that answers calls as timed out says why here).
    const admin = new Redis(redis.url);
    const queue = (k: string) => `toolqmem:{default}:${k}`;
    const failed = await admin.zrange(queue('failed'), '0', '0');
    const ended = {
      completed: await admin.zcard(queue('completed')),
      failed: await admin.zcard(queue('failed')),
      failedReason: failed[0] ? await admin.hget(queue(failed[0]), 'failedReason') : null,
    };
    admin.disconnect();
    process.stdout.write(
      `${JSON.stringify({
        round,
        loadBefore,
        loadAfter: load(),
        commandsPerCall: Math.round(commands * 100) / 100,
        perCall,
        ...(memory
          ? {
              bytesPerPendingCall: Math.round(memory.bytesPerPendingCall),
              answerAllMs: Math.round(memory.totalMs),
              lost: memory.lost,
              errors: memory.errors,
              interrupted: memory.interrupted,
              ended,
            }
          : {}),
      })}\n`,
    );
  }
} finally {
  await redis.stop();
}
