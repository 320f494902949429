/**
 * Bounding Dispatcher.start(): toolq's connections wait through a Redis outage for ever (BullMQ
 * needs maxRetriesPerRequest: null), so a wrong address would leave start() pending with no word.
 */
import { ToolqError } from '@toolq/shared';
import { describeRedis } from '@toolq/shared/internal';
import { DISPATCHER_DEFAULTS, type DispatcherOptions } from './options.ts';

export interface StartBound {
  ms: number;
  signal: AbortSignal | undefined;
  /** Where Redis was looked for, without a password (describeRedis). */
  address: string;
  /** No redisUrl or redis option was given: the address is the library's default. */
  defaulted: boolean;
  /** The last error the connection reported, if any (ECONNREFUSED, WRONGPASS, …). */
  lastError: () => string | undefined;
}

/** The bound of a Dispatcher's start(), from its options, but for the call's signal. */
export function startBound(
  options: DispatcherOptions,
  lastError: () => string | undefined,
): Omit<StartBound, 'signal'> {
  return {
    ms: options.startTimeoutMs ?? DISPATCHER_DEFAULTS.startTimeoutMs,
    address: describeRedis(options.redis ?? options.redisUrl),
    defaulted: options.redis === undefined && options.redisUrl === undefined,
    lastError,
  };
}

/** The work's outcome, or REDIS_UNAVAILABLE after `ms`, or CANCELLED when the signal aborts. */
export function startWithin(work: Promise<void>, bound: StartBound): Promise<void> {
  const where = () => {
    const last = bound.lastError();
    return (
      `Redis at ${bound.address}` +
      (bound.defaulted
        ? ' (the default: neither redisUrl nor redis was given; the library does not read REDIS_URL)'
        : '') +
      (last ? ` (last error: ${last})` : '')
    );
  };
  return new Promise((resolve, reject) => {
    const { signal } = bound;
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      done();
      reject(
        new ToolqError('CANCELLED', `start() was aborted while connecting to ${where()}`, {
          cause: signal?.reason,
        }),
      );
    };
    const timer = setTimeout(() => {
      done();
      reject(
        new ToolqError(
          'REDIS_UNAVAILABLE',
          `the Dispatcher could not start: no answer from ${where()} within ${bound.ms} ms (startTimeoutMs)`,
        ),
      );
    }, bound.ms);
    work.then(
      () => {
        done();
        resolve();
      },
      (err: unknown) => {
        done();
        reject(err);
      },
    );
    // After the work has its handlers: its rejection once the Dispatcher closes is not unhandled.
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}
