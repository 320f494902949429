/**
 * Starts the worker's liveness thread (thread.ts; @toolq/shared liveness.ts says why): a beat
 * independent of this process's event loop, with the last time that loop ran. Should the thread
 * not start, the worker runs on and the coordinators judge it by its heartbeat alone, as workers
 * without a thread are judged (logged).
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from '@toolq/shared';
import { type Keys, type Redis, type RedisTarget, removeLiveness } from '@toolq/shared/internal';

export interface LivenessThreadData {
  redis: RedisTarget;
  prefix: string;
  workerId: string;
  everyMs: number;
  /** A SharedArrayBuffer of one Float64: epoch ms when the main event loop last ran. */
  loopAt: SharedArrayBuffer;
  /** The worker's BullMQ consumers so far: [queue, BullMQ worker id]; later ones come by message. */
  consumers: [string, string][];
}

/** How often the main loop notes that it ran. */
const LOOP_TICK_MS = 250;

export function startLiveness(options: {
  redis: RedisTarget;
  prefix: string;
  workerId: string;
  everyMs: number;
  logger: Logger;
  /** The worker's own connection: removes the thread's entry should the thread end early. */
  connection: Redis;
  keys: Keys;
  /** The worker's BullMQ consumers so far: queue (without hash-tag braces) → BullMQ worker id. */
  consumers: ReadonlyMap<string, string>;
}): {
  /** Names a consumer started later (a tool queue's, when the tool gets a limit). */
  addConsumer(queue: string, bullWorkerId: string): void;
  stop(): Promise<void>;
} {
  const { logger, connection, keys, consumers, ...threadOptions } = options;
  const loopAt = new SharedArrayBuffer(8);
  const loop = new Float64Array(loopAt);
  loop[0] = Date.now();
  const tick = setInterval(() => {
    loop[0] = Date.now();
  }, LOOP_TICK_MS);
  tick.unref();
  const thread = spawnThread({ ...threadOptions, loopAt, consumers: [...consumers] });
  let failed = false;
  let stopping = false;
  // A thread that ended early leaves its last beat behind, which would read as a death: removed.
  const ended = (why: string) => {
    if (stopping || failed) return;
    failed = true;
    logger.warn(
      { err: why },
      'the liveness thread ended: coordinators judge this worker by its heartbeat alone (a busy event loop may be taken for dead)',
    );
    removeLiveness(connection, keys, options.workerId).catch(() => undefined);
  };
  thread.on('error', (err) => ended(err.message));
  thread.on('exit', (code) => ended(`exited with code ${code}`));
  thread.unref();
  return {
    addConsumer(queue, bullWorkerId) {
      if (!failed && !stopping) thread.postMessage({ consumer: [queue, bullWorkerId] });
    },
    async stop() {
      clearInterval(tick);
      if (failed) return;
      stopping = true;
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
  // Resolved here (the workspace's tsx), not by the thread, whose eval code has no module of its
  // own; its ESM entry (index.mjs beside the CommonJS one require finds: that one does not hook
  // ESM imports), since vitest's transform has no import.meta.resolve.
  const tsx = pathToFileURL(
    createRequire(here)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs'),
  ).href;
  const code = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(thread)}); });`;
  return new Worker(code, { eval: true, workerData });
}
