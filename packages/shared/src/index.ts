/**
 * The API of toolq for its users: defining tools, the errors, the job contract (for any BullMQ
 * producer), configuration, logging and tracing. What the coordinator and the worker share to talk
 * to each other through Redis (keys, result store, catalog, metrics, …) is `@toolq/shared/internal`:
 * no semver promise, so it can change with them.
 */
export type { ApprovalCondition, ApprovalRule, ApprovalSetting } from './approval-rule.ts';
export { loadConfig, type ToolqConfig } from './config.ts';
export {
  CALL_PRIORITY,
  type CallResult,
  CONTRACT_VERSION,
  callPrioritySchema,
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
  type ToolContentBlock,
  type ToolResultBlock,
  toToolResultBlock,
} from './contract.ts';
export { NonRetryableError, ToolqError, type ToolqErrorCode } from './errors.ts';
export type { RateLimit } from './flow/limits.ts';
export { RateLimitedError } from './flow/rate-limited-error.ts';
export { createLogger, type Logger } from './logger.ts';
export {
  type McpContentBlock,
  type McpResultValue,
  type McpToolResult,
  mcpResult,
  type ToolAnnotations,
} from './mcp-content.ts';
export type { RedisConnectionConfig } from './redis.ts';
export {
  type AnyTool,
  type CachePolicy,
  type Delivery,
  defineTool,
  type RetryPolicy,
  type ToolDefinition,
  type ToolRunContext,
  toAnthropicTool,
} from './tool.ts';
export { startTracing, type TraceCarrier, type Tracing } from './tracing.ts';
