/**
 * Racing a promise against an AbortSignal or a time limit, in one place. Neither stops the work:
 * it goes on in the background and nothing waits for it any more (its outcome is still handled,
 * so a late rejection is never an unhandled one).
 */

/**
 * Settles as `work` does, or rejects with `reason(signal)` (default: the signal's reason) as soon
 * as the signal aborts, at once if it has already.
 */
export function raceSignal<T>(
  work: Promise<T>,
  signal: AbortSignal | undefined,
  reason: (signal: AbortSignal) => unknown = (s) => s.reason,
): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(reason(signal));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * Settles as `work` does, or after `ms` as `onTimeout` says: with what it returns, or rejected
 * with what it throws. The timer is cleared when the work settles first; `unref` lets the process
 * exit while only this timer is left.
 */
export function withTimeout<T, U>(
  work: Promise<T>,
  ms: number,
  onTimeout: () => U,
  options: { unref?: boolean } = {},
): Promise<T | U> {
  return new Promise<T | U>((resolve, reject) => {
    const timer = setTimeout(() => {
      try {
        resolve(onTimeout());
      } catch (err) {
        reject(err);
      }
    }, ms);
    if (options.unref) timer.unref();
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
