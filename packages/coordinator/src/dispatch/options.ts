/**
 * The Dispatcher's options and every default, in one place, and the checks of what a caller
 * passes. The CLI fills them from the environment (packages/shared/src/config.ts); a library user
 * passes what they need.
 */
import {
  CALL_PRIORITY,
  type FailurePolicy,
  failurePolicySchema,
  type Logger,
  type RedisConnectionConfig,
  ToolqError,
  type ToolqErrorCode,
} from '@toolq/shared';
import {
  assertKeyPart,
  callerContextSchema,
  DEFAULTS,
  MAX_TIMEOUT_MS,
  type Registry,
} from '@toolq/shared/internal';
import { z } from 'zod';
import { type ApprovalOptions, approvalOptionsSchema } from '../approvals/approval-options.ts';
import type { ProgressUpdate } from './progress-listener.ts';
import { show } from './show.ts';
import { assertUniqueIds } from './tool-uses.ts';

/**
 * A `tool_use` block as the Messages API (and the SDK's `ToolUseBlock`) has it; only id, name and
 * input are used. `dispatch()` is generic over it, so a literal block with fields the API adds
 * later type-checks as well.
 */
export interface ToolUse {
  id: string;
  name: string;
  input: unknown;
  type?: 'tool_use';
  caller?: unknown;
}

/** Any other block of a response's `content` (text, thinking, server_tool_use, …): skipped. */
export interface ContentBlock {
  type: string;
}

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
  /**
   * Orders the app's calls of a flow-controlled tool that wait for a slot (docs/flow-control.md):
   * a whole number from -10 to 10, higher first, the order sent within one priority. Apps still
   * take turns: it never moves another app's calls. Default 0.
   */
  priority?: number;
  /**
   * Who the batch acts for (a user id, a tenant, …): a JSON object of at most 8 KiB that every
   * tool of the batch reads as `ctx.context`. Never logged; it is only in the calls' jobs in Redis,
   * removed when they finish.
   */
  context?: Record<string, unknown>;
  /**
   * Called with each progress report of the batch's calls (`ctx.reportProgress` in a tool), a few
   * a second per call at most. Reports may be lost (pub/sub): the result is what counts.
   */
  onProgress?: (update: ProgressUpdate) => void;
  /**
   * Calls that wait for a person's approval before they run (docs/approvals.md): tools to hold
   * this time besides those whose definition asks for it, the expiry, a handler for embedded use.
   */
  approval?: ApprovalOptions;
}

export interface DispatcherOptions {
  /**
   * Default `redis://127.0.0.1:6379`: the library does not read REDIS_URL (the CLI does), so a
   * Dispatcher given neither this nor `redis` uses a Redis on this host's default port, and
   * `start()`'s error says so.
   */
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
   * A worker whose liveness thread stopped beating (every 2 s) this long ago is taken for dead
   * (killed, frozen, machine gone): its started at-most-once calls are answered "outcome unknown"
   * and its other calls run again on another worker (docs/delivery.md). A worker without that
   * thread is judged by its heartbeat. Default 10 000 ms (TOOLQ_DEAD_WORKER_AFTER_MS), at least 2 500.
   */
  deadWorkerAfterMs?: number;
  /**
   * A worker whose thread still beats but whose event loop has not run for this long (blocked by
   * a tool, starved by load) is taken for dead too. Default 30 000 ms
   * (TOOLQ_STALLED_WORKER_AFTER_MS), at least 2 500; never shorter than `deadWorkerAfterMs`.
   */
  stalledWorkerAfterMs?: number;
  /**
   * How long each queue keeps its completed jobs, for the queue admin page's recent history.
   * Default 300 000 ms (TOOLQ_JOB_HISTORY_MS); 0 removes them at once. BullMQ counts it in whole
   * seconds (rounded up) and removes old jobs as new ones complete. Failed jobs stay an hour.
   */
  jobHistoryMs?: number;
  /** At most this many completed jobs per queue. Default 1 000 (TOOLQ_JOB_HISTORY_COUNT). */
  jobHistoryCount?: number;
  /**
   * Most bytes of result content one batch answers with; results past it become errors saying
   * so. Default 16 MiB (TOOLQ_MAX_BATCH_RESULT_BYTES): the Messages API takes at most 32 MB a request.
   */
  maxBatchResultBytes?: number;
  /**
   * `start()` rejects (`REDIS_UNAVAILABLE`, naming the address) when Redis has not answered within
   * this. Default 10 000 ms.
   */
  startTimeoutMs?: number;
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
  deadWorkerAfterMs: DEFAULTS.deadWorkerAfterMs,
  stalledWorkerAfterMs: DEFAULTS.stalledWorkerAfterMs,
  /** How often the fleet looks for dead workers (one coordinator at a time). */
  deadWorkerSweepMs: 1_000,
  jobHistoryMs: DEFAULTS.jobHistoryMs,
  jobHistoryCount: DEFAULTS.jobHistoryCount,
  startTimeoutMs: 10_000,
  maxBatchResultBytes: DEFAULTS.maxBatchResultBytes,
  /** How long a deadline waits for its last look at Redis before answering "timed out". */
  lastLookMs: 250,
  app: 'default',
  failurePolicy: 'continue',
  priority: CALL_PRIORITY.default,
} as const satisfies Partial<Record<keyof DispatcherOptions | keyof DispatchOptions, unknown>> &
  Record<string, unknown>;

