/**
 * `@toolq/shared/internal`: the plumbing between the coordinator and the workers (Redis keys and
 * connections, the result store, the worker catalog, cancellation, the call log, metrics, tracing
 * hooks, defaults). Only toolq's own packages import it; it changes with them, without notice. The
 * API for users is the root entry, `@toolq/shared` (index.ts).
 */

export { approvalSettingSchema, needsApproval } from './approval-rule.ts';
export { claimBatchName, expireBatchName, readBatchOwner } from './batch-names.ts';
export {
  CALL_LOG_RETENTION_MS,
  CallLog,
  type CallLogWindow,
  callLogKey,
  histogramPercentile,
  PLAIN_PRODUCER_APP,
  readCallLog,
} from './call-log.ts';
export { type CancelMessage, parseCancelMessage, publishCancel } from './cancel.ts';
export { defaultCoordinatorId } from './config.ts';
export {
  callerContextSchema,
  JOB_VERSION,
  MAX_CONTEXT_BYTES,
  type ParsedJobData,
  type ToolSpec,
  type WorkerInfo,
} from './contract.ts';
export { DEFAULTS } from './defaults.ts';
export {
  claimStart,
  idempotencyKeyFor,
  idempotencyKeyOf,
  idempotencyKeysOf,
  interruptedResult,
  readRunningJobs,
  releaseStart,
  runningJobField,
  startedBy,
  startMarkerTtlMs,
  writeRunningJobs,
} from './delivery.ts';
export { coerceError, describeStartupError, listenError } from './errors.ts';
export {
  admitStart,
  type FlowKeys,
  type FlowState,
  fairTags,
  flowKeys,
  holdTool,
  markHandedOff,
  markStarted,
  readFlowState,
  readHandedOff,
  readOverride,
  readStarted,
  writeOverride,
} from './flow/flow-store.ts';
export {
  concurrencySchema,
  type EffectiveLimits,
  effectiveLimits,
  type LimitsOverride,
  rateLimitSchema,
} from './flow/limits.ts';
export { isRateLimitedError } from './flow/rate-limited-error.ts';
export { flowRoute, isToolQueueName, toolOfRoute } from './flow/route.ts';
export { processId, randomHex } from './ids.ts';
export { parseJsonAs } from './json.ts';
export { assertKeyPart, createKeys, KEY_PART_PATTERN, type Keys, routeOfQueueName } from './keys.ts';
export { laneOf } from './lanes.ts';
export { type Liveness, readLiveness, removeLiveness, writeLiveness } from './liveness.ts';
export { mcpErrorText, mcpToToolResultContent } from './mcp-mapping.ts';
export {
  type CoordinatorMetrics,
  createCoordinatorMetrics,
  createRegistry,
  createWorkerMetrics,
  METRIC_LABEL_VALUES,
  METRICS,
  PROCESS_METRIC_PREFIX,
  type Registry,
  type WorkerMetrics,
} from './metrics.ts';
export {
  parseProgressMessage,
  progressChannel,
  publishProgress,
} from './progress.ts';
export { raceSignal, withTimeout } from './race.ts';
export { probeRedis, whyNotWritable } from './readiness.ts';
export { RecentSet } from './recent-set.ts';
export {
  closeRedis,
  createRedis,
  describeRedis,
  duplicateConnection,
  isClusterConnection,
  type Redis,
  type RedisTarget,
} from './redis.ts';
export { describeRedisFailure, isRedisFailure, withinRedis } from './redis-errors.ts';
export { describeZodIssues, encodeToolOutput, firstLineOf, messages } from './result-encoding.ts';
export {
  type BatchMeta,
  claimBatch,
  isCallStillWanted,
  markAnswered,
  parseCallResult,
  type ResultTarget,
  readBatchMeta,
  readResults,
  rewriteBatchMeta,
  storeResult,
  writeResult,
} from './result-store.ts';
export { parseApiTokens } from './tokens.ts';
export { inputJsonSchema, MAX_TIMEOUT_MS, TOOL_NAME_PATTERN } from './tool.ts';
export { TOOL_SET_NAME_PATTERN } from './tool-sets.ts';
export {
  carrierOf,
  contextFrom,
  getTracer,
  inSpan,
  markError,
  recordSpan,
  type Span,
  startSpan,
} from './tracing.ts';
export {
  HEARTBEAT_INTERVAL_MS,
  type HeartbeatMemory,
  type PublishedToolSet,
  publishPoolMode,
  publishWorker,
  readWaitingPools,
  readWorkers,
  type ToolSetMemory,
  unpublishWorker,
  WAITING_POOL_REFRESH_MS,
  type WaitingPoolMemory,
} from './worker-registry.ts';
