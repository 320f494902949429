/** Bounding a Redis round trip without failing: the batch's deadlines never wait on Redis. */
import { coerceError, type Redis, readResults, withTimeout } from '@toolq/shared/internal';
import type { LastLook } from '../barrier.ts';
import { DISPATCHER_DEFAULTS } from './options.ts';
import type { PendingBatches } from './pending.ts';

/** Redis gave no answer in time (as opposed to answering with an error). */
export class NoAnswer extends Error {}

/** The promise's value, or the Error it failed with, or a NoAnswer after `ms`. */
export function settleWithin<T>(promise: Promise<T>, ms: number): Promise<T | Error> {
  return withTimeout(
    promise.catch((err: unknown) => coerceError(err)),
    ms,
    () => new NoAnswer(`Redis did not answer within ${ms} ms`),
  );
}

/**
 * The barrier's last look before it answers a call as timed out: the results already in the
 * batch's record, read within DISPATCHER_DEFAULTS.lastLookMs (nothing when Redis is slower).
 */
export function lastLookIn(pending: PendingBatches, redis: Redis): LastLook {
  return (barrier, indexes) => {
    const entry = pending.get(barrier.uid);
    if (!entry) return Promise.resolve(new Map());
    const read = readResults(redis, pending.recordKey(entry), indexes);
    return settleWithin(read, DISPATCHER_DEFAULTS.lastLookMs).then((found) =>
      found instanceof Error ? new Map() : found,
    );
  };
}
