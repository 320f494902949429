/** When and how long to wait before trying a call again. */

export interface RetryOptions {
  /** Attempts in all, the first included; 1 turns retries off. Default 4. */
  attempts?: number;
  /** Wait before the first retry; doubles each time. Default 100 ms. */
  initialDelayMs?: number;
  /** Longest wait between attempts (a server's Retry-After is honoured up to this). Default 2000 ms. */
  maxDelayMs?: number;
}

export const RETRY_DEFAULTS = {
  attempts: 4,
  initialDelayMs: 100,
  maxDelayMs: 2_000,
} satisfies Required<RetryOptions>;

/** What made the client try again; passed to `onRetry`. */
export interface RetryEvent {
  method: string;
  path: string;
  /** The attempt that failed (1 = the first). */
  attempt: number;
  delayMs: number;
  /** `503 SHUTTING_DOWN`, `ECONNREFUSED`, … */
  reason: string;
}

/**
 * Exponential backoff with jitter: half the delay fixed, half random, so that many clients told
 * 503 at once do not all come back at the same moment.
 */
export function backoffMs(retry: Required<RetryOptions>, attempt: number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(retry.maxDelayMs, retryAfterMs);
  const exp = Math.min(retry.maxDelayMs, retry.initialDelayMs * 2 ** (attempt - 1));
  return exp / 2 + Math.random() * (exp / 2);
}

/** `Retry-After` in seconds (the form a server under load sends), as milliseconds. */
export function parseRetryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}
