/**
 * The coordinator as a library: the Dispatcher (a batch of tool_use blocks in, tool_result blocks
 * out), the agent loop on it, and the performance report. The HTTP server, the durable runs and the
 * agent loop's wire details are the CLI's (`toolq-coordinator`), not API.
 */
export {
  type AdvisorOptions,
  type AgentDispatcher,
  type AgentEvent,
  type AgentEventType,
  type AgentOptions,
  type AgentResult,
  type AgentStatus,
  DEFAULT_MODEL,
  type IterationAction,
  type IterationStats,
  type ModelRole,
  type ModelUsage,
  type PerformanceReport,
  performanceReport,
  type RunStats,
  runAgent,
  type TokenCounts,
  type ToolCallRecord,
  type ToolPerformance,
  type UsageReport,
} from './agent/index.ts';
export {
  APPROVAL_DEFAULTS,
  type ApprovalDecision,
  type ApprovalHandler,
  type ApprovalOptions,
  type ApprovalOutcome,
  type ApprovalRequest,
  type ApprovalStatus,
  type ApprovalVerdict,
} from './approvals/approval-options.ts';
export type { BatchResult, CallStats } from './batch-result.ts';
export { Dispatcher, type DispatcherOptions, type DispatchOptions, type ToolUse } from './dispatcher.ts';
export type {
  ChatToolBatch,
  ChatToolCall,
  ChatToolMessage,
  FunctionCallItem,
  FunctionCallOutputContent,
  FunctionCallOutputItem,
  OpenAIBatchStats,
  ResponsesToolBatch,
} from './openai/dispatch.ts';
