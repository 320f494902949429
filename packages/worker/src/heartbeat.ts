import type { Logger } from '@toolq/shared';
import {
  type Keys,
  type PublishedToolSet,
  publishWorker,
  type Redis,
  unpublishWorker,
  type WorkerInfo,
} from '@toolq/shared/internal';
import { WORKER_DEFAULTS } from './worker-options.ts';

/** Keeps this worker's catalog entry fresh; a Redis restart is healed by the next beat. */
export async function startHeartbeat(options: {
  redis: Redis;
  keys: Keys;
  logger: Logger;
  info: Omit<WorkerInfo, 'heartbeatAt'>;
}): Promise<{ stop(): Promise<void>; update(tools: WorkerInfo['tools']): void }> {
  const { redis, keys, logger } = options;
  let info = options.info;
  // The specs are written when they change, not at every beat (worker-registry.ts says why).
  const published: PublishedToolSet = {};
  const beat = () => publishWorker(redis, keys, { ...info, heartbeatAt: Date.now() }, published);
  await beat();
  const timer = setInterval(() => {
    beat().catch((err: Error) => logger.warn({ err: err.message }, 'heartbeat failed'));
  }, WORKER_DEFAULTS.heartbeatIntervalMs);
  timer.unref();
  let stopped = false;
  return {
    /** A changed tool set is published at once, not at the next beat. */
    update(tools) {
      info = { ...info, tools };
      if (stopped) return;
      beat().catch((err: Error) => logger.warn({ err: err.message }, 'heartbeat failed'));
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await unpublishWorker(redis, keys, info.id).catch(() => undefined);
    },
  };
}
