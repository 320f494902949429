/** Bounding a Redis round trip without failing: the batch's deadlines never wait on Redis. */
import { coerceError, withTimeout } from '@toolq/shared/internal';

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
