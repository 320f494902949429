import { Redis, type RedisOptions } from 'ioredis';

export type { Redis } from 'ioredis';

/**
 * A Redis connection for toolq. `maxRetriesPerRequest: null` is what BullMQ requires, and it
 * means commands wait through a Redis restart instead of failing; deadlines are enforced by timers
 * in the coordinator, never by waiting on Redis.
 */
export function createRedis(url: string | undefined, options: RedisOptions = {}): Redis {
  const base: RedisOptions = {
    maxRetriesPerRequest: null,
    // Reconnect quickly after a Redis restart, backing off to at most 1 s between tries.
    retryStrategy: (times) => Math.min(50 * times, 1000),
    ...options,
  };
  return url ? new Redis(url, base) : new Redis(base);
}

/** Closes a connection whatever its state; never throws (used on shutdown paths). */
export async function closeRedis(redis: Redis): Promise<void> {
  try {
    if (redis.status === 'end') return;
    if (redis.status === 'ready') await redis.quit();
    else redis.disconnect();
  } catch {
    redis.disconnect();
  }
}

/** Where to read `redis-server`'s own address from a URL, for messages that name it. */
export function describeRedis(url: string | undefined): string {
  if (!url) return 'redis://127.0.0.1:6379';
  try {
    const u = new URL(url);
    u.password = '';
    u.username = '';
    return u.toString();
  } catch {
    return '(unparseable REDIS_URL)';
  }
}
