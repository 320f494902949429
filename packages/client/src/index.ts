export {
  type CallOptions,
  type ToolBatchOptions,
  ToolqClient,
  type ToolqClientOptions,
} from './client.ts';
export { ToolqClientError, ToolqConnectionError, ToolqHttpError, ToolqTimeoutError } from './errors.ts';
export { ToolqOptionError } from './options.ts';
export { RETRY_DEFAULTS, type RetryEvent, type RetryOptions } from './retry.ts';
export type {
  AgentStatus,
  CallStats,
  CatalogTool,
  FailurePolicy,
  ImageBlock,
  MessageParam,
  Outcome,
  PerformanceReport,
  Run,
  RunCreated,
  RunList,
  RunRequest,
  RunStatus,
  TextBlock,
  ToolBatch,
  ToolResultBlock,
  ToolUseLike,
} from './types.ts';