/** A zod check whose failure reads `<option> must be <expected>, got <value>`. */
export function rule<T>(test: (value: unknown) => boolean, expected: string): z.ZodType<T> {
  return z.custom<T>(test, { error: (issue) => `must be ${expected}, got ${show(issue.input)}` });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const hasMethods = (v: unknown, names: readonly string[]): boolean =>
  isObject(v) && names.every((name) => typeof v[name] === 'function');

export const optionRules = {
  wholeMs: rule<number>(
    (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= MAX_TIMEOUT_MS,
    `a whole number of ms from 1 to ${MAX_TIMEOUT_MS} (about 24.8 days)`,
  ),
  durationMs: rule<number>(
    (v) => typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= MAX_TIMEOUT_MS,
    `a number of ms from 1 to ${MAX_TIMEOUT_MS}`,
  ),
  text: rule<string>((v) => typeof v === 'string' && v !== '', 'a non-empty string'),
  /** The HTTP API's bound (priority): CALL_PRIORITY. */
  priority: rule<number>(
    (v) => Number.isInteger(v) && (v as number) >= CALL_PRIORITY.min && (v as number) <= CALL_PRIORITY.max,
    `a whole number from ${CALL_PRIORITY.min} to ${CALL_PRIORITY.max} (higher first)`,
  ),
  /** The HTTP API's bound (max_retries), so that the library takes no more than it. */
  maxRetries: rule<number>(
    (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 20,
    'a whole number from 0 to 20',
  ),
  signal: rule<AbortSignal>((v) => v instanceof AbortSignal, 'an AbortSignal'),
  logger: rule<Logger>(
    (v) => hasMethods(v, ['child', 'debug', 'info', 'warn', 'error']),
    'a pino logger (an object with child, debug, info, warn and error)',
  ),
} as const;

/**
 * Every option of the Dispatcher, checked where it is given (CONFIG_INVALID): an unknown name (a
 * typo such as `sweepIntervalMS`) is an error, not an option silently left at its default.
 */
const dispatcherOptionsSchema = z.strictObject({
  redisUrl: rule<string>(
    (v) => typeof v === 'string' && /^rediss?:\/\/[^/]/.test(v) && URL.canParse(v),
    'a redis:// or rediss:// URL',
  ).optional(),
  redis: rule<RedisConnectionConfig>(
    (v) => isObject(v) && ['standalone', 'cluster', 'sentinel'].includes(v.mode as string),
    'a Redis connection config with mode standalone, cluster or sentinel (loadConfig().redis)',
  ).optional(),
  prefix: optionRules.text.optional(),
  coordinatorId: optionRules.text.optional(),
  sweepIntervalMs: optionRules.durationMs.optional(),
  batchRetentionMs: optionRules.durationMs.optional(),
  deadWorkerAfterMs: rule<number>(
    (v) => Number.isInteger(v) && (v as number) >= 2_500 && (v as number) <= 3600_000,
    'a whole number of ms from 2500 (a heartbeat is written every 2 s) to 3600000',
  ).optional(),
  stalledWorkerAfterMs: rule<number>(
    (v) => Number.isInteger(v) && (v as number) >= 2_500 && (v as number) <= 3600_000,
    'a whole number of ms from 2500 to 3600000',
  ).optional(),
  jobHistoryMs: rule<number>(
    (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 24 * 3600_000,
    'a whole number of ms from 0 to 86400000 (24 h)',
  ).optional(),
  jobHistoryCount: rule<number>(
    (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 100_000,
    'a whole number from 0 to 100000',
  ).optional(),
  maxBatchResultBytes: rule<number>(
    (v) => Number.isSafeInteger(v) && (v as number) >= 1,
    'a whole number of bytes >= 1',
  ).optional(),
  startTimeoutMs: optionRules.wholeMs.optional(),
  logger: optionRules.logger.optional(),
  registry: rule<Registry>(
    (v) => hasMethods(v, ['registerMetric', 'metrics']),
    'a prom-client Registry',
  ).optional(),
} satisfies Record<keyof DispatcherOptions, z.ZodType>);

/** Every option of dispatch() (INVALID_INPUT). */
const dispatchOptionsSchema = z.strictObject({
  timeoutMs: optionRules.wholeMs.optional(),
  failurePolicy: failurePolicySchema.optional(),
  maxRetries: optionRules.maxRetries.optional(),
  signal: optionRules.signal.optional(),
  batchName: optionRules.text.optional(),
  batchId: optionRules.text.optional(),
  app: optionRules.text.optional(),
  priority: optionRules.priority.optional(),
  context: callerContextSchema.optional(),
  onProgress: rule<(update: ProgressUpdate) => void>((v) => typeof v === 'function', 'a function').optional(),
  approval: approvalOptionsSchema.optional(),
} satisfies Record<keyof DispatchOptions, z.ZodType>);

/**
 * The options as given, or a ToolqError naming each wrong option, what it must be and what it
 * was; an unknown name is listed with the known ones (and the one it most likely meant).
 */
export function checkOptions<T>(
  schema: z.ZodType<T>,
  options: unknown,
  where: string,
  code: ToolqErrorCode,
): T {
  const parsed = schema.safeParse(options ?? {}, { reportInput: true });
  if (parsed.success) return options as T;
  const known = schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
  const problems = parsed.error.issues.slice(0, 5).map((issue) => {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys' && issue.path.length > 0)
      return `${path}: ${issue.keys.map((key) => JSON.stringify(key)).join(', ')} is not an option`;
    if (issue.code === 'unrecognized_keys')
      return issue.keys.map((key) => unknownOption(key, known)).join('; ');
    if (issue.code === 'invalid_value')
      return `${path} must be one of ${issue.values.map((v) => show(v)).join(', ')}, got ${show(issue.input)}`;
    if (issue.path.length === 0) return `the options must be an object, got ${show(issue.input)}`;
    return issue.code === 'custom' ? `${path} ${issue.message}` : `${path}: ${issue.message}`;
  });
  throw new ToolqError(code, `${where}: ${problems.join('; ')}`);
}

function unknownOption(key: string, known: readonly string[]): string {
  const meant = known.find((name) => name.toLowerCase() === key.toLowerCase());
  const hint = meant ? ` (did you mean ${meant}?)` : '';
  return `${JSON.stringify(key)} is not an option${hint}; the options are ${known.join(', ')}`;
}

export function checkDispatcherOptions(options: unknown): DispatcherOptions {
  return checkOptions(dispatcherOptionsSchema, options, 'invalid Dispatcher options', 'CONFIG_INVALID');
}

export function checkStartOptions(options: unknown): { signal?: AbortSignal } {
  const schema = z.strictObject({ signal: optionRules.signal.optional() });
  return checkOptions(schema, options, 'invalid start() options', 'CONFIG_INVALID');
}

export function checkDispatchOptions(options: unknown): DispatchOptions {
  return checkOptions(dispatchOptionsSchema, options, 'invalid dispatch() options', 'INVALID_INPUT');
}

/**
 * What dispatch() refuses before anything else (INVALID_INPUT), in this order: an unknown or
 * malformed option, duplicate tool_use ids, a malformed app or batch name.
 */
export function assertDispatchable(
  toolUses: readonly { id: string }[],
  app: string,
  options: DispatchOptions,
): void {
  checkDispatchOptions(options);
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
