/** Bounding a Redis round trip without failing: the batch's deadlines never wait on Redis. */
import { coerceError } from '@toolq/shared/internal';

/** Redis gave no answer in time (as opposed to answering with an error). */
export class NoAnswer extends Error {}

/** The promise's value, or the Error it failed with, or a NoAnswer after `ms`. */
export function settleWithin<T>(promise: Promise<T>, ms: number): Promise<T | Error> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(new NoAnswer(`Redis did not answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        resolve(coerceError(err));
      },
    );
  });
}
