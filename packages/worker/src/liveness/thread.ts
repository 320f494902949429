/**
 * The liveness thread of a worker process (liveness.ts starts it): its own event loop and its own
 * Redis connection, so that it beats while the worker's main loop is busy. Beats every
 * `everyMs` with the last time the main loop ran (a Float64 the main thread updates).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createKeys, createRedis, removeLiveness, writeLiveness } from '@toolq/shared/internal';
import type { LivenessThreadData } from './liveness.ts';

const data = workerData as LivenessThreadData;
const keys = createKeys(data.prefix);
const redis = createRedis(data.redis);
// Errors are the main connection's to report; this one retries by itself (createRedis).
redis.on('error', () => undefined);
const loopAt = new Float64Array(data.loopAt);
const consumers = new Map(data.consumers);
let last = 0;
const beat = () => {
  const now = Date.now();
  writeLiveness(redis, keys, data.workerId, { beatAt: now, loopAt: loopAt[0] ?? now, consumers }).then(
    () => {
      last = now;
    },
    () => undefined,
  );
};
beat();
const timer = setInterval(beat, data.everyMs);
parentPort?.on('message', (message: unknown) => {
  if (isConsumer(message)) {
    consumers.set(message.consumer[0], message.consumer[1]);
    beat(); // named at once: a job it takes before the next beat is found too
    return;
  }
  if (message !== 'stop') return;
  clearInterval(timer);
  // Gone from the hash: a worker that left is not dead (its calls were finished or given back).
  removeLiveness(redis, keys, data.workerId)
    .catch(() => undefined)
    .finally(() => {
      redis.disconnect();
      parentPort?.postMessage({ stopped: true, lastBeat: last });
      parentPort?.close();
    });
});

function isConsumer(message: unknown): message is { consumer: [string, string] } {
  const consumer = (message as { consumer?: unknown } | null)?.consumer;
  return Array.isArray(consumer) && consumer.length === 2 && consumer.every((x) => typeof x === 'string');
}
