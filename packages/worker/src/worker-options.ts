/**
 * The worker's options and every default, in one place. The CLI fills them from the environment
 * (packages/shared/src/config.ts); a library user passes what they need. Defaults shared with the
 * coordinator and the environment come from `DEFAULTS` (packages/shared/src/defaults.ts).
 */
import type { AnyTool, Logger, RedisConnectionConfig } from '@toolq/shared';
import { DEFAULTS, HEARTBEAT_INTERVAL_MS, type Registry } from '@toolq/shared/internal';
import type { ToolSource } from './tool-source.ts';

export interface WorkerOptions {
  /** The tools this worker serves. */
  tools: readonly AnyTool[];
  /** Default: `redis://127.0.0.1:6379`. */
  redisUrl?: string;
  /** Redis Cluster, Sentinel or standalone (`loadConfig().redis`); wins over `redisUrl`. */
  redis?: RedisConnectionConfig;
  /** Key prefix. Default `toolq`. */
  prefix?: string;
  /** Queue (pool) to serve. Default `default`. */
  pool?: string;
  /**
   * Calls for this pool's tools wait in the queue (within their deadlines) when no worker is alive,
   * for one to start, instead of being answered is_error at once: for pools scaled to zero.
   * Default false.
   */
  waitForWorkers?: boolean;
  /** BullMQ jobs run at once, per queue consumed (the pool's and the lane). Default 32. */
  concurrency?: number;
  /** Timeout of a tool that declares none. Default 30 000 ms. */
  defaultTimeoutMs?: number;
  /** Results larger than this (serialised) become errors. Default 1 000 000 bytes. */
  maxResultBytes?: number;
  /** How long `close()` lets running calls finish before giving them back to the queue. Default 10 000 ms. */
  shutdownTimeoutMs?: number;
  /** Default: a pino logger named `toolq-worker`. */
  logger?: Logger;
  /** Default: a new registry with process metrics. */
  registry?: Registry;
  /** Default: `<host>-<pid>-<random>`. */
  id?: string;
  /** Tools that change at run time (MCP servers), served beside `tools` and re-advertised on change. */
  toolSource?: ToolSource;
}

export const WORKER_DEFAULTS = {
  prefix: DEFAULTS.prefix,
  pool: DEFAULTS.pool,
  waitForWorkers: false,
  concurrency: DEFAULTS.concurrency,
  defaultTimeoutMs: DEFAULTS.defaultTimeoutMs,
  maxResultBytes: DEFAULTS.maxResultBytes,
  shutdownTimeoutMs: DEFAULTS.shutdownTimeoutMs,
  /** The logger's name when none is given. */
  loggerName: 'toolq-worker',
  /** Wait before a tool's retry k is `retryBackoffMs * 2^(k-1)`, for a tool whose `retry` names none. */
  retryBackoffMs: 200,
  /**
   * Younger jobs skip the batch-record check (one Redis round trip per call): a batch answered
   * early is announced on the cancel channel, which only an older call may have missed.
   */
  freshJobMs: 1_000,
  /** A job given back for a tool this worker lacks waits this long, so that another worker takes it. */
  notServedDelayMs: 100,
  /** A killed worker's jobs come back after this long; its calls are answered by their deadline anyway. */
  lockDurationMs: 30_000,
  /** BullMQ's stalled-job limit: a job whose worker died twice fails instead of running a third time. */
  maxStalledCount: 1,
  /** How often the worker refreshes its catalog entry (readers count it gone after missing about three). */
  heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
  /** Batches a coordinator cancelled that the worker remembers, so that their queued calls are skipped. */
  cancelledBatchesRemembered: 10_000,
  /** Progress reports a call sends at once (`ctx.reportProgress`); then one per `progressIntervalMs`. */
  progressBurst: 5,
  /** After a burst, a call's progress goes out at most this often; the latest value wins. */
  progressIntervalMs: 200,
} as const satisfies Partial<Record<keyof WorkerOptions, unknown>> & Record<string, unknown>;
