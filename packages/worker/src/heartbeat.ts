import type { Logger } from '@toolq/shared';
import {
  type Keys,
  type PublishedToolSet,
  publishPoolMode,
  publishWorker,
  type Redis,
  type ToolSetMemory,
  unpublishWorker,
  WAITING_POOL_REFRESH_MS,
  type WorkerInfo,
} from '@toolq/shared/internal';
import { WORKER_DEFAULTS } from './worker-options.ts';

/**
 * Keeps this worker's catalog entry fresh; a Redis restart is healed by the next beat. In a pool
 * whose calls wait for workers (scale from zero), also keeps the pool's remembered tools: this
 * worker's added at start and when they change, and the entry re-checked every
 * WAITING_POOL_REFRESH_MS, so that tools no worker serves any more are forgotten.
 */
export async function startHeartbeat(options: {
  redis: Redis;
  keys: Keys;
  logger: Logger;
  info: Omit<WorkerInfo, 'heartbeatAt'>;
  waitForWorkers: boolean;
}): Promise<{ stop(): Promise<void>; update(tools: WorkerInfo['tools']): void }> {
  const { redis, keys, logger, waitForWorkers } = options;
  let info = options.info;
  // The specs are written when they change, not at every beat (worker-registry.ts says why).
  const published: PublishedToolSet = {};
  const toolSets: ToolSetMemory = new Map(); // the pool's other workers, read for the waiting pool
  const beat = () => publishWorker(redis, keys, { ...info, heartbeatAt: Date.now() }, published);
  const poolMode = () =>
    publishPoolMode(redis, keys, info.pool, waitForWorkers, info.tools, info, { toolSets });
  const warn = (what: string) => (err: Error) => logger.warn({ err: err.message }, what);
  await poolMode();
  await beat();
  const timer = setInterval(() => {
    beat().catch(warn('heartbeat failed'));
  }, WORKER_DEFAULTS.heartbeatIntervalMs);
  timer.unref();
  const poolTimer = waitForWorkers
    ? setInterval(() => {
        poolMode().catch(warn('could not refresh the waiting pool'));
      }, WAITING_POOL_REFRESH_MS)
    : undefined;
  poolTimer?.unref();
  let stopped = false;
  return {
    /** A changed tool set is published at once, not at the next beat. */
    update(tools) {
      info = { ...info, tools };
      if (stopped) return;
      beat().catch(warn('heartbeat failed'));
      if (waitForWorkers) poolMode().catch(warn('could not refresh the waiting pool'));
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      clearInterval(poolTimer);
      await unpublishWorker(redis, keys, info.id).catch(() => undefined);
    },
  };
}
