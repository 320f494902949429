export { type BatchOwner, claimBatchName, readBatchOwner } from './batch-names.ts';
export {
  binValue,
  CALL_LOG_BUCKET_MS,
  CALL_LOG_RETENTION_MS,
  CallLog,
  type CallLogWindow,
  callLogKey,
  durationBin,
  histogramPercentile,
  readCallLog,
  type ToolCallStats,
} from './call-log.ts';
export { type CancelMessage, cancelMessageSchema, parseCancelMessage, publishCancel } from './cancel.ts';
export { defaultCoordinatorId, loadConfig, parseApiTokens, type ToolqConfig } from './config.ts';
export {
  type CallResult,
  CONTRACT_VERSION,
  callResultSchema,
  contentBlockSchema,
  contractJsonSchemas,
  type FailurePolicy,
  failurePolicySchema,
  type JobChunk,
  type JobData,
  jobChunkSchema,
  jobDataSchema,
  MAX_CALLS_PER_JOB,
  type Outcome,
  outcomeSchema,
  type ParsedJobData,
  type ToolContentBlock,
  type ToolResultBlock,
  type ToolSpec,
  toolSpecSchema,
  toToolResultBlock,
  type WorkerInfo,
  workerInfoSchema,
} from './contract.ts';
export { DEFAULTS } from './defaults.ts';
export {
  coerceError,
  describeStartupError,
  NonRetryableError,
  ToolqError,
  type ToolqErrorCode,
} from './errors.ts';
export { processId, randomHex } from './ids.ts';
export { parseJsonAs } from './json.ts';
export { assertKeyPart, createKeys, KEY_PART_PATTERN, type Keys } from './keys.ts';
export { laneOf } from './lanes.ts';
export { createLogger, type Logger } from './logger.ts';
export {
  type CoordinatorMetrics,
  createCoordinatorMetrics,
  createRegistry,
  createWorkerMetrics,
  METRIC_LABEL_VALUES,
  METRICS,
  type MetricDefinition,
  type MetricName,
  type MetricType,
  PROCESS_METRIC_PREFIX,
  type Registry,
  type WorkerMetrics,
} from './metrics.ts';
export { raceSignal, withTimeout } from './race.ts';
export { probeRedis, type Readiness, whyNotWritable } from './readiness.ts';
export { RecentSet } from './recent-set.ts';
export {
  closeRedis,
  createRedis,
  describeRedis,
  duplicateConnection,
  isClusterConnection,
  type Redis,
  type RedisAddress,
  type RedisConnectionConfig,
  type RedisCredentials,
  type RedisTarget,
  type RedisTlsOptions,
} from './redis.ts';
export { describeRedisFailure, isRedisFailure, withinRedis } from './redis-errors.ts';
export {
  DEFAULT_MAX_RESULT_BYTES,
  describeZodIssues,
  type EncodedContent,
  encodeToolOutput,
  firstLineOf,
  messages,
} from './result-encoding.ts';
export {
  ANSWERED_FIELD,
  BATCH_TTL_AFTER_DEADLINE_MS,
  type BatchMeta,
  batchMetaSchema,
  claimBatch,
  isCallStillWanted,
  markAnswered,
  parseCallResult,
  type ResultTarget,
  readBatchMeta,
  readResults,
  resultField,
  rewriteBatchMeta,
  type StoreOutcome,
  storeResult,
  writeResult,
} from './result-store.ts';
export {
  type AnyTool,
  defineTool,
  inputJsonSchema,
  type JsonSchemaObject,
  MAX_TIMEOUT_MS,
  type RetryPolicy,
  TOOL_NAME_PATTERN,
  type ToolDefinition,
  type ToolRunContext,
  toAnthropicTool,
} from './tool.ts';
export {
  type Attributes,
  carrierOf,
  contextFrom,
  getTracer,
  inSpan,
  markError,
  recordSpan,
  type Span,
  startSpan,
  startTracing,
  TRACEPARENT_PATTERN,
  type TraceCarrier,
  type Tracer,
  type Tracing,
} from './tracing.ts';
export {
  HEARTBEAT_INTERVAL_MS,
  type HeartbeatMemory,
  publishPoolMode,
  publishWorker,
  readWaitingPools,
  readWorkers,
  unpublishWorker,
  type WaitingPool,
  WORKER_STALE_AFTER_MS,
  type WorkerSnapshot,
} from './worker-registry.ts';
