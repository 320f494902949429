/**
 * Waiting for a condition instead of sleeping a fixed time: a fixed sleep is too short on a loaded
 * machine and wasted time on an idle one. The one waitFor every test file and helper uses.
 */

export interface WaitForOptions {
  /** Give up after this long. Default 30 s: about correctness, not speed. */
  timeoutMs?: number;
  /** Pause between checks. Default 100 ms. */
  intervalMs?: number;
  /** Extra detail for the timeout message (what was seen last). */
  detail?: () => string;
  /** An error of the check that ends the wait at once (thrown as it is): waiting cannot help. */
  fatal?: (err: unknown) => boolean;
}

/**
 * Calls `check` until it returns something other than `undefined`, `null` or `false`, and returns
 * that. A check that throws counts as "not yet" (a server still starting refuses connections);
 * the last error is in the timeout message.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  options: number | WaitForOptions = {},
): Promise<T> {
  const {
    timeoutMs = 30_000,
    intervalMs = 100,
    detail,
    fatal,
  } = typeof options === 'number' ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (err) {
      if (fatal?.(err)) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      const seen = detail ? `; ${detail()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${seen}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Lets time pass on purpose: to show that something does NOT happen meanwhile, or to wait out a
 * duration the product defines (a TTL, a deadline). Never to wait for something to happen: use
 * waitFor for that.
 */
export function letTimePass(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A [start, end] interval in one clock (ms). */
export interface Interval {
  start: number;
  end: number;
}

/** Whether two intervals share some instant. */
export function overlaps(a: Interval, b: Interval): boolean {
  return a.start < b.end && b.start < a.end;
}

/** The most intervals that were open at the same instant. */
export function maxOverlap(intervals: readonly Interval[]): number {
  return mostRunningWithin(intervals, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY);
}

/**
 * The most calls running at once at any instant of [from, to], from intervals (each `start`
 * included, `end` not): what a cap must bound during one phase of a test.
 */
export function mostRunningWithin(intervals: readonly Interval[], from: number, to: number): number {
  const edges = intervals.flatMap((i) => [
    { at: i.start, d: 1 },
    { at: i.end, d: -1 },
  ]);
  // An interval that ends when another starts did not overlap it: ends first.
  edges.sort((x, y) => x.at - y.at || x.d - y.d);
  let open = 0;
  let most = 0;
  for (const e of edges) {
    if (e.at > to) break;
    open += e.d;
    if (e.at >= from) most = Math.max(most, open);
  }
  // Those open at `from` itself count too.
  const atFrom = intervals.filter((i) => i.start <= from && i.end > from).length;
  return Math.max(most, atFrom);
}
