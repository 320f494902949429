/**
 * Starts the worker's liveness thread (thread.ts; @toolq/shared liveness.ts says why): a beat
 * independent of this process's event loop, with the last time that loop ran. Should the thread
 * not start, the worker runs on and the coordinators judge it by its heartbeat alone, as workers
 * without a thread are judged (logged).
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '@toolq/shared';
import type { RedisTarget } from '@toolq/shared/internal';

export interface LivenessThreadData {
  redis: RedisTarget;
  prefix: string;
  workerId: string;
  everyMs: number;
  /** A SharedArrayBuffer of one Float64: epoch ms when the main event loop last ran. */
  loopAt: SharedArrayBuffer;
}

/** How often the main loop notes that it ran. */
const LOOP_TICK_MS = 250;

export function startLiveness(options: {
  redis: RedisTarget;
  prefix: string;
  workerId: string;
  everyMs: number;
  logger: Logger;
}): { stop(): Promise<void> } {
  const { logger } = options;
  const loopAt = new SharedArrayBuffer(8);
  const loop = new Float64Array(loopAt);
  loop[0] = Date.now();
  const tick = setInterval(() => {
    loop[0] = Date.now();
  }, LOOP_TICK_MS);
  tick.unref();
  const data: LivenessThreadData = { ...options, loopAt };
  delete (data as Partial<{ logger: Logger }>).logger;
  const thread = spawnThread(data);
  let failed = false;
  thread.on('error', (err) => {
    failed = true;
    logger.warn(
      { err: err.message },
      'the liveness thread failed: coordinators judge this worker by its heartbeat alone (a busy event loop may be taken for dead)',
    );
  });
  thread.unref();
  return {
    async stop() {
      clearInterval(tick);
      if (failed) return;
      const stopped = new Promise<void>((resolve) => {
        thread.once('exit', () => resolve());
        setTimeout(resolve, 2_000).unref();
      });
      thread.postMessage('stop');
      await stopped;
      await thread.terminate();
    },
  };
}

/**
 * The built thread.js; from the sources (the workspace's tests and tsx runs) thread.ts through
 * tsx, whose loader a worker thread does not inherit from its process.
 */
function spawnThread(workerData: LivenessThreadData): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./thread.js', here), { workerData });
  const thread = new URL('./thread.ts', here).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(thread)}); })`;
  return new Worker(code, { eval: true, workerData });
}
