/**
 * What a tool throws when the service it calls says "too many requests" (an HTTP 429, a quota):
 * no call of the tool starts anywhere in the fleet for `retryAfterMs`, and this call runs again
 * after that when its deadline allows (else it is answered as not started, saying when it could).
 */
export class RateLimitedError extends Error {
  override name = 'RateLimitedError';
  readonly retryAfterMs: number;

  constructor(message: string, options: { retryAfterMs: number; cause?: unknown }) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    const ms = options?.retryAfterMs;
    if (!(typeof ms === 'number' && Number.isFinite(ms) && ms >= 0)) {
      throw new TypeError(
        `RateLimitedError: retryAfterMs must be a number of milliseconds >= 0 (the service's Retry-After), got ${String(ms)}`,
      );
    }
    this.retryAfterMs = Math.ceil(ms);
  }
}

/** True for a RateLimitedError, also one from another copy of @toolq/shared (a tool module's own). */
export function isRateLimitedError(err: unknown): err is RateLimitedError {
  if (err instanceof RateLimitedError) return true;
  if (!(err instanceof Error) || err.name !== 'RateLimitedError') return false;
  const e = err as Error & { retryAfterMs?: unknown };
  return typeof e.retryAfterMs === 'number' && Number.isFinite(e.retryAfterMs) && e.retryAfterMs >= 0;
}
