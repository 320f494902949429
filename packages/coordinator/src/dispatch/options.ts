/**
 * The Dispatcher's options and every default, in one place, and the checks of what a caller
 * passes. The CLI fills them from the environment (packages/shared/src/config.ts); a library user
 * passes what they need.
 */
import { type FailurePolicy, type Logger, type RedisConnectionConfig, ToolqError } from '@toolq/shared';
import { assertKeyPart, DEFAULTS, MAX_TIMEOUT_MS, type Registry } from '@toolq/shared/internal';

export interface DispatchOptions {
  /** Per-call timeout. Default: each tool's own timeout (which defaults to 30 s). A smaller value wins. */
  timeoutMs?: number;
  /** Default `continue`. */
  failurePolicy?: FailurePolicy;
  /** With `retry`: re-runs per call, for tools that declare `retry`. Default: the tool's own. */
  maxRetries?: number;
  /** Aborting answers every unanswered call as cancelled at once. One signal may serve many batches. */
  signal?: AbortSignal;
  /**
   * Your own name for the batch (letters, digits, `_.-`), so that you can `collect()` it later, from
   * any coordinator. A name names one batch across the fleet until its record expires: a second
   * dispatch with it is refused (`BATCH_EXISTS`). Default: the batch's uid (a random UUID), which
   * its jobs, record and cancellations are named by whether or not you name it.
   */
  batchName?: string;
  /** @deprecated The same as `batchName` (its name before). */
  batchId?: string;
  /** The app the batch belongs to: ids are scoped to it and only it can collect the batch. Default `default`. */
  app?: string;
}

export interface DispatcherOptions {
  /** Default `redis://127.0.0.1:6379`. */
  redisUrl?: string;
  /** Redis Cluster, Sentinel or standalone (`loadConfig().redis`); wins over `redisUrl`. */
  redis?: RedisConnectionConfig;
  /** Default `toolq`. */
  prefix?: string;
  /** Default: `<pid>-<random>`; set a stable one to collect a batch after a restart. */
  coordinatorId?: string;
  /**
   * A batch still waiting this long has its record read from Redis (healing a lost notification),
   * then again at doubling intervals up to 8 s. Default 1000 ms.
   */
  sweepIntervalMs?: number;
  /**
   * How long a batch's record stays in Redis after it was answered, for `collect()` and
   * `GET /v1/tool-batches/:id`. Default 60 000 ms (TOOLQ_BATCH_RETENTION_MS). Costs the results'
   * size plus about 650 bytes a call in Redis.
   */
  batchRetentionMs?: number;
  /**
   * Most bytes of result content one batch answers with; results past it become errors saying
   * so. Default 16 MiB (TOOLQ_MAX_BATCH_RESULT_BYTES): the Messages API takes at most 32 MB a request.
   */
  maxBatchResultBytes?: number;
  logger?: Logger;
  /** Default: a new registry. */
  registry?: Registry;
}

export const DISPATCHER_DEFAULTS = {
  prefix: DEFAULTS.prefix,
  sweepIntervalMs: 1_000,
  /** The sweep's back-off stops here. */
  maxSweepEveryMs: 8_000,
  /** A batch collected from another coordinator's record is read this often (no notifications reach it). */
  foreignSweepMs: 250,
  /**
   * How long a collected batch's call must look lost before the collector answers it so: longer
   * than the dispatching coordinator's slowest sweep, which may re-run it (maxSweepEveryMs + 2 s).
   */
  foreignLostGraceMs: 10_000,
  batchRetentionMs: DEFAULTS.batchRetentionMs,
  maxBatchResultBytes: DEFAULTS.maxBatchResultBytes,
  /** How long a deadline waits for its last look at Redis before answering "timed out". */
  lastLookMs: 250,
  app: 'default',
  failurePolicy: 'continue',
} as const satisfies Partial<Record<keyof DispatcherOptions | keyof DispatchOptions, unknown>> &
  Record<string, unknown>;

/** A duration option of the Dispatcher (a misconfiguration: CONFIG_INVALID). */
export function positiveMs(what: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0 || value > MAX_TIMEOUT_MS)
    throw new ToolqError(
      'CONFIG_INVALID',
      `${what} must be a number of ms from 1 to ${MAX_TIMEOUT_MS}, got ${value}`,
    );
  return value;
}

export function assertTimeout(timeoutMs: number): void {
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS)
    throw new ToolqError(
      'INVALID_INPUT',
      `timeoutMs must be a whole number of ms from 1 to ${MAX_TIMEOUT_MS} (about 24.8 days), got ${timeoutMs}`,
    );
}

export function assertUniqueIds(toolUses: readonly { id: string }[]): void {
  const seen = new Set<string>();
  for (const [i, use] of toolUses.entries()) {
    if (seen.has(use.id)) throw new ToolqError('INVALID_INPUT', `tool_uses.${i}.id: duplicate id ${use.id}`);
    seen.add(use.id);
  }
}

/**
 * What dispatch() refuses before anything else (INVALID_INPUT), in this order: duplicate tool_use
 * ids, a malformed app or batch name, a timeout out of range.
 */
export function assertDispatchable(
  toolUses: readonly { id: string }[],
  app: string,
  options: Pick<DispatchOptions, 'batchName' | 'batchId' | 'timeoutMs'>,
): void {
  assertUniqueIds(toolUses);
  assertKeyPart('app', app);
  if (
    options.batchName !== undefined &&
    options.batchId !== undefined &&
    options.batchName !== options.batchId
  )
    throw new ToolqError('INVALID_INPUT', 'batchId is the old name of batchName: give one of them');
  const batchName = batchNameOf(options);
  if (batchName !== undefined) assertKeyPart('batchName', batchName);
  if (options.timeoutMs !== undefined) assertTimeout(options.timeoutMs);
}

/** The caller's name for the batch, under its name or its deprecated one. */
export function batchNameOf(options: Pick<DispatchOptions, 'batchName' | 'batchId'>): string | undefined {
  return options.batchName ?? options.batchId;
}

export function batchExists(batchName: string): ToolqError {
  return new ToolqError(
    'BATCH_EXISTS',
    `batch ${batchName} was dispatched already; use collect() to get its results`,
  );
}
