/**
 * Which errors mean "Redis cannot serve us right now" (so a caller gets 503 and may retry), as
 * opposed to a bug: refused or lost connections, wrong credentials, a full or read-only Redis, a
 * cluster that cannot route.
 */
import { ToolqError } from './errors.ts';
import { withTimeout } from './race.ts';

const REDIS_REPLY = /^(NOAUTH|WRONGPASS|OOM|READONLY|CLUSTERDOWN|LOADING|MASTERDOWN|TRYAGAIN|BUSY|MISCONF)\b/;
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EPIPE',
  'EHOSTUNREACH',
]);

export function isRedisFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_CODES.has(code)) return true;
  if (err.name === 'ReplyError' && REDIS_REPLY.test(err.message)) return true;
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    err.message === 'Connection is closed.' ||
    err.message.startsWith("Stream isn't writeable") ||
    err.name === 'ClusterAllFailedError'
  );
}

/**
 * The work's outcome, or a `REDIS_UNAVAILABLE` error after `ms`: toolq's connections wait through
 * an outage (BullMQ needs maxRetriesPerRequest: null), a request that someone waits on must not.
 */
export function withinRedis<T>(work: Promise<T>, ms: number): Promise<T> {
  return withTimeout(work, ms, () => {
    throw new ToolqError('REDIS_UNAVAILABLE', `Redis did not answer within ${ms} ms`);
  });
}

/** A Redis failure in words for the person who reads it: a full Redis is named as such. */
export function describeRedisFailure(err: Error): string {
  if (/^OOM\b/.test(err.message))
    return `Redis is out of memory (${err.message}); free memory or raise maxmemory`;
  return err.message;
}
