export type {
  Approval,
  ApprovalDecision,
  ApprovalOutcome,
  ApprovalStatus,
  DecidedApproval,
} from './approvals.ts';
export { ToolqClient } from './client.ts';
export type { CallOptions, ToolBatchOptions, ToolqClientOptions } from './client-options.ts';
export { ToolqClientError, ToolqConnectionError, ToolqHttpError, ToolqTimeoutError } from './errors.ts';
export { ToolqOptionError } from './options.ts';
export { RETRY_DEFAULTS, type RetryEvent, type RetryOptions } from './retry.ts';
export { RUN_EVENTS_DEFAULTS, type RunEventsOptions } from './run-events.ts';
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
  RunCall,
  RunCreated,
  RunEvent,
  RunEventData,
  RunEventType,
  RunList,
  RunRequest,
  RunResult,
  RunStatus,
  TextBlock,
  TokenUsage,
  ToolBatch,
  ToolResultBlock,
  ToolUseLike,
} from './types.ts';
