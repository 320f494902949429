export {
  ADVISOR_BETA,
  ADVISOR_TOOL_TYPE,
  type AdvisorOptions,
  type AgentCheckpoint,
  type AgentDispatcher,
  type AgentEvent,
  type AgentEventType,
  type AgentOptions,
  type AgentPersistence,
  type AgentResult,
  type AgentStatus,
  advisorTool,
  callMs,
  DEFAULT_MAX_ITERATIONS,
  DEFAULT_MAX_TOKENS,
  DEFAULT_MODEL,
  type IterationAction,
  type IterationStats,
  MAX_ITERATIONS_TEXT,
  type ModelRole,
  type ModelUsage,
  type PerformanceReport,
  percentile,
  performanceReport,
  type RunStats,
  runAgent,
  type TokenCounts,
  type ToolCallRecord,
  type ToolPerformance,
  type UsageReport,
} from './agent/index.ts';
export type { BatchResult, CallStats } from './batch-result.ts';
export { Catalog, type CatalogTool, type ToolLookup } from './catalog.ts';
export { Dispatcher, type DispatcherOptions, type DispatchOptions, type ToolUse } from './dispatcher.ts';
export { appOf } from './http/auth.ts';
export { buildHttpServer, type HttpServerOptions, listen } from './http/server.ts';
export type { RunModel } from './runs/run-executor.ts';
export { type CreatedRun, RUN_DEFAULTS, RunService, type RunServiceOptions } from './runs/run-service.ts';
export type { RunRecord, RunStatus, RunSummary } from './runs/run-store.ts';
