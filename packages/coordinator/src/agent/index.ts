export {
  callMs,
  type PerformanceReport,
  percentile,
  performanceReport,
  type ReportedCall,
  type ToolPerformance,
} from '../performance-report.ts';
export { ADVISOR_BETA, ADVISOR_TOOL_TYPE, advisorTool } from './advisor.ts';
export {
  DEFAULT_MAX_ITERATIONS,
  DEFAULT_MAX_TOKENS,
  DEFAULT_MODEL,
  MAX_ITERATIONS_TEXT,
} from './options.ts';
export { runAgent } from './run-agent.ts';
export type {
  AdvisorOptions,
  AgentCheckpoint,
  AgentDispatcher,
  AgentEvent,
  AgentEventType,
  AgentOptions,
  AgentPersistence,
  AgentResult,
  AgentStatus,
  BatchRef,
  IterationAction,
  IterationStats,
  ModelRole,
  ModelUsage,
  PendingTurn,
  RunStats,
  TokenCounts,
  ToolCallRecord,
  UsageReport,
} from './types.ts';
