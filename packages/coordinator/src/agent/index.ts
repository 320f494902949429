export { type PerformanceReport, performanceReport, type ToolPerformance } from '../performance-report.ts';
export { ADVISOR_BETA } from './advisor.ts';
export { DEFAULT_MODEL, MAX_ITERATIONS_TEXT } from './options.ts';
export { runAgent } from './run-agent.ts';
export type {
  AdvisorOptions,
  AgentDispatcher,
  AgentEvent,
  AgentEventType,
  AgentOptions,
  AgentResult,
  AgentStatus,
  IterationAction,
  IterationStats,
  ModelRole,
  ModelUsage,
  RunStats,
  TokenCounts,
  ToolCallRecord,
  UsageReport,
} from './types.ts';
